"""The usage read model: token usage and cost per API response, deduplicated like ccusage 20.

Built from every transcript record that can carry `message.usage` (`claude.assistant`,
`claude.progress` for subagent copies, `claude.other` for untyped or future records), with
the rules of `projections.usage_entries` (which entries count, their dedupe key and which
copy wins) and the prices of `projections.pricing`. Applied incrementally:

* `usage_entries`: one row (a "slot") per API response, holding the copy kept so far. A later
  copy that is better (`usage_entries.better`: main over sidechain, then more tokens, then
  higher cost, then has `speed`) replaces it; the aggregates below subtract the old copy's
  contribution and add the new one's. Slots are numbered in log order, which is the order the
  dedupe rule's "first seen" refers to.
* `usage_buckets`: per UTC 15-minute bucket and model, token sums and cost. Every IANA zone's
  offset is a multiple of 15 minutes, so a bucket lies within one local day in any zone:
  daily, weekly and monthly reports in any `--timezone` are exact sums of buckets.
* `usage_sessions`: per session and model, token sums, cost and first/last activity.

Cost is computed per entry when it is applied (ccusage's `auto` mode: a logged `costUSD`,
else priced tokens) and summed as integer picodollars, so sums are exact and do not depend
on the order or batching of events: any split of the log into batches gives the same tables
as a rebuild. A model with no price counts 0 and is counted in `unpriced`. Model names get
ccusage's `-fast` suffix for `speed: "fast"` responses; a response without a model counts
in the totals under the model ''.

The version joins `RULES_VERSION` (bump it when a rule here or in `usage_entries` changes)
and a fingerprint of the pricing inputs, so a price change rebuilds the read model. The
query side (reports, `session_totals`) lives in `projections.usage_report`, which imports
nothing heavy so `eventstore usage` starts fast. Owns the tables in `UsageProjection.tables`.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b
from operator import add

import msgspec
from msgspec.structs import astuple

from eventstore.errors import EventStoreError
from projections.pricing import Pricing, PricingError, load_pricing
from projections.usage_decode import record_entries
from projections.usage_entries import UsageEntry, entry_cost
from projections.usage_report import (
    BUCKET_SECONDS,
    NAME,
    PICO,
    projection_version,
    session_totals,
)
from schemas.envelope import RecordedEvent
from schemas.transcript_events import OTHER, from_shared_line, session_of_stream

__all__ = ["PricingUnavailable", "UsageProjection", "record_entries", "session_totals"]

_BUCKET_MS = BUCKET_SECONDS * 1000

DDL = """
-- One row per API response (dedupe slot): the copy kept so far.
CREATE TABLE {p}usage_entries (
    slot           INTEGER PRIMARY KEY,  -- creation order = log order of the first copy
    message_id     TEXT,                 -- NULL: no message.id, never deduplicated
    id_key         INTEGER,              -- 64-bit hash of message_id: a small index to find copies by
    request_id     TEXT NOT NULL,        -- '' when the record has no requestId
    is_sidechain   INTEGER NOT NULL,
    total          INTEGER NOT NULL,     -- input + output + cache creation + cache read
    cost           REAL NOT NULL,        -- USD as ccusage computes it (0 when unpriced)
    has_speed      INTEGER NOT NULL,
    position       INTEGER NOT NULL,     -- the event the kept copy came from
    ms             INTEGER NOT NULL,     -- its timestamp, ms since the epoch (UTC)
    session        TEXT NOT NULL,
    model          TEXT NOT NULL,        -- '' when absent; '-fast' suffix for fast mode
    session_key    INTEGER NOT NULL,     -- 64-bit hash of session and model
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cache_creation INTEGER NOT NULL,
    cache_read     INTEGER NOT NULL,
    cost_pico      INTEGER NOT NULL,     -- round(cost * 1e12)
    unpriced       INTEGER NOT NULL      -- 1: the model has no price and no costUSD was logged
);
-- Integer keys, not the ids themselves: random inserts into a text index of 60-byte keys cost
-- most of a replay (every batch rewrote most of its pages).
CREATE INDEX {p}usage_entries_id ON {p}usage_entries (id_key);
CREATE INDEX {p}usage_entries_session ON {p}usage_entries (session_key, ms);

