"""Write transactions: appending events to the log, with other writes that commit with them.

A `Transaction` comes from `Store.transaction()`. Appends check expected versions, skip events
already stored (the same id and content) and store payloads through `eventstore.payloads`; a
file checkpoint or a projection's rows written with `execute` commit in the same transaction.
"""

from __future__ import annotations

import functools
import operator
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import repeat
from typing import TYPE_CHECKING

from eventstore import entity_ids, errors, payloads, stream_index
from eventstore.codec import FIRST_TRAINING_AT
from eventstore.storage import now_ms, select_in
from schemas.envelope import OPS, ExpectedVersion, NewEvent, RecordedEvent

if TYPE_CHECKING:
    from eventstore.store import Store

_SELECT_BY_IDS = (
    "SELECT event_id, position, stream_no, type_no, schema_version, entity_no, entity_id, op_no, dict_id, data,"
    " block_id FROM events WHERE event_id IN ({})"
)
_INSERT = (
    "INSERT INTO events (event_id, stream_no, version, type_no, schema_version, entity_no, entity_id, op_no,"
    " client_no, actor_no, occurred_at, recorded_at, causation_id, correlation_id, dict_id, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (event_id) DO NOTHING"
)
_OTHER_FIELDS = operator.attrgetter("schema_version", "occurred_at", "causation_id", "correlation_id")
_ENTITY_ID = operator.attrgetter("entity_id")
_NAMED = tuple(operator.attrgetter(field) for field in ("type", "entity", "op", "actor"))
"""The envelope fields stored as numbers of `names` rows."""
_INSERT_AT = (
    # A row is _OTHER_FIELDS(event) followed by the name numbers and the columns the store
    # assigns: rows are built in C from column lists.
    "INSERT INTO events (schema_version, occurred_at, causation_id, correlation_id, type_no, entity_no,"
    " op_no, actor_no, entity_id, position, event_id, stream_no, version, client_no, recorded_at, dict_id, data, block_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (event_id) DO NOTHING"
)
_INSERT_BLOCK = "INSERT INTO blocks (block_id, first_position, dict_id, sizes, frames, data) VALUES (?, ?, ?, ?, ?, ?)"


