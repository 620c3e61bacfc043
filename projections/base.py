"""What a projection is: a read model built only from the log, with its own tables.

Each projection owns its tables and their DDL, and turns batches of events into rows. The
runner (projections.runner) calls `create` and `apply` inside write transactions and stores the
projection's checkpoint in the same transaction, so every event is applied exactly once.

Table and index names are always formatted with a prefix: the live tables use the prefix ""
and a rebuild (replay, or a new projection version) builds fresh tables under a prefix like
"r7_" and swaps them in at the end, so queries never see a half-built read model. Index names
keep the prefix they were created with (SQLite cannot rename an index), so never refer to an
index by name outside `create`.

`apply` must keep no state outside its tables between calls: when a batch fails, the runner
rolls it back and retries it one event at a time, so state held in memory would be stale.

Optional attribute: `payloads: frozenset[str] | None`, the event types whose `data` `apply`
reads; the other handled events arrive with `data=b""`, which spares decompressing payloads
the projection does not look at. Absent or None: every handled event carries its payload.
It is not a protocol member, so projections written before it existed still conform.

Optional methods, for rebuilds with help from other processes (projections.facts):
`facts(events) -> object`, what a batch contributes, worked out from the events alone (no
database, no state kept between calls; picklable), and `apply_facts(tx, facts, prefix)`, which
folds that into the tables, so that `apply(tx, events, prefix)` is
`apply_facts(tx, facts(events), prefix)`. Reading and decoding the log is most of a rebuild:
with both methods, helpers do it for ranges of the log in parallel, and the runner applies
their facts in log order. Without them a projection is rebuilt in the runner's process alone.
With them, optionally, `facts_builder()`: an object whose `add(events)` takes a batch's events a
chunk at a time, in log order, and whose `result()` is then `facts` of the whole batch. Helpers
read a range of the log a chunk at a time and hand each chunk to every projection before reading
the next, so the decoders find the payloads still in the processor's cache.

Optional method, for `check --deep`, which compares each table with one rebuilt from the log:
`comparable_rows(conn, table, prefix) -> set | None`, a table's content as rows that any split
of the log into batches gives alike, for a table whose stored rows depend on the split (rows
packing each batch's keys, say); None: compare its rows as stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from schemas.envelope import RecordedEvent

ENTRY_POINT_GROUP = "eventstore.projections"


class Writer(Protocol):
    """The part of a write transaction a projection may use (eventstore.Transaction has it)."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None: ...


@runtime_checkable
class Projection(Protocol):
    """A read model derived from the log."""

    name: str
    """Stable name, used for the checkpoint and on the command line (`replay --projection`)."""

    version: str
    """Changing it rebuilds the projection from position 0 (include rule/price/model identities)."""

    handles: frozenset[str] | None
    """Event types this projection reads; None means every event."""

    inline: bool
    """True: applied inside the append transaction. False: caught up afterwards, in batches."""

    tables: tuple[str, ...]
    """Unprefixed names of the tables it owns (dropped and swapped on a rebuild)."""

    def create(self, tx: Writer, prefix: str) -> None:
        """Create the tables and indexes, every name prefixed with `prefix`."""

    def apply(self, tx: Writer, events: Sequence[RecordedEvent], prefix: str) -> None:
        """Apply a batch of events (already filtered to `handles`), in log order."""


def payload_types(projection: Projection) -> frozenset[str] | None:
    """The event types whose payload a projection reads (None: all it handles, or every type)."""
    payloads = getattr(projection, "payloads", None)
    return projection.handles if payloads is None else frozenset(payloads)
