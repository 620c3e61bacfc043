"""Where the space goes, and getting it back: `stats`, and compressing payloads stored as they are.

Compressing old payloads is the one other sanctioned rewrite of the events table besides
redaction: the bytes a reader sees do not change, only how they are stored. Each batch drops
the append-only triggers, rewrites its rows and restores the triggers in one transaction, and
records how far it got, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import re

import msgspec
import zstandard

from eventstore import payloads
from eventstore.codec import SMALLEST_COMPRESSED
from eventstore.storage import migrations
from eventstore.store import Store

PENDING_KEY = "compress_payloads.after"
BATCH = 2_000


class TableSize(msgspec.Struct, frozen=True):
    """Bytes used by one table or index (from SQLite's dbstat)."""

    name: str
    kind: str
    bytes: int


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    """The `eventstore stats --json` document."""

    events: int
    raw_bytes: int
    stored_bytes: int
    compression_ratio: float
    database_bytes: int
    wal_bytes: int
    dictionaries: int
    tables: list[TableSize]


class CompactReport(msgspec.Struct, kw_only=True):
    """What a payload compression run did."""

    events: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    done: bool = False


def stats(store: Store) -> Stats:
    """Events, raw and stored payload bytes, and the bytes of every table and index."""
    conn = store.db.conn
    raw = stored = events = 0
    with store.db.read():
        for dict_id, data in conn.execute("SELECT dict_id, data FROM events"):
            events += 1
            stored += len(data)
            raw += len(data) if dict_id is None else zstandard.frame_content_size(data)
        for sizes, frames, stored_bytes in conn.execute("SELECT sizes, frames, length(data) FROM blocks"):
            stored += stored_bytes
            raw += sum(payloads.layout(sizes, frames, stored_bytes)[0])
        kinds = dict(conn.execute("SELECT name, type FROM sqlite_schema"))
        tables = [
            TableSize(name=name, kind=kinds.get(name, "internal"), bytes=size)
            for name, size in conn.execute(
                "SELECT name, sum(pgsize) AS size FROM dbstat GROUP BY name ORDER BY size DESC"
            )
        ]
        dictionaries = conn.execute("SELECT count(*) FROM dictionaries").fetchall()[0][0]
    wal = store.path.with_name(store.path.name + "-wal")
    return Stats(
        events=events, raw_bytes=raw, stored_bytes=stored,
        compression_ratio=round(raw / stored, 3) if stored else 1.0,
        database_bytes=store.path.stat().st_size, wal_bytes=wal.stat().st_size if wal.exists() else 0,
        dictionaries=dictionaries, tables=tables,
    )


def schedule_compression(store: Store) -> None:
    """Ask for every payload stored as it is to be compressed (the next `compress_payloads` run)."""
    with store.transaction() as tx:
        tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, '0')", (PENDING_KEY,))


def compression_pending(store: Store) -> bool:
    """Whether a payload compression run is scheduled or unfinished."""
    return bool(store.db.conn.execute("SELECT 1 FROM meta WHERE key = ?", (PENDING_KEY,)).fetchall())


def compress_payloads(store: Store, *, max_batches: int | None = None) -> CompactReport:
    """Compress payloads stored as they are, in resumable batches; a no-op unless scheduled."""
    report = CompactReport()
    if not store.codec.compress:
        return report
    triggers = _trigger_sql()
    with store.transaction() as tx:  # learn a dictionary first if the log never had one
        head = tx.head()
        if store.codec.training_due(head):
            store.codec.train(tx._conn, head, tx.now)
    batches = 0
    while max_batches is None or batches < max_batches:
        with store.transaction() as tx:
            rows = tx.execute("SELECT value FROM meta WHERE key = ?", (PENDING_KEY,))
            if not rows:
                report.done = True
                return report
            after = int(rows[0][0])
            batch = tx.execute(
                "SELECT position, data FROM events WHERE position > ? AND dict_id IS NULL"
                " AND block_id IS NULL AND length(data) >= ? ORDER BY position LIMIT ?",
                (after, SMALLEST_COMPRESSED, BATCH),
            )
            if not batch:
                tx.execute("DELETE FROM meta WHERE key = ?", (PENDING_KEY,))
                report.done = True
                return report
            updates = []
            for position, data in batch:
                dict_id, packed = store.codec.encode(data)
                if dict_id is not None:
                    updates.append((dict_id, packed, position))
                    report.bytes_before += len(data)
                    report.bytes_after += len(packed)
            tx.execute("DROP TRIGGER events_append_only_update")
            tx.executemany("UPDATE events SET dict_id = ?, data = ? WHERE position = ?", updates)
            tx.execute(triggers)
            tx.execute("UPDATE meta SET value = ? WHERE key = ?", (str(batch[-1][0]), PENDING_KEY))
            report.events += len(updates)
        batches += 1
    return report


def _trigger_sql() -> str:
    """The append-only UPDATE trigger exactly as the log's first migration creates it."""
    first = migrations()[0][2]
    match = re.search(r"CREATE TRIGGER events_append_only_update.*?END;", first, re.S)
    assert match, "the append-only trigger is missing from the first migration"
    return match.group(0)