class Transaction:
    """Writes inside one `Store.transaction()`; events appended here are visible to later reads in it."""

    def __init__(self, store: Store, conn) -> None:
        self.store = store
        self._conn = conn
        self.now = now_ms()
        self.appended_count = 0
        # Appended runs: (events, first position, their versions, client id, recorded at).
        self._appended: list[tuple[list[NewEvent], int, list[int], str, int]] = []
        self._streams: dict[str, list[int]] = {}  # name -> [stream_no, version, stored version]

    @property
    def appended(self) -> list[RecordedEvent]:
        """The events this transaction has appended so far, as recorded."""
        return self.appended_events()

    def appended_events(self, types: Collection[str] | None = None) -> list[RecordedEvent]:
        """The events this transaction has appended so far, optionally only of some types."""
        return [
            _recorded(event, first + i, version, client_id, recorded_at)
            for events, first, versions, client_id, recorded_at in self._appended
            for i, (event, version) in enumerate(zip(events, versions))
            if types is None or event.type in types
        ]

    def appended_payloads(self) -> list[bytes]:
        """The payloads this transaction has appended so far."""
        return [event.data for events, *_ in self._appended for event in events]

    def appended_range(self) -> tuple[int, int] | None:
        """(first, last) position appended by this transaction, or None."""
        if not self._appended:
            return None
        first_run, last_run = self._appended[0], self._appended[-1]
        return first_run[1], last_run[1] + len(last_run[0]) - 1

    def append(
        self,
        events: Iterable[NewEvent],
        expected_version: int | Mapping[str, int] = ExpectedVersion.ANY,
    ) -> list[int]:
        """Append events, returning their positions.

        `expected_version` (one value for every stream in the batch, or a mapping per stream) is
        checked against each stream's version before the batch; a mismatch raises
        `WrongExpectedVersion`. An event whose id is already stored with the same content is
        skipped and its stored position returned; with other content, `EventIdConflict`.
        """
        events = list(events)
        unknown = {event.op for event in events} - OPS
        if unknown:
            raise ValueError(f"op must be one of {', '.join(sorted(OPS))}, got {', '.join(map(repr, sorted(unknown)))}")
        codec = self.store.codec
        if len(events) >= FIRST_TRAINING_AT and codec.compress and not codec.has_dictionary():
            # A bulk load into a store without a dictionary: learn one from this batch, in the background.
            codec.train_later(self._conn, self.head() + len(events), [e.data for e in events])
        mark, saved = len(self._appended), {name: s[:] for name, s in self._streams.items()}
        ids = _event_ids(events)
        self._conn.execute("SAVEPOINT append")
        try:
            positions = None
            distinct = len(set(ids)) == len(ids)
            if distinct and not self.store._saw_duplicates:
                # Bulk appends are mostly all new: inserting finds that out as cheaply as asking first.
                positions = self._append_new(events, ids, expected_version, optimistic=True)
                if positions is None:
                    self._conn.execute("ROLLBACK TO append")
                    del self._appended[mark:]
                    self._streams = {name: s[:] for name, s in saved.items()}
                    self.store.names.forget()
            if positions is None:
                stored = self._stored_positions(ids)
                self.store._saw_duplicates = bool(stored)  # ask first again until an append finds none
                if stored or not distinct:
                    positions = self._append_with_duplicates(events, ids, stored, expected_version)
                else:
                    positions = self._append_new(events, ids, expected_version)
            self._save_stream_versions()
        except BaseException:
            if self._conn.in_transaction:  # a full disk or an I/O error rolls back the whole transaction
                self._conn.execute("ROLLBACK TO append")
                self._conn.execute("RELEASE append")
            del self._appended[mark:]
            self._streams = saved
            self.store.names.forget()  # names added here went with the rollback
            raise
        self._conn.execute("RELEASE append")
        self.appended_count = sum(len(run[0]) for run in self._appended)
        return positions

    def _stored_positions(self, ids: list[bytes]) -> dict[bytes, int]:
        """Positions of these event ids that are already in the log."""
        return dict(select_in(self._conn, "SELECT event_id, position FROM events WHERE event_id IN ({})", ids))

    def _load_streams(self, names: Iterable[str]) -> None:
        """Look up, in one query, the streams this transaction has not seen yet."""
        missing = [name for name in names if name not in self._streams]
        for name, stream_no, version in select_in(
                self._conn, "SELECT name, stream_no, version FROM streams WHERE name IN ({})", missing):
            self._streams[name] = [stream_no, version, version]

    def _append_new(self, events: list[NewEvent], ids: list[bytes], expected_version, *,
                    optimistic: bool = False) -> list[int] | None:
        """Insert events none of whose ids is stored, compressing ahead in a worker thread while
        SQLite writes; a bulk append stores runs of neighbouring events as shared blocks.
        `optimistic`: the ids were not looked up first; None if one was stored after all (the
        caller rolls back what this inserted)."""
        if not events:
            return []
        n = len(events)
        codec = self.store.codec
        datas = [event.data for event in events]
        sizes = list(map(len, datas))
        groups = payloads.runs(sizes) if codec.compress else [range(i, i + 1) for i in range(n)]
        encoded = payloads.encoded_runs(codec, datas, groups)  # compressing starts now
        first = self._next_position()
        assigned_versions = self._assign_versions(events, first, expected_version, optimistic)
        if assigned_versions is None:
            return None  # perhaps a retry of events already stored: the caller looks them up
        stream_nos, versions, index_entries = assigned_versions
        client_no, now, conn = self.store._client_no, self.now, self._conn
        number = self.store.names.numbers(conn, set().union(*(map(field, events) for field in _NAMED)))
        rows = payloads.BlockRows(first, sizes, self._next_block_id()) if len(groups) < n else None
        for chunk_groups, frames in encoded:
            dict_ids: list[int | None] = []
            stored: list[bytes] = []
            block_ids: list[int | None] = []
            if rows is None:  # one frame an event, in its own row
                dict_ids = [dict_id for dict_id, _ in frames]
                stored = [frame for _, frame in frames]
                block_ids = [None] * len(frames)
            else:
                for group, block_id in zip(chunk_groups, rows.add(chunk_groups, frames)):
                    dict_ids += [None] * len(group)
                    stored += [b""] * len(group)
                    block_ids += [block_id] * len(group)
                conn.executemany(_INSERT_BLOCK, rows.take())
            start, stop = chunk_groups[0].start, chunk_groups[-1].stop
            chunk = events[start:stop]
            assigned = zip(*[list(map(number.__getitem__, map(field, chunk))) for field in _NAMED],
                           map(entity_ids.stored, map(_ENTITY_ID, chunk)), range(first + start, first + stop),
                           ids[start:stop], stream_nos[start:stop], versions[start:stop], repeat(client_no),
                           repeat(now), dict_ids, stored, block_ids)
            before = conn.total_changes()
            conn.executemany(_INSERT_AT, map(operator.add, map(_OTHER_FIELDS, chunk), assigned))
            if conn.total_changes() - before != stop - start:
                if optimistic:
                    return None
                raise RuntimeError("an event id appeared while this transaction held the write lock")
        if rows is not None:
            conn.executemany(_INSERT_BLOCK, rows.finish())
        stream_index.record(conn, index_entries)
        self._appended.append((events, first, versions, self.store.client_id, now))
        return list(range(first, first + n))

    def _assign_versions(self, events: list[NewEvent], first: int, expected_version, optimistic: bool
                         ) -> tuple[list[int], list[int], list[tuple]] | None:
        """Each event's stream number and version, and the stream_index rows of the append
        (events go to positions from `first`). A stream not at its expected version raises
        `WrongExpectedVersion`, or when `optimistic` returns None."""
        by_stream: defaultdict[str, list[int]] = defaultdict(list)
        for i, name in enumerate([event.stream for event in events]):
            by_stream[name].append(i)
        self._load_streams(by_stream)
        stream_nos, versions = [0] * len(events), [0] * len(events)
        index_entries = []
        for name, members in by_stream.items():
            stream = self._streams.get(name) or self._stream(name)
            if not _expected_holds(_expected_for(expected_version, name), stream[1]):
                if optimistic:
                    return None
                _check_expected(name, _expected_for(expected_version, name), stream[1])
            where = _evenly_spaced(members)
            added = range(stream[1] + 1, stream[1] + len(members) + 1)
            if where is not None:
                stream_nos[where] = [stream[0]] * len(members)
                versions[where] = added
                positions: Sequence[int] = range(first + where.start, first + members[-1] + 1, where.step)
            else:
                for i, version in zip(members, added):
                    stream_nos[i], versions[i] = stream[0], version
                positions = [first + i for i in members]
            index_entries.append(stream_index.entry(stream[0], added.start, positions))
            stream[1] = added.stop - 1
        return stream_nos, versions, index_entries

    def _next_block_id(self) -> int:
        return self._conn.execute("SELECT coalesce(max(block_id), 0) + 1 FROM blocks").fetchall()[0][0]

    def _next_position(self) -> int:
        rows = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchall()
        return (rows[0][0] if rows else 0) + 1

    def _append_with_duplicates(self, events: list[NewEvent], ids: list[bytes], stored: dict[bytes, int],
                                expected_version) -> list[int]:
        """Skip events already stored (same content) or repeated in the batch; append the rest."""
        positions: list[int | None] = [None] * len(events)
        first_index: dict[bytes, int] = {}
        repeats: list[tuple[int, int]] = []
        fresh: list[int] = []
        known: list[int] = []
        for i, (event, event_id) in enumerate(zip(events, ids)):
            j = first_index.setdefault(event_id, i)
            if j != i:
                if _content(events[j]) != _content(event):
                    raise errors.EventIdConflict(event.event_id, 0)
                repeats.append((i, j))
            elif event_id in stored:
                known.append(i)
            else:
                fresh.append(i)
        # Raises EventIdConflict for one stored with other content.
        for i, position in zip(known, self._existing_many([events[i] for i in known])):
            positions[i] = position
        new = self._append_new([events[i] for i in fresh], [ids[i] for i in fresh], expected_version)
        for i, position in zip(fresh, new):
            positions[i] = position
        for i, j in repeats:
            positions[i] = positions[j]
        return positions  # type: ignore[return-value]

    def append_recorded(self, event: RecordedEvent) -> int | None:
        """Append an event recorded by another store, keeping its id, version, client and time.

        Returns its new position, the stored position if it is already here, or None when the
        stream's version here does not continue from the event's (a conflict the caller reports).
        """
        new = NewEvent(
            event_id=event.event_id, stream=event.stream, type=event.type, entity=event.entity,
            entity_id=event.entity_id, op=event.op, data=event.data,
            schema_version=event.schema_version, actor=event.actor, occurred_at=event.occurred_at,
            causation_id=event.causation_id, correlation_id=event.correlation_id,
        )
        existing = self._existing(new)
        if existing is not None:
            return existing
        stream = self._stream(event.stream)
        if stream[1] != event.version - 1:
            return None
        position = self._insert(new, stream[0], event.version, client_number(self._conn, event.client_id),
                                event.client_id, event.recorded_at)
        if position is None:
            return self._existing(new)
        stream[1] = event.version
        self._save_stream_versions()
        return position

    def execute(self, sql: str, params: Sequence[object] | Mapping[str, object] = ()) -> list[tuple]:
        """Run one SQL statement in this transaction and return its rows."""
        return self._conn.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """Run one SQL statement for each row of parameters."""
        self._conn.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        """False once SQLite itself rolled the transaction back (a full disk, an I/O error)."""
        return self._conn.in_transaction

    def stream_version(self, stream: str) -> int:
        """A stream's version as this transaction sees it (0 when it does not exist)."""
        return self._stream(stream)[1] if stream in self._streams else self._stored_version(stream)

    def _stored_version(self, stream: str) -> int:
        rows = self._conn.execute("SELECT version FROM streams WHERE name = ?", (stream,)).fetchall()
        return rows[0][0] if rows else 0

    def head(self) -> int:
        """The position of the last event, including this transaction's."""
        return self._conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchall()[0][0]

    def _existing(self, event: NewEvent) -> int | None:
        return self._existing_many([event])[0]

    def _existing_many(self, events: list[NewEvent]) -> list[int | None]:
        """The positions of these events in the log (None: not stored). Their stored payloads are
        read back together, each frame decoded once: the copies of a file's lines sit side by side.
        Raises EventIdConflict for one stored with other content."""
        ids = [_event_id_bytes(event.event_id) for event in events]
        found = {row[0]: row[1:] for row in select_in(self._conn, _SELECT_BY_IDS, ids)}
        rows = [found.get(event_id) for event_id in ids]
        stored = iter(payloads.read(self._conn, self.store.codec,
                                    [(row[0], row[7], row[8], row[9]) for row in rows if row is not None]))
        name = functools.partial(self.store.names.name, self._conn)
        positions: list[int | None] = []
        for event, row in zip(events, rows):
            if row is None:
                positions.append(None)
                continue
            position, stream_no, type_no, schema_version, entity_no, entity_id, op_no = row[:7]
            data = next(stored)
            same = (
                self.store._stream_name(stream_no) == event.stream
                and (name(type_no), schema_version, name(entity_no), entity_ids.text(entity_id), name(op_no))
                == (event.type, event.schema_version, event.entity, event.entity_id, event.op)
                and (data == event.data or _redacted(self._conn, position))
            )
            if not same:
                raise errors.EventIdConflict(event.event_id, position)
            positions.append(position)
        return positions

    def _stream(self, name: str) -> list[int]:
        stream = self._streams.get(name)
        if stream is None:
            rows = self._conn.execute("SELECT stream_no, version FROM streams WHERE name = ?", (name,)).fetchall()
            if rows:
                stream = [rows[0][0], rows[0][1], rows[0][1]]
            else:
                self._conn.execute("INSERT INTO streams (name, version) VALUES (?, 0)", (name,))
                stream = [self._conn.last_insert_rowid(), 0, 0]
            self._streams[name] = stream
        return stream

    def _insert(self, event: NewEvent, stream_no: int, version: int, client_no: int,
                client_id: str, recorded_at: int, encoded: tuple[int | None, bytes] | None = None) -> int | None:
        """Insert one event; None when its id is already stored (the caller compares content)."""
        dict_id, stored = encoded or self.store.codec.encode(event.data)
        number = self.store.names.numbers(self._conn, {event.type, event.entity, event.op, event.actor})
        self._conn.execute(
            _INSERT,
            (_event_id_bytes(event.event_id), stream_no, version, number[event.type], event.schema_version,
             number[event.entity], entity_ids.stored(event.entity_id), number[event.op], client_no, number[event.actor],
             event.occurred_at, recorded_at, event.causation_id, event.correlation_id, dict_id, stored),
        )
        if not self._conn.changes():
            return None
        position = self._conn.last_insert_rowid()
        stream_index.record(self._conn, [stream_index.entry(stream_no, version, [position])])
        self._appended.append(([event], position, [version], client_id, recorded_at))
        return position

    def _save_stream_versions(self) -> None:
        changed = [stream for stream in self._streams.values() if stream[1] != stream[2]]
        self._conn.executemany("UPDATE streams SET version = ? WHERE stream_no = ?",
                               [(stream[1], stream[0]) for stream in changed])
        for stream in changed:
            stream[2] = stream[1]


