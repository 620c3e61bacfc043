"""Memories: notes kept in the log, one stream per memory, and the read model that lists them.

Every change is an event on `memory:<id>` (types and payloads in schemas.memories) appended
with the stream version it was decided on, so two writers cannot both change the same
version. The commands below fold the memory's own stream inside the write transaction to
decide (never a possibly stale read model); the `memories` projection folds the same events
with the same `evolve` into tables for listing and filtering.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec
from msgspec import UNSET

from eventstore.errors import EventStoreError, WrongExpectedVersion
from eventstore.feed import iso
from eventstore.storage import now_ms
from projections.base import Writer
from schemas import memories as mem
from schemas.envelope import NewEvent, RecordedEvent

__all__ = [
    "Memory", "MemoriesProjection", "MemoryError", "MemoryNotFound", "add", "evolve", "forget", "get", "link",
    "list_memories", "projection", "resolve", "unlink", "update",
]


class MemoryError(EventStoreError):
    """A memory command that cannot be done as asked (the message says why)."""


class MemoryNotFound(MemoryError):
    """No memory has this id."""


class Memory(msgspec.Struct, kw_only=True):
    """A memory as of some version: what `memories --json` prints."""

    memory_id: str
    text: str
    tags: list[str]
    project: str | None
    links: list[tuple[str, str]]
    """(target, target_id) pairs: ("session", id) or ("task", id), in the order they were made."""
    deleted: bool
    version: int
    created_at: int
    updated_at: int
    position: int
    """The log position of its latest event."""

    def to_json(self) -> dict[str, Any]:
        """The contract's memory object."""
        return {
            "memory_id": self.memory_id, "text": self.text, "tags": list(self.tags), "project": self.project,
            "links": [{f"{target}_id": target_id} for target, target_id in self.links],
            "deleted": self.deleted, "version": self.version,
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
        }


def evolve(state: Memory | None, event: RecordedEvent) -> Memory | None:
    """The memory after one of its events (None: the event makes no sense here, so it is ignored)."""
    payload = mem.decode_payload(event.type, event.data)
    when = event.occurred_at if event.occurred_at is not None else event.recorded_at
    if isinstance(payload, mem.MemoryAdded):
        if state is not None:
            return state
        return Memory(memory_id=payload.memory_id, text=payload.text, tags=_tags(payload.tags),
                      project=payload.project, links=[], deleted=False, version=event.version,
                      created_at=when, updated_at=when, position=event.position)
    if state is None:
        return None
    state = msgspec.structs.replace(state, version=event.version, updated_at=when, position=event.position,
                                    links=list(state.links))
    if isinstance(payload, mem.MemoryUpdated):
        if payload.text is not UNSET:
            state.text = payload.text
        if payload.tags is not UNSET:
            state.tags = _tags(payload.tags)
        if payload.project is not UNSET:
            state.project = payload.project
    elif isinstance(payload, mem.MemoryForgotten):
        state.deleted = True
    elif isinstance(payload, mem.MemoryLinked):
        if (payload.target, payload.target_id) not in state.links:
            state.links.append((payload.target, payload.target_id))
    elif isinstance(payload, mem.MemoryUnlinked):
        if (payload.target, payload.target_id) in state.links:
            state.links.remove((payload.target, payload.target_id))
    return state


def _tags(tags: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(t for t in tags if t))


def fold(events: Iterable[RecordedEvent]) -> Memory | None:
    """A memory from its stream's events."""
    state = None
    for event in events:
        if event.type in mem.TYPES:
            state = evolve(state, event)
    return state


# ---------------------------------------------------------------- commands


def _event(payload: mem.MemoryPayload, actor: str) -> NewEvent:
    kind = mem.type_of(payload)
    return NewEvent(
        event_id=uuid.uuid4().hex, stream=mem.memory_stream(payload.memory_id), type=kind, entity=mem.ENTITY,
        entity_id=payload.memory_id, op=mem.OPS[kind], data=mem.encode_payload(payload), actor=actor,
        occurred_at=now_ms(),
    )


def add(store, text: str, tags: Sequence[str] = (), project: str | None = None, *, actor: str = "",
        memory_id: str | None = None) -> Memory:
    """Record a new memory and return it."""
    if not text.strip():
        raise MemoryError("a memory needs some text")
    memory_id = memory_id or uuid.uuid4().hex
    payload = mem.MemoryAdded(memory_id=memory_id, text=text, tags=tuple(_tags(tags)), project=project or None)
    with store.transaction() as tx:
        tx.append([_event(payload, actor)], expected_version=0)
        return evolve(None, tx.appended[-1])  # type: ignore[return-value]


