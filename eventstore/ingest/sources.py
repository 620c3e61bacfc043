"""Transcript files and their checkpoints: which files exist, and how far each has been read.

A checkpoint names a file (path, device+inode, a hash of its head) and the offset up to which
its complete lines are in the log. It is written in the same transaction as those lines'
events, so after a crash reading resumes exactly where the log ends. Owns `sources` and
`line_runs` (DDL in eventstore/sql/0002_ingest.sql and 0007_line_runs.sql).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from hashlib import blake2b
from pathlib import Path

import msgspec

HEAD_BYTES = 4096
"""How much of a file's beginning, and of what comes just before its committed offset, is hashed
to notice that it was rewritten."""
RUN_EVENTS = 240
"""Events a `line_runs` row covers at most: its steps (2 or 4 bytes an event) then stay within what
a row of a WITHOUT ROWID table keeps on its own page. Longer runs spilled onto overflow pages,
half of each last one empty: the table of the 500 MB generated tree took 1.6 MB for 0.8 MB of steps."""


class Checkpoint(msgspec.Struct, kw_only=True):
    """How far one file has been read, and how to recognise it."""

    source_id: int | None
    path: str
    device: int
    inode: int
    head_hash: bytes
    head_len: int
    offset: int
    size: int
    mtime_ns: int
    seam_hash: bytes | None = None
    """The fingerprint of the up to HEAD_BYTES bytes ending at `offset` (None: not known, a
    checkpoint written before they were kept)."""


def transcript_files(roots: Iterable[Path], on_error: Callable[[str], None]) -> Iterator[Path]:
    """Every `*.jsonl` file under the roots, in a stable order; symlinked directories are not followed.
    A file reached under two names comes under both (the ingester knows a file by its inode)."""
    for root in roots:
        if root.is_file():
            if root.suffix == ".jsonl":
                yield root
            else:
                on_error(f"skipping {root}: not a transcript (a .jsonl file) nor a directory of them")
            continue

        def report(exc: OSError) -> None:
            on_error(f"skipping {exc.filename}: {exc.strerror}")

        for directory, subdirs, files in os.walk(root, onerror=report):
            subdirs.sort()
            for name in sorted(files):
                if name.endswith(".jsonl"):
                    yield Path(directory, name)


def fallback_session(path: Path) -> str:
    """The session a file's lines belong to when a line names none: its directory layout says."""
    parts = path.parts
    if "subagents" in parts:
        index = len(parts) - 1 - parts[::-1].index("subagents")
        if index >= 1:
            return parts[index - 1]
    return path.stem


def head_hash(data: bytes) -> bytes:
    """The fingerprint of a file's first bytes."""
    return blake2b(data, digest_size=16).digest()


def load_checkpoints(conn) -> dict[str, Checkpoint]:
    """Every file checkpoint, by path."""
    return {
        row[1]: Checkpoint(
            source_id=row[0], path=row[1], device=row[2], inode=row[3], head_hash=row[4],
            head_len=row[5], offset=row[6], size=row[7], mtime_ns=row[8], seam_hash=row[9],
        )
        for row in conn.execute(
            "SELECT source_id, path, device, inode, head_hash, head_len, offset, size, mtime_ns, seam_hash FROM sources"
        )
    }