def _content(event: NewEvent) -> tuple:
    return (event.stream, event.type, event.schema_version, event.entity, event.entity_id, event.op, event.data)


def _redacted(conn, position: int) -> bool:
    """Whether `redact` rewrote this event's payload: a copy of its original is then a duplicate."""
    return bool(conn.execute("SELECT 1 FROM redacted_events WHERE position = ?", (position,)).fetchall())


def _event_ids(events: list[NewEvent]) -> list[bytes]:
    """The events' ids as the 16 bytes stored."""
    try:
        ids = [bytes.fromhex(event.event_id) for event in events]
    except ValueError:
        ids = []
    if len(ids) != len(events) or (ids and set(map(len, ids)) != {16}):
        ids = [_event_id_bytes(event.event_id) for event in events]  # raises, naming the bad id
    return ids


def _event_id_bytes(event_id: str) -> bytes:
    try:
        raw = bytes.fromhex(event_id)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise ValueError(f"event_id must be 32 hex digits, got {event_id!r}")
    return raw


def _recorded(event: NewEvent, position: int, version: int, client_id: str, recorded_at: int) -> RecordedEvent:
    return RecordedEvent(
        position=position, event_id=event.event_id, stream=event.stream, version=version,
        type=event.type, schema_version=event.schema_version, entity=event.entity,
        entity_id=event.entity_id, op=event.op, client_id=client_id, actor=event.actor,
        occurred_at=event.occurred_at, recorded_at=recorded_at, causation_id=event.causation_id,
        correlation_id=event.correlation_id, data=event.data,
    )