def _change(store, memory_id: str, expected_version: int | None, actor: str,
            decide: Callable[[Memory], mem.MemoryPayload | None]) -> Memory:
    """Fold the memory's stream in the write transaction, decide, append at the version decided on."""
    stream = mem.memory_stream(memory_id)
    with store.transaction() as tx:
        state = fold(store.read_stream(stream))
        if state is None:
            raise MemoryNotFound(f"no memory {memory_id!r}; `eventstore memories list --all` shows them")
        if expected_version is not None and expected_version != state.version:
            raise WrongExpectedVersion(stream, expected_version, state.version)
        payload = decide(state)
        if payload is None:
            return state
        tx.append([_event(payload, actor)], expected_version=state.version)
        return evolve(state, tx.appended[-1])  # type: ignore[return-value]


def _alive(state: Memory) -> None:
    if state.deleted:
        raise MemoryError(f"memory {state.memory_id} was forgotten (at version {state.version})")


def update(store, memory_id: str, *, text: Any = UNSET, tags: Any = UNSET, project: Any = UNSET,
           expected_version: int | None = None, actor: str = "") -> Memory:
    """Change a memory's text, tags or project (UNSET: unchanged); a no-op change appends nothing."""

    def decide(state: Memory) -> mem.MemoryPayload | None:
        _alive(state)
        changes: dict[str, Any] = {}
        if text is not UNSET and text != state.text:
            if not text.strip():
                raise MemoryError("a memory needs some text")
            changes["text"] = text
        if tags is not UNSET and _tags(tags) != state.tags:
            changes["tags"] = tuple(_tags(tags))
        if project is not UNSET and (project or None) != state.project:
            changes["project"] = project or None
        return mem.MemoryUpdated(memory_id=state.memory_id, **changes) if changes else None

    return _change(store, memory_id, expected_version, actor, decide)


def forget(store, memory_id: str, *, reason: str = "", expected_version: int | None = None,
           actor: str = "") -> Memory:
    """Forget a memory: a soft delete (it leaves lists and search; its history stays in the log)."""

    def decide(state: Memory) -> mem.MemoryPayload | None:
        _alive(state)
        return mem.MemoryForgotten(memory_id=state.memory_id, reason=reason)

    return _change(store, memory_id, expected_version, actor, decide)


def _check_target(target: str) -> None:
    if target not in mem.LINK_TARGETS:
        raise MemoryError(f"a memory links to a session or a task, not {target!r}")


def link(store, memory_id: str, target: str, target_id: str, *, expected_version: int | None = None,
         actor: str = "") -> Memory:
    """Link a memory to a session or a task (linking twice appends nothing)."""
    _check_target(target)

    def decide(state: Memory) -> mem.MemoryPayload | None:
        _alive(state)
        if (target, target_id) in state.links:
            return None
        return mem.MemoryLinked(memory_id=state.memory_id, target=target, target_id=target_id)  # type: ignore[arg-type]

    return _change(store, memory_id, expected_version, actor, decide)


def unlink(store, memory_id: str, target: str, target_id: str, *, expected_version: int | None = None,
           actor: str = "") -> Memory:
    """Remove a link between a memory and a session or a task."""
    _check_target(target)

    def decide(state: Memory) -> mem.MemoryPayload | None:
        _alive(state)
        if (target, target_id) not in state.links:
            raise MemoryError(f"memory {state.memory_id} is not linked to {target} {target_id}")
        return mem.MemoryUnlinked(memory_id=state.memory_id, target=target, target_id=target_id)  # type: ignore[arg-type]

    return _change(store, memory_id, expected_version, actor, decide)


def get(store, memory_id: str) -> Memory:
    """A memory as its stream says now (forgotten ones included)."""
    state = fold(store.read_stream(mem.memory_stream(memory_id)))
    if state is None:
        raise MemoryNotFound(f"no memory {memory_id!r}")
    return state


# ---------------------------------------------------------------- the read model


def ddl(p: str) -> list[str]:
    """The statements creating the projection's tables, every name prefixed."""
    return [
        f"CREATE TABLE {p}memories (memory_id TEXT PRIMARY KEY, text TEXT NOT NULL, tags TEXT NOT NULL,"
        " project TEXT, links TEXT NOT NULL, deleted INTEGER NOT NULL, version INTEGER NOT NULL,"
        " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, position INTEGER NOT NULL) WITHOUT ROWID",
        f"CREATE INDEX {p}memories_created ON {p}memories (created_at)",
        f"CREATE TABLE {p}memory_tags (tag TEXT NOT NULL, memory_id TEXT NOT NULL,"
        " PRIMARY KEY (tag, memory_id)) WITHOUT ROWID",
        f"CREATE TABLE {p}memory_links (target TEXT NOT NULL, target_id TEXT NOT NULL, memory_id TEXT NOT NULL,"
        " PRIMARY KEY (target, target_id, memory_id)) WITHOUT ROWID",
    ]


