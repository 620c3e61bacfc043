"""Transcript files and their checkpoints: which files exist, and how far each has been read.

A checkpoint names a file (path, device+inode, a hash of its head) and the offset up to which
its complete lines are in the log. It is written in the same transaction as those lines'
events, so after a crash reading resumes exactly where the log ends. Owns `sources` and
`line_sources` (DDL in eventstore/sql/0002_ingest.sql).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from hashlib import blake2b
from pathlib import Path

import msgspec

HEAD_BYTES = 4096
"""How much of a file's beginning is hashed to notice that it was rewritten."""


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


def transcript_files(roots: Iterable[Path], on_error: Callable[[str], None]) -> Iterator[Path]:
    """Every `*.jsonl` file under the roots, in a stable order; symlinked directories are not followed."""
    seen: set[str] = set()
    for root in roots:
        if root.is_file():
            if root.suffix == ".jsonl":
                yield root
            continue

        def report(exc: OSError) -> None:
            on_error(f"skipping {exc.filename}: {exc.strerror}")

        for directory, subdirs, files in os.walk(root, onerror=report):
            subdirs.sort()
            for name in sorted(files):
                if name.endswith(".jsonl"):
                    path = os.path.join(directory, name)
                    real = os.path.realpath(path)
                    if real not in seen:
                        seen.add(real)
                        yield Path(path)


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
            head_len=row[5], offset=row[6], size=row[7], mtime_ns=row[8],
        )
        for row in conn.execute(
            "SELECT source_id, path, device, inode, head_hash, head_len, offset, size, mtime_ns FROM sources"
        )
    }


def save_checkpoint(tx, checkpoint: Checkpoint, now: int) -> int:
    """Insert or update a file's checkpoint inside the caller's transaction; return its source_id."""
    if checkpoint.source_id is None:
        tx.execute(
            "INSERT INTO sources (path, device, inode, head_hash, head_len, offset, size, mtime_ns, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (path) DO UPDATE SET device = excluded.device, inode = excluded.inode,"
            " head_hash = excluded.head_hash, head_len = excluded.head_len, offset = excluded.offset,"
            " size = excluded.size, mtime_ns = excluded.mtime_ns, updated_at = excluded.updated_at",
            (checkpoint.path, checkpoint.device, checkpoint.inode, checkpoint.head_hash,
             checkpoint.head_len, checkpoint.offset, checkpoint.size, checkpoint.mtime_ns, now),
        )
        checkpoint.source_id = tx.execute("SELECT source_id FROM sources WHERE path = ?", (checkpoint.path,))[0][0]
    else:
        tx.execute(
            "UPDATE sources SET device = ?, inode = ?, head_hash = ?, head_len = ?, offset = ?, size = ?,"
            " mtime_ns = ?, updated_at = ? WHERE source_id = ?",
            (checkpoint.device, checkpoint.inode, checkpoint.head_hash, checkpoint.head_len,
             checkpoint.offset, checkpoint.size, checkpoint.mtime_ns, now, checkpoint.source_id),
        )
    return checkpoint.source_id


def record_provenance(tx, rows: list[tuple[int, int, int]]) -> None:
    """Remember where events were read: (position, source_id, offset) rows."""
    tx.executemany("INSERT OR IGNORE INTO line_sources (position, source_id, offset) VALUES (?, ?, ?)", rows)


def provenance(conn, position: int) -> list[tuple[str, int]]:
    """Every (file path, byte offset) an event was read from."""
    return [
        (path, offset)
        for path, offset in conn.execute(
            "SELECT s.path, l.offset FROM line_sources l JOIN sources s USING (source_id)"
            " WHERE l.position = ? ORDER BY s.path, l.offset",
            (position,),
        )
    ]
