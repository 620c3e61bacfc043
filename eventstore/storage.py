"""SQLite storage: opening a database safely, its settings, migrations and write transactions.

This is the one module that knows apsw: it translates driver errors into the named errors of
`eventstore.errors`, so nothing above it handles SQLite exceptions.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import random
import re
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import apsw

from eventstore import errors

BUSY_TIMEOUT_MS = 5_000
WRITE_RETRY_SECONDS = 60.0
"""How long a writer keeps retrying BEGIN IMMEDIATE (after each 5 s busy timeout) before giving up."""

_MIGRATION_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")


# Connection settings, one function each (https://www.sqlite.org/pragma.html).


PAGE_SIZE = 4_096


def use_small_pages(conn: apsw.Connection) -> None:
    """4 KiB pages for new databases: payload blocks (a few KB to tens of KB each) fill whole
    overflow pages and leave at most a small page part-empty; with 16 KiB pages a fifth of the
    blocks table was empty space (measured on a generated tree: the log 14% smaller)."""
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE:d}")


def use_incremental_vacuum(conn: apsw.Connection) -> None:
    """New databases keep a map of their pages (auto_vacuum = INCREMENTAL), so that the pages a
    bulk build frees (full-text segments merged away: about 1 MB after ingesting the 500 MB
    generated tree) can go back to the file system (`Database.release_free_pages`). A database
    created without it keeps its mode until `eventstore compact` rebuilds it.

    Set on a new, empty file only: the pragma takes the write lock even when it changes nothing,
    so every command opening the database would wait for a writer's transaction to end."""
    if conn.execute("PRAGMA page_count").fetchall()[0][0] == 0:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")


def use_wal(conn: apsw.Connection) -> None:
    """WAL: readers never block the writer and the writer never blocks readers."""
    conn.execute("PRAGMA journal_mode = WAL").fetchall()


def use_large_wal(conn: apsw.Connection) -> None:
    """Checkpoint the WAL into the database every 16 MiB written rather than every 4 MiB (1,000
    pages): a bulk append then pays for a checkpoint and its fsyncs a quarter as often."""
    page_size = conn.execute("PRAGMA page_size").fetchall()[0][0]
    conn.execute(f"PRAGMA wal_autocheckpoint = {16 * 1024 * 1024 // page_size:d}")


def use_synchronous_normal(conn: apsw.Connection) -> None:
    """NORMAL in WAL mode: a commit survives an application crash; fsync only at checkpoints."""
    conn.execute("PRAGMA synchronous = NORMAL")


def use_busy_timeout(conn: apsw.Connection) -> None:
    """Wait up to 5 s for another process's lock instead of failing at once."""
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)


def use_foreign_keys(conn: apsw.Connection) -> None:
    """Enforce REFERENCES clauses, which SQLite ignores by default."""
    conn.execute("PRAGMA foreign_keys = ON")


def use_memory_temp_store(conn: apsw.Connection) -> None:
    """Sorts and temporary indexes in memory: faster, and no temp files holding secrets."""
    conn.execute("PRAGMA temp_store = MEMORY")


def use_large_cache(conn: apsw.Connection) -> None:
    """A 32 MiB page cache: replays and reports scan the log. No memory mapping: mapped pages
    count in the process's RSS and ingestion of a large tree must stay well under 300 MB."""
    conn.execute("PRAGMA cache_size = -32768")


SETTINGS: tuple[Callable[[apsw.Connection], None], ...] = (
    use_busy_timeout,
    use_small_pages,
    use_incremental_vacuum,
    use_wal,
    use_large_wal,
    use_synchronous_normal,
    use_foreign_keys,
    use_memory_temp_store,
    use_large_cache,
)


def prepare_path(path: Path) -> None:
    """Create the database's directory (0700) and file (0600) if missing, whatever the umask."""
    make_private_directory(path.parent)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)