_COLUMNS = "memory_id, text, tags, project, links, deleted, version, created_at, updated_at, position"


def _from_row(row: Sequence[Any]) -> Memory:
    return Memory(
        memory_id=row[0], text=row[1], tags=msgspec.json.decode(row[2]), project=row[3],
        links=[tuple(x) for x in msgspec.json.decode(row[4])], deleted=bool(row[5]), version=row[6],
        created_at=row[7], updated_at=row[8], position=row[9],
    )


class MemoriesProjection:
    """The `memories` read model: each memory's current state, its tags and links."""

    name = "memories"
    version = "1"
    inline = True
    handles: frozenset[str] | None = mem.TYPES
    tables: tuple[str, ...] = ("memories", "memory_tags", "memory_links")

    def create(self, tx: Writer, prefix: str) -> None:
        """Create the tables, every name prefixed with `prefix`."""
        for statement in ddl(prefix):
            tx.execute(statement)

    def apply(self, tx: Writer, events: Sequence[RecordedEvent], prefix: str) -> None:
        """Fold each memory event into its memory's row."""
        self.apply_facts(tx, self.facts(events), prefix)

    def facts(self, events: Sequence[RecordedEvent]) -> list[RecordedEvent]:
        """The batch's events themselves: what each changes depends on its memory's row."""
        return list(events)

    def apply_facts(self, tx: Writer, facts: list[RecordedEvent], prefix: str) -> None:
        """Fold a batch's memory events (from `facts`) into their memories' rows."""
        p = prefix
        for event in facts:
            memory_id = mem.memory_of_stream(event.stream) or event.entity_id
            rows = tx.execute(f"SELECT {_COLUMNS} FROM {p}memories WHERE memory_id = ?", (memory_id,))
            before = _from_row(rows[0]) if rows else None
            after = evolve(before, event)
            if after is None or after is before:
                continue
            tx.execute(
                f"INSERT OR REPLACE INTO {p}memories ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (after.memory_id, after.text, msgspec.json.encode(after.tags).decode(), after.project,
                 msgspec.json.encode(after.links).decode(), int(after.deleted), after.version,
                 after.created_at, after.updated_at, after.position),
            )
            if before is None or before.tags != after.tags:
                tx.execute(f"DELETE FROM {p}memory_tags WHERE memory_id = ?", (memory_id,))
                tx.executemany(f"INSERT INTO {p}memory_tags (tag, memory_id) VALUES (?, ?)",
                               [(tag, memory_id) for tag in after.tags])
            if before is None or before.links != after.links:
                tx.execute(f"DELETE FROM {p}memory_links WHERE memory_id = ?", (memory_id,))
                tx.executemany(f"INSERT INTO {p}memory_links (target, target_id, memory_id) VALUES (?, ?, ?)",
                               [(t, i, memory_id) for t, i in after.links])


def projection() -> MemoriesProjection:
    """The projection (the `eventstore.projections` entry point)."""
    return MemoriesProjection()


def list_memories(rows, *, tag: str | None = None, project: str | None = None, include_deleted: bool = False,
                  session: str | None = None, task: str | None = None, prefix: str = "") -> list[Memory]:
    """Memories in the order they were made; `rows(sql, params)` runs a read query."""
    p = prefix
    sql = f"SELECT {', '.join('m.' + c for c in _COLUMNS.split(', '))} FROM {p}memories m WHERE 1"
    params: list[object] = []
    if not include_deleted:
        sql += " AND NOT m.deleted"
    if tag is not None:
        sql += f" AND m.memory_id IN (SELECT memory_id FROM {p}memory_tags WHERE tag = ?)"
        params.append(tag)
    if project is not None:
        sql += " AND instr(lower(m.project), lower(?)) > 0"
        params.append(project)
    for target, target_id in (("session", session), ("task", task)):
        if target_id is not None:
            sql += f" AND m.memory_id IN (SELECT memory_id FROM {p}memory_links WHERE target = ? AND target_id = ?)"
            params += [target, target_id]
    sql += " ORDER BY m.created_at, m.memory_id"
    return [_from_row(r) for r in rows(sql, params)]


def resolve(rows, memory_id: str, prefix: str = "") -> str:
    """The full id of a memory given its id or a unique beginning of it (at least 4 characters)."""
    if len(memory_id) < 4:
        return memory_id
    found = [r[0] for r in rows(
        f"SELECT memory_id FROM {prefix}memories WHERE memory_id >= ? AND memory_id < ? LIMIT 2",
        (memory_id, memory_id + "\U0010ffff"))]
    if len(found) == 2 and memory_id not in found:
        raise MemoryError(f"{memory_id!r} is the beginning of several memory ids; give more of it")
    return found[0] if len(found) == 1 else memory_id
