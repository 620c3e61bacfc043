"""Ingestion: read what is new in transcript files and append it to the log, exactly once.

For each file the checkpoint says where reading resumes; an unchanged file (same inode, size
and mtime) is not opened at all. A file is known by its device and inode, so one reached under
several names (a symlinked root, a hard link) is read once, under the name it was first read
under. Events, provenance, quarantine rows and the checkpoints that cover them are written in
one transaction per batch, so a crash loses and repeats nothing.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

import msgspec
import msgspec.structs

from eventstore.ingest import quarantine
from eventstore.ingest.lines import MAX_LINE, Bad, Piece, complete_lines, line_event, line_pieces
from eventstore.ingest.sources import (
    HEAD_BYTES,
    Checkpoint,
    fallback_session,
    head_hash,
    load_checkpoints,
    record_provenance,
    save_checkpoint,
    transcript_files,
)
from eventstore.store import Store

CHUNK = 4 * 1024 * 1024
BATCH_EVENTS = 10_000
BATCH_BYTES = 8 * 1024 * 1024
QUEUED_BATCHES = 1
"""Batches read ahead of the one being committed (bounds memory to a few batches)."""

Progress = Callable[[int, int], None]
"""Called with (bytes read so far, bytes to read in all) as ingestion advances."""
KEPT_WARNINGS = 100
"""Warnings a running total (`tail`'s) keeps, the most recent; older ones are only counted."""


class IngestReport(msgspec.Struct, kw_only=True):
    """What one ingest did (the `ingest --json` document)."""

    files: int = 0
    lines: int = 0
    bytes: int = 0
    events_appended: int = 0
    duplicates: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    files_seen: int = 0
    warnings: list[str] = msgspec.field(default_factory=list)
    warnings_dropped: int = 0
    """Older warnings a running total let go of (`add`), so that a long tail's stays bounded."""

    def add(self, other: IngestReport) -> None:
        """Accumulate another report into this one (used by `tail`), keeping the KEPT_WARNINGS
        most recent warnings: a file that cannot be read warns each time it changes, for as long
        as the tail runs."""
        for field in ("files", "lines", "bytes", "events_appended", "duplicates", "quarantined", "files_seen",
                      "warnings_dropped"):
            setattr(self, field, getattr(self, field) + getattr(other, field))
        self.seconds += other.seconds
        self.warnings.extend(other.warnings)
        excess = len(self.warnings) - KEPT_WARNINGS
        if excess > 0:
            del self.warnings[:excess]
            self.warnings_dropped += excess


class _Work(msgspec.Struct):
    path: Path
    stat: os.stat_result
    checkpoint: Checkpoint | None


class _Batch:
    """Events, bad lines and checkpoints waiting to be committed together, keyed by file path."""

    def __init__(self) -> None:
        self.pieces: list[tuple[str, Piece]] = []
        self.bad: list[tuple[str, Bad]] = []
        self.checkpoints: dict[str, Checkpoint] = {}
        self.data_bytes = 0
        self.read_bytes = 0

    def full(self) -> bool:
        return len(self.pieces) >= BATCH_EVENTS or self.data_bytes >= BATCH_BYTES

    def handoff(self) -> _Batch:
        """This batch with its checkpoints frozen as they are now; self starts empty."""
        ready = _Batch()
        ready.pieces, ready.bad, ready.data_bytes, ready.read_bytes = self.pieces, self.bad, self.data_bytes, self.read_bytes
        ready.checkpoints = {path: msgspec.structs.replace(cp) for path, cp in self.checkpoints.items()}
        self.pieces, self.bad, self.data_bytes, self.read_bytes = [], [], 0, 0
        self.checkpoints = {}
        return ready


_DONE = object()


class Ingester:
    """Reads transcript files into a Store."""

    def __init__(
        self,
        store: Store,
        *,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.progress = progress
        self.stop = stop or threading.Event()

    def ingest(self, roots: Iterable[Path]) -> IngestReport:
        """Ingest every transcript file under the roots."""
        report = IngestReport()
        files = list(transcript_files(roots, report.warnings.append))
        return self.ingest_files(files, report)

    def ingest_files(self, files: Iterable[Path], report: IngestReport | None = None) -> IngestReport:
        """Ingest what is new in the given files."""
        report = report or IngestReport()
        started = time.perf_counter()
        checkpoints = load_checkpoints(self.store.db.conn)
        by_identity = {(cp.device, cp.inode): cp for cp in checkpoints.values()}
        taken: set[tuple[int, int]] = set()
        work = []
        for path in files:
            path = path.absolute()  # one key per file, however it was named
            try:
                stat = path.stat()
            except OSError as exc:
                report.files_seen += 1
                report.warnings.append(f"skipping {path}: {exc.strerror}")
                continue
            identity = (stat.st_dev, stat.st_ino)
            if identity in taken:
                continue  # the same file under another name (a root reached two ways, a link)
            taken.add(identity)
            report.files_seen += 1
            if not S_ISREG(stat.st_mode):  # a pipe or device would block or never end
                report.warnings.append(f"skipping {path}: not a regular file")
                continue
            checkpoint = checkpoints.get(str(path))
            if checkpoint is None and identity in by_identity:
                path, checkpoint = _known_name(path, by_identity[identity])
            if checkpoint is not None and _unchanged(checkpoint, stat):
                continue
            work.append(_Work(path, stat, checkpoint))
        total = sum(max(w.stat.st_size - (w.checkpoint.offset if w.checkpoint else 0), 0) for w in work)
        # A reader thread parses files while this thread commits the previous batch: SQLite
        # and zstd release the GIL, so reading and writing overlap.
        batches: queue.Queue = queue.Queue(maxsize=QUEUED_BATCHES)
        abort = threading.Event()
        reader = threading.Thread(target=self._read_all, args=(work, batches, report, abort),
                                  name="eventstore-reader", daemon=True)
        reader.start()
        done = 0
        try:
            while (batch := batches.get()) is not _DONE:
                if isinstance(batch, BaseException):
                    raise batch
                self._flush(batch, report)
                done += batch.read_bytes
                if self.progress:
                    self.progress(done, total)
        finally:
            abort.set()
            reader.join()
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _read_all(self, work: list[_Work], out: queue.Queue, report: IngestReport, abort: threading.Event) -> None:
        """Read every file's new lines into batches and hand them to the committing thread."""

        def put(item: object) -> bool:
            while not abort.is_set():
                try:
                    out.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            batch = _Batch()
            for item in work:
                if self.stop.is_set() or abort.is_set():
                    break
                if self._read_file(item, batch, report, put) is not None:
                    report.files += 1
            put(batch.handoff())
        except BaseException as exc:  # handed to the committing thread, which raises it
            put(exc)
        finally:
            put(_DONE)

    def _read_file(self, item: _Work, batch: _Batch, report: IngestReport, put: Callable[[object], bool]) -> int | None:
        """Add a file's new complete lines to the batch, handing it off as it fills; return bytes read."""
        path, stat, old = item.path, item.stat, item.checkpoint
        try:
            handle = open(path, "rb")
        except OSError as exc:
            report.warnings.append(f"skipping {path}: {exc.strerror}")
            return None
        with handle:
            head = handle.read(HEAD_BYTES)
            start, seam = _resume(old, stat, head, handle)
            checkpoint = Checkpoint(
                source_id=old.source_id if old else None, path=str(path), device=stat.st_dev,
                inode=stat.st_ino, head_hash=head_hash(head[: min(len(head), start)]),
                head_len=min(len(head), start), offset=start, size=start, mtime_ns=stat.st_mtime_ns,
                seam_hash=head_hash(seam),
            )
            batch.checkpoints[checkpoint.path] = checkpoint
            session = fallback_session(path)
            handle.seek(start)
            offset, pending, skipping = start, b"", False
            while chunk := handle.read(CHUNK):
                buffer = pending + chunk if pending else chunk
                lines, consumed = complete_lines(buffer, offset)
                if skipping and lines:
                    lines, skipping = lines[1:], False  # the rest of an over-long line
                report.lines += len(lines)
                for line_offset, line in lines:
                    event = line_event(line, session)  # one object on the line: nearly always
                    if event is not None:
                        batch.pieces.append((checkpoint.path, Piece(line_offset, event)))
                        batch.data_bytes += len(line)
                        continue
                    for piece in line_pieces(line_offset, line, session):
                        if isinstance(piece, Piece):
                            batch.pieces.append((checkpoint.path, piece))
                            batch.data_bytes += len(piece.event.data)
                        else:
                            batch.bad.append((checkpoint.path, piece))
                offset += consumed
                seam = _seam(seam, buffer, consumed)
                pending = buffer[consumed:]
                if len(pending) > MAX_LINE and not skipping:
                    batch.bad.append((checkpoint.path, Bad(offset, f"line longer than the {MAX_LINE}-byte limit: only its "
                                                                   f"first {MAX_LINE} bytes are kept", pending[:MAX_LINE])))
                    skipping = True
                if skipping:
                    offset += len(pending)
                    seam = _seam(seam, pending, len(pending))
                    pending = b""
                self._advance(checkpoint, head, offset, offset + len(pending), seam)
                batch.read_bytes += len(chunk)
                if batch.full():
                    if not put(batch.handoff()):
                        break
                    batch.checkpoints[checkpoint.path] = checkpoint
                    if self.stop.is_set():
                        break
            report.bytes += offset - start
            return offset - start

    @staticmethod
    def _advance(checkpoint: Checkpoint, head: bytes, offset: int, size: int, seam: bytes) -> None:
        head_len = min(len(head), offset)
        if head_len != checkpoint.head_len:
            checkpoint.head_len, checkpoint.head_hash = head_len, head_hash(head[:head_len])
        if offset != checkpoint.offset:
            checkpoint.seam_hash = head_hash(seam)
        checkpoint.offset, checkpoint.size = offset, size

    def _flush(self, batch: _Batch, report: IngestReport) -> None:
        """Commit the batch's events, provenance, quarantine rows and checkpoints in one transaction."""
        if not (batch.pieces or batch.bad or batch.checkpoints):
            return
        with self.store.transaction() as tx:
            source_ids = {path: save_checkpoint(tx, cp, tx.now) for path, cp in batch.checkpoints.items()}
            appended_before = tx.appended_count
            positions = tx.append([piece.event for _, piece in batch.pieces])
            appended = tx.appended_count - appended_before
            record_provenance(
                tx, [(position, source_ids[path], piece.offset) for position, (path, piece) in zip(positions, batch.pieces)]
            )
            new_bad = quarantine.add(
                tx, [(source_ids[path], bad.offset, bad.reason, bad.data) for path, bad in batch.bad], tx.now
            )
        report.events_appended += appended
        report.duplicates += len(positions) - appended
        report.quarantined += new_bad


def _known_name(path: Path, checkpoint: Checkpoint) -> tuple[Path, Checkpoint | None]:
    """The name a file was read under before, with its checkpoint, when `path` is another name for
    it (a root reached through a symlink as well, a hard link); else `path`, new. Without this
    the file would be read again from its start under each name."""
    try:
        if os.path.samefile(checkpoint.path, path):
            return Path(checkpoint.path), checkpoint
    except OSError:  # the old name is gone: its inode may have been reused
        pass
    return path, None


def _unchanged(checkpoint: Checkpoint, stat: os.stat_result) -> bool:
    return (
        checkpoint.device == stat.st_dev
        and checkpoint.inode == stat.st_ino
        and checkpoint.size == stat.st_size
        and checkpoint.mtime_ns == stat.st_mtime_ns
    )


def _resume(old: Checkpoint | None, stat: os.stat_result, head: bytes, handle: BinaryIO) -> tuple[int, bytes]:
    """Where to resume, and the up to HEAD_BYTES bytes before it: the checkpoint's offset if this
    is the same file, grown, with its bytes before that offset as they were; else the start."""
    if old is None or (old.device, old.inode) != (stat.st_dev, stat.st_ino):
        return 0, b""
    if stat.st_size < old.offset or len(head) < old.head_len:
        return 0, b""  # shrank: rewritten
    if head_hash(head[: old.head_len]) != old.head_hash:
        return 0, b""  # the beginning changed: rewritten
    length = min(HEAD_BYTES, old.offset)
    handle.seek(old.offset - length)
    seam = handle.read(length)
    if old.seam_hash is not None and head_hash(seam) != old.seam_hash:
        return 0, b""  # changed before the offset, the beginning kept: rewritten in place
    return old.offset, seam


def _seam(seam: bytes, data: bytes, end: int) -> bytes:
    """The up to HEAD_BYTES bytes before a file's offset, once it moves on past `data[:end]`."""
    return (seam + data[max(0, end - HEAD_BYTES):end])[-HEAD_BYTES:]