def make_private_files(path: Path) -> None:
    """Make a database of ours and its WAL files (which SQLite creates with the database's mode)
    readable by their owner alone, when we own them. Called once the file is known to be ours:
    a file --db names by mistake keeps its mode."""
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            status = file.stat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(status.st_mode) and stat.S_IMODE(status.st_mode) & 0o077 and status.st_uid == os.getuid():
            os.chmod(file, 0o600)


def make_private_directory(directory: Path) -> None:
    """Create a directory and every missing parent with mode 0700, whatever the umask (mkdir's
    `parents` would give the parents the umask's mode): ~/.local/share, say, on a new machine."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another process: its mode is its own
            continue
        os.chmod(directory, 0o700)


def select_in(conn: apsw.Connection, sql: str, values: Sequence[object], chunk: int = 500) -> list[tuple]:
    """Rows of `sql`, whose `{}` is replaced by a list of placeholders, for all `values` (bound
    a chunk at a time: SQLite limits how many parameters a statement takes)."""
    rows: list[tuple] = []
    for start in range(0, len(values), chunk):
        part = values[start:start + chunk]
        rows += conn.execute(sql.format(",".join("?" * len(part))), part).fetchall()
    return rows


def migrations() -> list[tuple[int, str, str]]:
    """The log's migrations in order: (version, name, SQL) from eventstore/sql/NNNN_name.sql."""
    found = []
    for entry in importlib.resources.files("eventstore.sql").iterdir():
        if m := _MIGRATION_FILE.match(entry.name):
            found.append((int(m.group(1)), m.group(2), entry.read_text()))
    found.sort()
    for expected, (version, _, _) in enumerate(found, start=1):
        if version != expected:
            raise RuntimeError(f"migration {expected:04d} is missing")
    return found


def latest_schema_version() -> int:
    """The schema version this code writes."""
    return len(migrations())