def save_checkpoint(tx, checkpoint: Checkpoint, now: int) -> int:
    """Insert or update a file's checkpoint inside the caller's transaction; return its source_id."""
    if checkpoint.source_id is None:
        tx.execute(
            "INSERT INTO sources (path, device, inode, head_hash, head_len, offset, size, mtime_ns, seam_hash,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (path) DO UPDATE SET device = excluded.device, inode = excluded.inode,"
            " head_hash = excluded.head_hash, head_len = excluded.head_len, offset = excluded.offset,"
            " size = excluded.size, mtime_ns = excluded.mtime_ns, seam_hash = excluded.seam_hash,"
            " updated_at = excluded.updated_at",
            (checkpoint.path, checkpoint.device, checkpoint.inode, checkpoint.head_hash,
             checkpoint.head_len, checkpoint.offset, checkpoint.size, checkpoint.mtime_ns, checkpoint.seam_hash, now),
        )
        checkpoint.source_id = tx.execute("SELECT source_id FROM sources WHERE path = ?", (checkpoint.path,))[0][0]
    else:
        tx.execute(
            "UPDATE sources SET device = ?, inode = ?, head_hash = ?, head_len = ?, offset = ?, size = ?,"
            " mtime_ns = ?, seam_hash = ?, updated_at = ? WHERE source_id = ?",
            (checkpoint.device, checkpoint.inode, checkpoint.head_hash, checkpoint.head_len,
             checkpoint.offset, checkpoint.size, checkpoint.mtime_ns, checkpoint.seam_hash, now,
             checkpoint.source_id),
        )
    return checkpoint.source_id


def record_provenance(tx, rows: list[tuple[int, int, int]]) -> None:
    """Remember where events were read: (position, source_id, offset) rows, in the order read.

    Consecutive events read one after another from one file make one `line_runs` row, of at most
    RUN_EVENTS events."""
    runs: list[tuple[int, int, int, int, bytes | None]] = []
    start = 0
    for i in range(1, len(rows) + 1):
        if i < len(rows) and i - start < RUN_EVENTS:
            (position, source_id, offset), (before, before_source, before_offset) = rows[i], rows[i - 1]
            if source_id == before_source and position == before + 1 and 0 < offset - before_offset < 2**32:
                continue
        run = rows[start:i]
        steps = [b[2] - a[2] for a, b in zip(run, run[1:])]
        runs.append((run[0][0], run[0][1], run[0][2], run[-1][0], _pack_steps(steps)))
        start = i
    tx.executemany("INSERT OR IGNORE INTO line_runs (first_position, source_id, first_offset, last_position, steps)"
                   " VALUES (?, ?, ?, ?, ?)", runs)


def _pack_steps(steps: list[int]) -> bytes | None:
    """A run's steps as `line_runs.steps` stores them: uint16 when every one fits (lines under
    64 KB, nearly all), else uint32; the run's length tells which."""
    if not steps:
        return None
    return struct.pack(f"<{len(steps)}{'H' if max(steps) < 1 << 16 else 'I'}", *steps)


def _expanded(first_position: int, last_position: int, first_offset: int,
              steps: bytes | None) -> Iterator[tuple[int, int]]:
    """(position, offset) of every event of a run."""
    yield first_position, first_offset
    offset = first_offset
    count = last_position - first_position
    code = "H" if steps and len(steps) == 2 * count else "I"
    for n, step in enumerate(struct.unpack(f"<{count}{code}", steps) if steps else (), start=1):
        offset += step
        yield first_position + n, offset


def provenance(conn, position: int) -> list[tuple[str, int]]:
    """Every (file path, byte offset) an event was read from."""
    found = set()
    for path, first_position, last_position, first_offset, steps in conn.execute(
        "SELECT s.path, l.first_position, l.last_position, l.first_offset, l.steps FROM line_runs l"
        " JOIN sources s USING (source_id) WHERE l.first_position <= ?1 AND l.last_position >= ?1",
        (position,),
    ):
        found.update((path, offset) for p, offset in _expanded(first_position, last_position, first_offset, steps)
                     if p == position)
    return sorted(found)


def origins(conn) -> list[tuple[str, int, int]]:
    """Every (file path, byte offset, position) where an event was read, sorted."""
    found = set()
    for path, first_position, last_position, first_offset, steps in conn.execute(
        "SELECT s.path, l.first_position, l.last_position, l.first_offset, l.steps FROM line_runs l"
        " JOIN sources s USING (source_id)"
    ):
        found.update((path, offset, p) for p, offset in _expanded(first_position, last_position, first_offset, steps))
    return sorted(found)
