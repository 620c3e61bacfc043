"""The Store: append events to the log, read them back, follow it as it grows.

Public methods own their transaction; `Store.transaction()` hands out a `Transaction` so other
writes (a file checkpoint, a projection's rows) commit atomically with the events they cover.
Owns the `events`, `streams` and `clients` tables (DDL in sql/0001_log.sql and
sql/0006_compact_events.sql); the writing itself is in eventstore.transaction.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path

from eventstore import entity_ids, payloads, stream_index
from eventstore.codec import Codec
from eventstore.names import Names
from eventstore.errors import EventStoreError
from eventstore.storage import Database, now_ms, select_in, translated
from eventstore.transaction import Transaction, client_number
from schemas.envelope import Change, ExpectedVersion, NewEvent, RecordedEvent
from schemas.upcasting import upcasters

AfterAppend = Callable[["Transaction"], None]
"""A hook run inside every write transaction that appended events, before it commits; it reads
what was appended with `Transaction.appended_events(types)` and `appended_range()`."""

_COLUMNS = (
    "position, event_id, stream_no, version, type_no, schema_version, entity_no, entity_id, op_no,"
    " client_no, actor_no, occurred_at, recorded_at, causation_id, correlation_id, dict_id, data, block_id"
)


class Store:
    """An append-only event log in one SQLite file."""

    def __init__(self, path: str | os.PathLike[str], *, compress: bool = True, read_only: bool = False) -> None:
        """Open (creating and migrating if needed) the log at `path`.

        `compress=False` stores new payloads as they are (readers are unaffected either way);
        it exists so benchmarks can measure what compression costs. `read_only=True` opens an
        existing, migrated log for reading alone: it writes nothing on open (no migration, no
        client row), so a helper process can read while another holds the write lock; such a
        store must be used from one thread only.
        """
        self.path = Path(path)
        self.read_only = read_only
        self.db = Database(self.path, migrate=not read_only, one_thread=read_only)
        self.codec = Codec(self.db.conn, compress=compress)
        payloads.register_sql_function(self.db.conn, self.codec)
        self._stream_names: dict[int, str] = {}
        self._client_ids: dict[int, str] = {}
        self.names = Names()
        self.after_append: list[AfterAppend] = []
        self._saw_duplicates = False
        """Whether the last append here found ids already stored: the next one then looks them up first."""
        if read_only:
            self.client_id, self._client_no = "", None
            return
        self.client_id, self._client_no = self._own_client()
        self._finish_payload_compression()
        if self.db.applied_migrations:
            from eventstore.audit import record_migrations

            record_migrations(self)

    def close(self) -> None:
        """Close the database connection, first storing a dictionary still training (it learnt
        from this process's appends; without it the next process would train again)."""
        if self.codec.training():
            with contextlib.suppress(EventStoreError), self.db.write() as conn:
                self.codec.adopt(conn, now_ms(), wait=True)
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Writing

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One write transaction: appends and other writes in it commit together or not at all."""
        if self.read_only:
            raise EventStoreError(f"{self.path}: this store was opened read-only")
        try:
            with self.db.write() as conn:
                self.codec.reload()
                tx = Transaction(self, conn)
                self.codec.adopt(conn, tx.now)
                yield tx
                if tx.appended_count:
                    for hook in self.after_append:
                        hook(tx)
                    head = tx.head()
                    if self.codec.training_due(head):
                        self.codec.train_later(conn, head, tx.appended_payloads())
        except BaseException:
            self.names.forget()  # names this transaction added are gone with it
            raise

    def append(
        self,
        events: Iterable[NewEvent],
        expected_version: int | Mapping[str, int] = ExpectedVersion.ANY,
    ) -> list[int]:
        """Append events atomically and return their positions (see `Transaction.append`)."""
        with self.transaction() as tx:
            return tx.append(events, expected_version)

    # Reading

    def head(self) -> int:
        """The position of the last event (0 when the log is empty)."""
        with translated(self.path):
            return self.db.conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchall()[0][0]

    def stream_version(self, stream: str) -> int:
        """The current version of a stream (0 when it does not exist)."""
        with translated(self.path):
            rows = self.db.conn.execute("SELECT version FROM streams WHERE name = ?", (stream,)).fetchall()
        return rows[0][0] if rows else 0

    def read_stream(self, stream: str, from_version: int = 1) -> list[RecordedEvent]:
        """Every event of one stream from a version on, in version order."""
        with self.db.read() as conn:
            found = conn.execute("SELECT stream_no FROM streams WHERE name = ?", (stream,)).fetchall()
            if not found:
                return []
            wanted = stream_index.positions(conn, found[0][0], from_version)
            return self._recorded_rows(
                select_in(conn, f"SELECT {_COLUMNS} FROM events WHERE position IN ({{}}) ORDER BY position", wanted))

    def read_all(
        self,
        after: int = 0,
        limit: int | None = None,
        *,
        types: Collection[str] | None = None,
        payload_types: Collection[str] | None = None,
        through: int | None = None,
    ) -> list[RecordedEvent]:
        """Events after a position (and up to `through`) in log order, at most `limit`, optionally
        of some types only.

        With `payload_types`, only events of those types carry their data; the others come with
        `data=b""`, which spares decompressing payloads a reader does not look at.
        """
        sql = f"SELECT {_COLUMNS} FROM events WHERE position > ?"
        params: list[object] = [after]
        if through is not None:
            sql += " AND position <= ?"
            params.append(through)
        if types is not None:
            numbers = self.names.known(self.db.conn, types)
            sql += f" AND type_no IN ({','.join('?' * len(numbers))})"
            params.extend(numbers)
        sql += " ORDER BY position LIMIT ?"
        params.append(-1 if limit is None else limit)
        with self.db.read() as conn:
            return self._recorded_rows(conn.execute(sql, params).fetchall(), payload_types)

    def iter_all(
        self,
        after: int = 0,
        *,
        batch: int = 5_000,
        types: Collection[str] | None = None,
        payload_types: Collection[str] | None = None,
    ) -> Iterator[RecordedEvent]:
        """Every event after a position, read in batches so memory stays bounded."""
        while batch_events := self.read_all(after, batch, types=types, payload_types=payload_types):
            yield from batch_events
            after = batch_events[-1].position

    def get(self, position: int) -> RecordedEvent | None:
        """The event at a position, if any."""
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE position = ?", (position,)).fetchall()
            return self._recorded_rows(rows)[0] if rows else None

    def changes(self, since: int = 0, limit: int | None = None) -> list[Change]:
        """The sync feed: what changed after a cursor, without payloads."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT position, event_id, entity_no, entity_id, op_no, version, client_no, recorded_at "
                "FROM events WHERE position > ? ORDER BY position LIMIT ?",
                (since, -1 if limit is None else limit),
            ).fetchall()
            strings = self.names.names(conn)  # one small query for a whole page of the feed
            return [
                Change(
                    position=r[0], event_id=r[1].hex(), entity=strings[r[2]], entity_id=entity_ids.text(r[3]),
                    op=strings[r[4]],
                    version=r[5], client_id=self._client_id(r[6]), recorded_at=r[7],
                )
                for r in rows
            ]

    def subscribe(
        self,
        after: int = 0,
        *,
        stop: threading.Event | None = None,
        batch: int = 1_000,
        idle_seconds: float | None = None,
    ) -> Iterator[RecordedEvent]:
        """Yield every event after a position, then each new one as any process appends it.

        Waits on file-system notifications of the database's WAL, so it wakes within
        milliseconds of a commit without polling. Ends when `stop` is set, or after
        `idle_seconds` without a new event.
        """
        from eventstore.waker import Waker

        stop = stop or threading.Event()
        with Waker(self.path, stop) as waker:
            while not stop.is_set():
                events = self.read_all(after, batch)
                if events:
                    yield from events
                    after = events[-1].position
                    continue
                if not waker.wait(idle_seconds) and idle_seconds is not None:
                    return

    # Internals

    def _located(self, conn, rows: list[tuple], payload_types: Collection[str] | None) -> list[payloads.Row]:
        """Where the payloads of rows of `_COLUMNS` are (an empty one where its type is not wanted)."""
        wanted = None if payload_types is None else set(self.names.known(conn, payload_types))
        return [
            (row[0], row[15], row[16], row[17]) if wanted is None or row[4] in wanted
            else (row[0], None, b"", None)
            for row in rows
        ]

    def _recorded_rows(self, rows: list[tuple], payload_types: Collection[str] | None = None) -> list[RecordedEvent]:
        """Rows of `_COLUMNS` as recorded events, payloads decoded in bulk (only of `payload_types`)."""
        conn = self.db.conn
        payloads_ = payloads.read(conn, self.codec, self._located(conn, rows, payload_types))
        try:
            return self._events(rows, payloads_, self.names.strings(conn))
        except KeyError:  # a name another writer added since the cache was filled
            return self._events(rows, payloads_, self.names.names(conn))

    def _events(self, rows: list[tuple], payloads_: list[bytes], strings: dict[int, str]) -> list[RecordedEvent]:
        # A replay builds hundreds of thousands of these a second: names are looked up once, and
        # a UUID entity id is turned into text here as `entity_ids.text` does, without a call.
        names, clients, upcast_types = self._stream_names, self._client_ids, upcasters.types
        events = []
        append = events.append
        for row, data in zip(rows, payloads_):
            (position, event_id, stream_no, version, type_no, schema_version, entity_no, entity_id, op_no,
             client_no, actor_no, occurred_at, recorded_at, causation_id, correlation_id, _, _, _) = row
            type_ = strings[type_no]
            if type_ in upcast_types and data:
                schema_version, data = upcasters.upcast(type_, schema_version, data)
            if type(entity_id) is bytes:
                entity_id = f"{entity_id[:4].hex()}-{entity_id[4:10].hex('-', 2)}-{entity_id[10:].hex()}"
            append(RecordedEvent(
                position, event_id.hex(), names.get(stream_no) or self._stream_name(stream_no), version, type_,
                schema_version, strings[entity_no], entity_id, strings[op_no],
                clients.get(client_no) or self._client_id(client_no), strings[actor_no], occurred_at,
                recorded_at, causation_id, correlation_id, data,
            ))
        return events

    def _stream_name(self, stream_no: int) -> str:
        name = self._stream_names.get(stream_no)
        if name is None:
            name = self.db.conn.execute(
                "SELECT name FROM streams WHERE stream_no = ?", (stream_no,)
            ).fetchall()[0][0]
            self._stream_names[stream_no] = name
        return name

    def _client_id(self, client_no: int) -> str:
        client_id = self._client_ids.get(client_no)
        if client_id is None:
            client_id = self.db.conn.execute(
                "SELECT client_id FROM clients WHERE client_no = ?", (client_no,)
            ).fetchall()[0][0]
            self._client_ids[client_no] = client_id
        return client_id

    def _finish_payload_compression(self) -> None:
        """Run (or resume) the payload compression a migration scheduled; fast when none is due."""
        from eventstore import space

        if self.codec.compress and space.compression_pending(self):
            space.compress_payloads(self)

    def _own_client(self) -> tuple[str, int]:
        """This database's client id and its number, made on first use. Read first: opening a
        store must not wait for another process's write transaction (a replay's, an ingest's)."""
        with self.db.read() as conn:
            rows = conn.execute("SELECT c.client_id, c.client_no FROM meta m JOIN clients c ON c.client_id = m.value"
                                " WHERE m.key = 'client_id'").fetchall()
        if rows:
            return rows[0]
        with self.db.write() as conn:
            rows = conn.execute("SELECT value FROM meta WHERE key = 'client_id'").fetchall()
            if rows:
                client_id = rows[0][0]
            else:
                client_id = uuid.uuid4().hex
                conn.execute("INSERT INTO meta (key, value) VALUES ('client_id', ?)", (client_id,))
            return client_id, client_number(conn, client_id)