class Database:
    """One apsw connection with our settings, migrated on open, with retried write transactions."""

    def __init__(self, path: str | os.PathLike[str], *, migrate: bool = True, one_thread: bool = False) -> None:
        """`one_thread`: the connection is only ever used from one thread, so SQLite need not take
        its mutex around every call (a third of the cost of fetching a row of the log)."""
        self.path = Path(path)
        self._depth = 0
        self.migrated_from = 0
        self.applied_migrations: list[tuple[int, str]] = []
        """(version, name) of the migrations this open applied; the Store records them in `audit`."""
        with translated(self.path):
            prepare_path(self.path)
            self.conn = apsw.Connection(
                str(self.path), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
                | (apsw.SQLITE_OPEN_NOMUTEX if one_thread else 0)
            )
            try:
                use_busy_timeout(self.conn)  # before the first read: another process may be writing
                self._check_is_ours()
                make_private_files(self.path)
                for setting in SETTINGS:
                    setting(self.conn)
                if migrate:
                    self._migrate()
            except BaseException:
                self.conn.close()
                raise

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Transactions

    @contextlib.contextmanager
    def write(self) -> Iterator[apsw.Connection]:
        """A write transaction (BEGIN IMMEDIATE), retried with backoff while another writer holds the lock."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        with translated(self.path):
            self._begin_immediate()
            self._depth = 1
            try:
                yield self.conn
            except BaseException:
                self._depth = 0
                if not self.conn.in_transaction:
                    raise
                self.conn.execute("ROLLBACK")
                raise
            self._depth = 0
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    def release_free_pages(self) -> int:
        """Give the database's free pages back to the file system (databases created with
        incremental auto-vacuum; others keep them for reuse, as they do when another writer
        holds the lock past the retries). Returns how many were released."""
        try:
            with self.write() as conn:
                if conn.execute("PRAGMA auto_vacuum").fetchall()[0][0] != 2:
                    return 0
                free = conn.execute("PRAGMA freelist_count").fetchall()[0][0]
                if free:
                    conn.execute("PRAGMA incremental_vacuum").fetchall()
                return free
        except errors.StoreBusy:
            return 0

    @contextlib.contextmanager
    def read(self) -> Iterator[apsw.Connection]:
        """A read transaction: every query inside sees one consistent snapshot."""
        if self.conn.in_transaction:
            yield self.conn
            return
        with translated(self.path):
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            finally:
                if self.conn.in_transaction:
                    self.conn.execute("COMMIT")

    def _begin_immediate(self) -> None:
        deadline = time.monotonic() + WRITE_RETRY_SECONDS
        delay = 0.01
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except apsw.BusyError:
                if time.monotonic() >= deadline:
                    raise errors.StoreBusy(
                        f"{self.path}: another process has held the write lock for over "
                        f"{WRITE_RETRY_SECONDS:.0f} s; try again when it finishes"
                    ) from None
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)

    # Opening checks and migrations

    def _check_is_ours(self) -> None:
        try:
            tables = {
                name for (name,) in self.conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
            }
            user_version = self.conn.execute("PRAGMA user_version").fetchall()[0][0]
        except (apsw.NotADBError, apsw.CorruptError):
            if _sqlite_header(self.path):  # a SQLite file, cut short or overwritten in part
                raise errors.CorruptDatabase(
                    f"{self.path} is damaged (SQLite cannot read it); restore it from a backup, or move it "
                    "away and ingest again: the transcripts Claude Code still keeps come back"
                ) from None
            raise errors.NotADatabase(
                f"{self.path} is not an eventstore database (it is not a SQLite file); "
                "point --db at another path or move this file away"
            ) from None
        latest = latest_schema_version()
        if user_version > latest:
            raise errors.TooNewDatabase(
                f"{self.path} was written by a newer eventstore (schema {user_version}; this "
                f"version knows up to {latest}); upgrade eventstore to use it"
            )
        if (user_version == 0 and tables - {"sqlite_sequence"}) or (user_version > 0 and not {"meta", "events"} <= tables):
            raise errors.NotADatabase(
                f"{self.path} is a SQLite database but not an eventstore one "
                f"(it has tables {', '.join(sorted(tables)[:5])}); point --db at another path"
            )

    def schema_version(self) -> int:
        """The log schema version recorded in the file."""
        return self.conn.execute("PRAGMA user_version").fetchall()[0][0]

    def _migrate(self) -> None:
        self.migrated_from = self.schema_version()
        for version, name, sql in migrations():
            if self.schema_version() >= version:
                continue
            with self.write() as conn:
                if self.schema_version() >= version:  # another process got there first
                    continue
                conn.execute(sql)
                if version == 1:
                    conn.execute(
                        "CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                        " applied_at INTEGER NOT NULL)"
                    )
                conn.execute(
                    "INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, now_ms()),
                )
                conn.execute(f"PRAGMA user_version = {version:d}")
            self.applied_migrations.append((version, name))


def now_ms() -> int:
    """The current time in integer milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def _sqlite_header(path: Path) -> bool:
    """Whether a file begins as every SQLite database does."""
    try:
        with open(path, "rb") as file:
            return file.read(16) == b"SQLite format 3\0"
    except OSError:
        return False


@contextlib.contextmanager
def translated(path: Path) -> Iterator[None]:
    """Turn apsw errors into eventstore's named errors with a message that says what to do."""
    try:
        yield
    except apsw.FullError:
        raise errors.StorageFull(
            f"{path}: the disk or the database's size limit is full; nothing of this write was "
            "kept. Free some space and run the command again"
        ) from None
    except apsw.NotADBError:
        raise errors.NotADatabase(f"{path} is not an eventstore database (not a SQLite file)") from None
    except apsw.CorruptError:
        raise errors.CorruptDatabase(
            f"{path} is damaged (SQLite reports corruption); restore it from a backup"
        ) from None
    except apsw.CantOpenError:
        raise errors.DatabaseError(f"cannot open {path}: check that the directory exists and is writable") from None
    except apsw.ReadOnlyError:
        raise errors.DatabaseError(f"{path} is read-only; check its permissions") from None
    except apsw.BusyError:
        raise errors.StoreBusy(f"{path} is locked by another process; try again") from None