def _expected_for(expected_version: int | Mapping[str, int], stream: str) -> int:
    if isinstance(expected_version, Mapping):
        return expected_version.get(stream, ExpectedVersion.ANY)
    return expected_version


def client_number(conn, client_id: str) -> int:
    """The number `events.client_no` uses for a client id, registering it if new."""
    rows = conn.execute("SELECT client_no FROM clients WHERE client_id = ?", (client_id,)).fetchall()
    if rows:
        return rows[0][0]
    conn.execute("INSERT INTO clients (client_id) VALUES (?)", (client_id,))
    return conn.last_insert_rowid()


def _evenly_spaced(indexes: list[int]) -> slice | None:
    """The slice selecting exactly these increasing indexes when they are evenly spaced (a run
    of one stream, or streams taking turns), so their columns are filled in C."""
    if len(indexes) == 1:
        return slice(indexes[0], indexes[0] + 1, 1)
    step = indexes[1] - indexes[0]
    if indexes[-1] - indexes[0] != step * (len(indexes) - 1) or indexes != list(range(indexes[0], indexes[-1] + 1, step)):
        return None
    return slice(indexes[0], indexes[-1] + 1, step)


def _expected_holds(expected: int, actual: int) -> bool:
    if expected == ExpectedVersion.ANY:
        return True
    if expected == ExpectedVersion.EXISTS:
        return actual > 0
    return actual == expected


def _check_expected(stream: str, expected: int, actual: int) -> None:
    if not _expected_holds(expected, actual):
        raise errors.WrongExpectedVersion(stream, expected, actual)