class BatchReader:
    """Reads the log in batches for a replay, one batch ahead.

    `read(after)` returns what `Store.read_all(after, limit, ...)` would, and before returning
    it fetches the following batch's rows and hands their zstd frames to a worker thread
    (`payloads.read_later`), so they decompress while the caller applies this batch. Call it
    inside the caller's transaction: a batch fetched in an earlier one is used only when it was
    full (later appends cannot change a full batch; a short one is read again) and no other
    connection has committed since (`PRAGMA data_version`: a redaction rewrites payloads).
    """

    def __init__(self, store: Store, limit: int, *, types: Collection[str] | None = None,
                 payload_types: Collection[str] | None = None) -> None:
        self.store, self.limit = store, limit
        self.types = None if types is None else list(types)
        self.payload_types = payload_types
        self._next: tuple[int, list[tuple], Callable[[], list[bytes]], int] | None = None
        self._decompressors: dict[int, object] = {}

    def read(self, after: int) -> list[RecordedEvent]:
        ahead, self._next = self._next, None
        if (ahead is not None and ahead[0] == after and len(ahead[1]) == self.limit
                and ahead[3] == self._data_version()):
            rows, finish = ahead[1], ahead[2]
        else:
            if ahead is not None:
                ahead[2]()  # let the worker finish what it was given
            rows, finish = self._start(after)
        if len(rows) == self.limit:
            following = rows[-1][0]
            self._next = (following, *self._start(following), self._data_version())
        return self._recorded(rows, finish())

    def _recorded(self, rows: list[tuple], payloads_: list[bytes]) -> list[RecordedEvent]:
        store = self.store
        conn = store.db.conn
        try:
            return store._events(rows, payloads_, store.names.strings(conn))
        except KeyError:  # a name another writer added since the cache was filled
            return store._events(rows, payloads_, store.names.names(conn))

    def close(self) -> None:
        """Wait for the worker to finish what it was given."""
        ahead, self._next = self._next, None
        if ahead is not None:
            ahead[2]()

    def read_span(self, after: int, through: int) -> list[RecordedEvent]:
        """The events after `after` up to `through`, read in bulk here and now (nothing read ahead)."""
        rows, finish = self._start(after, through, in_thread=False)
        return self._recorded(rows, finish())

    def _data_version(self) -> int:
        return self.store.db.conn.execute("PRAGMA data_version").fetchall()[0][0]

    def _start(self, after: int, through: int | None = None, *,
               in_thread: bool = True) -> tuple[list[tuple], Callable[[], list[bytes]]]:
        store = self.store
        conn = store.db.conn
        sql = f"SELECT {_COLUMNS} FROM events WHERE position > ?"
        params: list[object] = [after]
        if through is not None:
            sql += " AND position <= ?"
            params.append(through)
        if self.types is not None:
            numbers = store.names.known(conn, self.types)
            sql += f" AND type_no IN ({','.join('?' * len(numbers))})"
            params.extend(numbers)
        sql += " ORDER BY position LIMIT ?"
        params.append(self.limit)
        with store.db.read() as conn:
            rows = conn.execute(sql, params).fetchall()
            located = store._located(conn, rows, self.payload_types)
            return rows, payloads.read_later(conn, located, self._decompressors, in_thread=in_thread)