-- Per UTC 15-minute bucket (ms // 900000) and model.
CREATE TABLE {p}usage_buckets (
    bucket         INTEGER NOT NULL,
    model          TEXT NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cache_creation INTEGER NOT NULL,
    cache_read     INTEGER NOT NULL,
    cost_pico      INTEGER NOT NULL,
    unpriced       INTEGER NOT NULL,
    entries        INTEGER NOT NULL,
    PRIMARY KEY (bucket, model)
) WITHOUT ROWID;

-- Per session and model.
CREATE TABLE {p}usage_sessions (
    session        TEXT NOT NULL,
    model          TEXT NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cache_creation INTEGER NOT NULL,
    cache_read     INTEGER NOT NULL,
    cost_pico      INTEGER NOT NULL,
    unpriced       INTEGER NOT NULL,
    entries        INTEGER NOT NULL,
    first_ms       INTEGER NOT NULL,
    last_ms        INTEGER NOT NULL,
    PRIMARY KEY (session, model)
) WITHOUT ROWID;
"""

_SUMS = ("input_tokens", "output_tokens", "cache_creation", "cache_read", "cost_pico", "unpriced", "entries")
_ADD = ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMS)


class _Slot(msgspec.Struct, gc=False):
    """One API response's kept copy, as stored in `usage_entries` (fields in column order)."""

    slot: int | None
    message_id: str | None
    id_key: int | None
    request_id: str
    is_sidechain: int
    total: int
    cost: float
    has_speed: int
    position: int
    ms: int
    session: str
    model: str
    session_key: int
    input_tokens: int
    output_tokens: int
    cache_creation: int
    cache_read: int
    cost_pico: int
    unpriced: int

    def better_than(self, kept: _Slot) -> bool:
        """`usage_entries.better` on stored copies: main over sidechain, tokens, cost, speed; else first stays."""
        if self.is_sidechain != kept.is_sidechain:
            return bool(kept.is_sidechain)
        if self.total != kept.total:
            return self.total > kept.total
        if self.cost != kept.cost:
            return self.cost > kept.cost
        return bool(self.has_speed) and not kept.has_speed


_COLUMNS = ", ".join(_Slot.__struct_fields__)
_MARKS = ", ".join("?" * len(_Slot.__struct_fields__))
_ROW = astuple


class PricingUnavailable(EventStoreError):
    """The price table cannot be loaded (a broken `$EVENTSTORE_PRICING` file, say).

    An `EventStoreError`, so the runner stops the catch-up and the command says why, instead
    of recording every usage event as one it could not apply.
    """


class UsageProjection:
    """Usage and cost: deduplicated API responses, 15-minute buckets per model, per-session totals."""

    name = NAME
    handles = frozenset(("claude.assistant", "claude.progress", OTHER))
    inline = True
    """Inline: the appended payloads are already in memory, so ingestion pays no decompression."""
    tables = ("usage_entries", "usage_buckets", "usage_sessions")

    def __init__(self, pricing: Pricing | None = None) -> None:
        self._pricing = pricing
        self.version = projection_version() if pricing is None else projection_version(pricing.fingerprint)

    @property
    def pricing(self) -> Pricing:
        """The price table, loaded on first use (a query never needs it)."""
        if self._pricing is None:
            try:
                self._pricing = load_pricing()
            except PricingError as exc:
                raise PricingUnavailable(f"usage cannot be priced: {exc}") from exc
        return self._pricing

    def create(self, tx, prefix: str) -> None:
        """Create the tables and indexes under `prefix` (after checking the prices load)."""
        _ = self.pricing  # a broken price table stops here, before any table is built
        tx.execute(DDL.format(p=prefix))

    def apply(self, tx, events: Sequence[RecordedEvent], prefix: str) -> None:
        """Fold a batch of events into the kept copies and the aggregates."""
        found: list[_Slot] = []
        pricing = self.pricing
        for event in events:
            if from_shared_line(event.correlation_id):
                continue  # ccusage cannot parse a line holding several records, so it counts none of them
            for entry in record_entries(event.data):
                found.append(_to_slot(event, entry, pricing))
        if found:
            _Batch(tx, prefix).run(found)


def _key(text: str) -> int:
    """A stable signed 64-bit hash (SQLite's INTEGER)."""
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def _to_slot(event: RecordedEvent, entry: UsageEntry, pricing: Pricing) -> _Slot:
    """A copy as a slot; its number and hash keys are filled in when it is written (most copies are not)."""
    cost = entry_cost(pricing, entry)
    model = entry.model or ""
    if model and entry.speed == "fast":
        model += "-fast"
    return _Slot(
        None, entry.message_id, None, entry.request_id or "", int(entry.is_sidechain), entry.total_tokens,
        0.0 if cost is None else cost, int(entry.speed is not None), event.position, entry.ms,
        session_of_stream(event.stream) or entry.session_id or "", model, 0, entry.input_tokens,
        entry.output_tokens, entry.cache_creation_tokens, entry.cache_read_tokens, 0, int(cost is None),
    )


class _Batch:
    """One batch's dedupe work: load the slots its message ids touch, fold, write the net changes.

    Copies of one response mostly arrive together, so a slot may be replaced many times in a
    batch: the aggregates only take each changed slot's final copy, less the stored copy it
    replaced, if any.
    """

    def __init__(self, tx, prefix: str) -> None:
        self.tx, self.p = tx, prefix
        self.slots: dict[int, _Slot] = {}
        self.exact: dict[tuple[str | None, str], int] = {}
        self.by_id: dict[str, list[int]] = {}
        self.stored: dict[int, _Slot] = {}  # slots as the table held them, before this batch replaced them
        self.changed: set[int] = set()

    def run(self, found: list[_Slot]) -> None:
        tx, p = self.tx, self.p
        ids = {slot.message_id for slot in found if slot.message_id is not None}
        if ids:
            keys = sorted({_key(message_id) for message_id in ids})
            for row in tx.execute(
                f"SELECT {_COLUMNS} FROM {p}usage_entries WHERE id_key IN (SELECT value FROM json_each(?))"
                " ORDER BY slot", (msgspec.json.encode(keys),)):
                slot = _Slot(*row)
                if slot.message_id in ids:  # not another id with the same hash
                    self._remember(slot)
        next_slot = tx.execute(f"SELECT coalesce(max(slot), 0) + 1 FROM {p}usage_entries")[0][0]
        slots, exact, changed = self.slots, self.exact, self.changed
        for new in found:
            if new.message_id is None:
                kept = None
            else:
                number = exact.get((new.message_id, new.request_id))
                kept = slots[number] if number is not None else self._sidechain_match(new)
            if kept is None:
                new.slot = next_slot
                next_slot += 1
                self._remember(new)
                changed.add(new.slot)
            elif new.better_than(kept):
                if kept.slot not in changed:
                    self.stored[kept.slot] = kept
                    changed.add(kept.slot)
                del exact[(kept.message_id, kept.request_id)]
                new.slot = kept.slot
                slots[new.slot] = new
                exact[(new.message_id, new.request_id)] = new.slot
        self._write()

    def _remember(self, slot: _Slot) -> None:
        self.slots[slot.slot] = slot
        if slot.message_id is not None:
            self.exact[(slot.message_id, slot.request_id)] = slot.slot
            self.by_id.setdefault(slot.message_id, []).append(slot.slot)

    def _sidechain_match(self, new: _Slot) -> _Slot | None:
        """A sidechain copy (a /btw replay) matches an earlier response by message id alone."""
        for number in self.by_id.get(new.message_id, ()):
            kept = self.slots[number]
            if new.is_sidechain or kept.is_sidechain:
                return kept
        return None

    def _write(self) -> None:
        tx, p = self.tx, self.p
        session_keys: dict[tuple[str, str], int] = {}
        buckets: dict[tuple[int, str], tuple[int, ...]] = {}  # deltas of _SUMS
        sessions: dict[tuple[str, str], tuple[int, ...]] = {}
        times: dict[tuple[str, str], list[int]] = {}
        rows = []
        for number in sorted(self.changed):
            slot = self.slots[number]
            pair = (slot.session, slot.model)
            session_key = session_keys.get(pair)
            if session_key is None:
                session_key = session_keys[pair] = _key(f"{slot.session}\0{slot.model}")
            slot.session_key = session_key
            slot.id_key = None if slot.message_id is None else _key(slot.message_id)
            slot.cost_pico = round(slot.cost * PICO)
            rows.append(_ROW(slot))
            _count(buckets, sessions, slot, 1)
            span = times.get(pair)
            if span is None:
                times[pair] = [slot.ms, slot.ms]
            elif slot.ms < span[0]:
                span[0] = slot.ms
            elif slot.ms > span[1]:
                span[1] = slot.ms
        for slot in self.stored.values():
            _count(buckets, sessions, slot, -1)
        # Delete then insert, not INSERT OR REPLACE: inside the runner's savepoint, every REPLACE
        # statement opens a statement journal whose cost grows with the database (36 µs a row on
        # the 500 MB tree, against 3 µs for a plain INSERT).
        tx.executemany(f"DELETE FROM {p}usage_entries WHERE slot = ?", [(number,) for number in self.stored])
        tx.executemany(f"INSERT INTO {p}usage_entries ({_COLUMNS}) VALUES ({_MARKS})", rows)
        columns = ", ".join(_SUMS)
        marks = ", ".join("?" * len(_SUMS))
        tx.executemany(
            f"INSERT INTO {p}usage_buckets (bucket, model, {columns}) VALUES (?, ?, {marks})"
            f" ON CONFLICT (bucket, model) DO UPDATE SET {_ADD}",
            [(*key, *sums) for key, sums in buckets.items()])
        tx.executemany(f"DELETE FROM {p}usage_buckets WHERE bucket = ? AND model = ? AND entries = 0",
                       [key for key, sums in buckets.items() if sums[-1] <= 0])
        far = (1 << 62, -(1 << 62))
        tx.executemany(
            f"INSERT INTO {p}usage_sessions (session, model, {columns}, first_ms, last_ms) VALUES (?, ?, {marks}, ?, ?)"
            f" ON CONFLICT (session, model) DO UPDATE SET {_ADD},"
            " first_ms = min(first_ms, excluded.first_ms), last_ms = max(last_ms, excluded.last_ms)",
            [(*key, *sums, *times.get(key, far)) for key, sums in sessions.items()])
        tx.executemany(f"DELETE FROM {p}usage_sessions WHERE session = ? AND model = ? AND entries = 0",
                       [key for key, sums in sessions.items() if sums[-1] <= 0])
        # A replaced copy may have held a session's first or last time: recompute those rows.
        tx.executemany(
            f"UPDATE {p}usage_sessions SET"
            f" first_ms = (SELECT min(ms) FROM {p}usage_entries e"
            "              WHERE e.session_key = ?3 AND e.session = ?1 AND e.model = ?2),"
            f" last_ms = (SELECT max(ms) FROM {p}usage_entries e"
            "             WHERE e.session_key = ?3 AND e.session = ?1 AND e.model = ?2)"
            " WHERE session = ?1 AND model = ?2",
            sorted({(slot.session, slot.model, slot.session_key) for slot in self.stored.values()}))


def _count(buckets: dict, sessions: dict, slot: _Slot, sign: int) -> None:
    """Add (sign 1) or take away (sign -1) a copy's contribution to the bucket and session sums."""
    values = (sign * slot.input_tokens, sign * slot.output_tokens, sign * slot.cache_creation,
              sign * slot.cache_read, sign * slot.cost_pico, sign * slot.unpriced, sign)
    for table, key in ((buckets, (slot.ms // _BUCKET_MS, slot.model)), (sessions, (slot.session, slot.model))):
        sums = table.get(key)
        table[key] = values if sums is None else tuple(map(add, sums, values))
