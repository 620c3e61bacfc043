"""Shared helpers for projection tests: events to append and a tiny counting projection."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from schemas.envelope import NewEvent, RecordedEvent


def new_event(stream: str = "s", type_: str = "t.x", data: bytes = b"{}", *, occurred_at: int | None = None,
              op: str = "create", entity: str = "thing") -> NewEvent:
    """A NewEvent with a fresh id."""
    return NewEvent(event_id=uuid.uuid4().hex, stream=stream, type=type_, entity=entity,
                    entity_id=stream, op=op, data=data, occurred_at=occurred_at)


class Counter:
    """Counts events per type; raises on a payload of b"poison" (to test error isolation)."""

    name = "counter"
    handles: frozenset[str] | None = None
    inline = False
    tables = ("counts",)

    def __init__(self, *, version: str = "1", name: str = "counter", inline: bool = False,
                 handles: frozenset[str] | None = None, table: str = "counts") -> None:
        self.version, self.name, self.inline, self.handles = version, name, inline, handles
        self.tables = (table,)
        self.batches = 0

    def create(self, tx, prefix: str) -> None:
        tx.execute(f"CREATE TABLE {prefix}{self.tables[0]} (type TEXT PRIMARY KEY, n INTEGER NOT NULL)")
        tx.execute(f"CREATE INDEX {prefix}{self.tables[0]}_n ON {prefix}{self.tables[0]} (n)")

    def apply(self, tx, events: Sequence[RecordedEvent], prefix: str) -> None:
        self.batches += 1
        table = prefix + self.tables[0]
        for event in events:
            if event.data == b"poison":
                raise ValueError(f"cannot apply event {event.position}")
            tx.execute(f"INSERT INTO {table} (type, n) VALUES (?, 1)"
                       " ON CONFLICT (type) DO UPDATE SET n = n + 1", (event.type,))


def counts(conn, table: str = "counts") -> dict[str, int]:
    """The counting projection's rows, as a dict."""
    return dict(conn.execute(f"SELECT type, n FROM {table}").fetchall())
