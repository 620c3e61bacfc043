"""`eventstore backup`: an online, consistent copy of the database through SQLite's backup API.

The copy is taken while other processes keep writing (https://www.sqlite.org/backup.html). It
goes a few hundred pages at a time with a short pause between steps, so it never holds the
database for long; when a writer commits between two steps SQLite restarts the copy, so after
each restart the steps grow, and the last resort copies everything in one step (one read
transaction: in WAL mode writers carry on meanwhile). The copy is written to a temporary file
beside DEST (mode 0600, in a 0700 directory if the directory is new) and renamed into place
only once complete, so DEST is never a half-written database.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import apsw
import msgspec

from eventstore.errors import DatabaseError
from eventstore.storage import make_private_directory, translated
from eventstore.store import Store

PAGES_PER_STEP = 256
PAUSE_SECONDS = 0.002
RESTARTS_BEFORE_ONE_STEP = 6
"""After this many restarts (writers committed mid-copy), copy the rest in a single step."""

Progress = Callable[[int, int], None]
"""Called with (pages copied, pages in all) after each step."""


class BackupReport(msgspec.Struct, kw_only=True):
    """What a backup did."""

    path: str
    bytes: int
    pages: int
    steps: int
    restarts: int
    seconds: float


class BackupExists(DatabaseError):
    """The destination exists and overwriting it was not asked for."""


def backup(store: Store, dest: str | os.PathLike[str], *, overwrite: bool = False,
           pages_per_step: int = PAGES_PER_STEP, pause: float = PAUSE_SECONDS,
           progress: Progress | None = None) -> BackupReport:
    """Copy the store's database to `dest`, consistently, while other processes write."""
    started = time.perf_counter()
    dest = Path(dest).expanduser().absolute()
    if dest.exists():
        if dest.is_dir():
            raise BackupExists(f"{dest} is a directory; give the path of the copy to write")
        if store.path.exists() and os.path.samefile(dest, store.path):
            raise BackupExists(f"{dest} is the database itself; give another path")
        if not overwrite:
            raise BackupExists(f"{dest} exists; remove it or pass --force to overwrite it")
    directory = dest.parent
    make_private_directory(directory)
    temporary = directory / f".{dest.name}.backup-{os.getpid()}"
    _remove(temporary)
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.fchmod(fd, 0o600)
    os.close(fd)
    steps = restarts = 0
    try:
        with translated(temporary):
            target = apsw.Connection(str(temporary))
            try:
                with target.backup("main", store.db.conn, "main") as copy:
                    step, best = pages_per_step, None
                    while not copy.done:
                        one_step = restarts >= RESTARTS_BEFORE_ONE_STEP
                        copy.step(-1 if one_step else step)
                        steps += 1
                        remaining, total = copy.remaining, copy.page_count
                        if best is not None and remaining > best:  # a writer committed: SQLite started over
                            restarts += 1
                            step *= 2
                        best = remaining if best is None else min(best, remaining)
                        if progress is not None:
                            progress(total - remaining, total)
                        if not copy.done:
                            time.sleep(pause)
                pages = target.execute("PRAGMA page_count").fetchall()[0][0]
                # The copy carries the source's WAL mode; fold its WAL in so DEST is one file.
                target.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                target.close()
        _fsync(temporary)
        for stale in (Path(f"{dest}-wal"), Path(f"{dest}-shm")):  # an old WAL would be replayed onto the copy
            _remove(stale)
        os.replace(temporary, dest)
        _fsync_directory(directory)
    except BaseException:
        for leftover in (temporary, Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
            _remove(leftover)
        raise
    for leftover in (Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
        _remove(leftover)
    return BackupReport(path=str(dest), bytes=dest.stat().st_size, pages=pages, steps=steps, restarts=restarts,
                        seconds=round(time.perf_counter() - started, 3))


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
