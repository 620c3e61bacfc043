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

import msgspec

from eventstore.errors import EventStoreError
from projections.pricing import Pricing, PricingError, load_pricing, tokens_cost
from projections.usage_decode import has_rejected_null, record_entries
from projections.usage_entries import _SEMVER_PREFIX, SYNTHETIC_MODEL, USAGE_MARKER, UsageEntry, timestamp_ms
from projections.usage_report import (
    BUCKET_SECONDS,
    NAME,
    PICO,
    projection_version,
    session_totals,
)
from schemas import lean
from schemas.envelope import RecordedEvent
from schemas.transcript_events import OTHER, SESSION_STREAM_PREFIX, SHARED_LINE_PREFIX

__all__ = ["PricingUnavailable", "UsageProjection", "record_entries", "session_totals"]

_BUCKET_MS = BUCKET_SECONDS * 1000
_ASSISTANT = "claude.assistant"

DDL = """
-- One row per API response (dedupe slot): the copy kept so far. Compact: the session and model
-- are a number (a row of usage_sessions), the dedupe key two 64-bit hashes.
CREATE TABLE {p}usage_entries (
    slot           INTEGER PRIMARY KEY,  -- creation order = log order of the first copy
    id_key         INTEGER,              -- 64-bit hash of message.id; NULL: none, never deduplicated
    request_key    INTEGER,              -- 64-bit hash of (message.id, requestId): the dedupe key
    pair           INTEGER NOT NULL,     -- usage_sessions.pair: the session and the model
    ms             INTEGER NOT NULL,     -- timestamp, ms since the epoch (UTC)
    flags          INTEGER NOT NULL,     -- 1 sidechain, 2 has speed, 4 fast, 8 unpriced
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cache_creation INTEGER NOT NULL,     -- 5-minute and 1-hour cache writes
    cache_1h       INTEGER NOT NULL,     -- the 1-hour writes among them (priced apart)
    cache_read     INTEGER NOT NULL,
    cost_pico      INTEGER NOT NULL,     -- round(cost * 1e12), cost as ccusage computes it (0 unpriced)
    cost_usd       REAL                  -- a logged costUSD (the cost, in ccusage's auto mode); else NULL
);
CREATE INDEX {p}usage_entries_id ON {p}usage_entries (id_key) WHERE id_key IS NOT NULL;

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

-- Per session and model (a "pair"), numbered in log order of the first copy kept for it; a pair
-- whose copies were all replaced by other pairs' keeps its row, with entries = 0.
CREATE TABLE {p}usage_sessions (
    pair           INTEGER PRIMARY KEY,
    session        TEXT NOT NULL,
    model          TEXT NOT NULL,        -- '' when absent; '-fast' suffix for fast mode
    input_tokens   INTEGER NOT NULL DEFAULT 0,
    output_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_creation INTEGER NOT NULL DEFAULT 0,
    cache_read     INTEGER NOT NULL DEFAULT 0,
    cost_pico      INTEGER NOT NULL DEFAULT 0,
    unpriced       INTEGER NOT NULL DEFAULT 0,
    entries        INTEGER NOT NULL DEFAULT 0,
    first_ms       INTEGER,              -- NULL while it has no kept copy
    last_ms        INTEGER,
    UNIQUE (session, model)
);
"""

_SUMS = ("input_tokens", "output_tokens", "cache_creation", "cache_read", "cost_pico", "unpriced", "entries")
_ADD = ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMS)
_SIDECHAIN, _HAS_SPEED, _FAST, _UNPRICED = 1, 2, 4, 8
_STORED = ("slot", "id_key", "request_key", "pair", "ms", "flags", "input_tokens", "output_tokens", "cache_creation",
           "cache_1h", "cache_read", "cost_pico", "cost_usd")
_UNKNOWN = -1.0  # cost not computed yet
_FAST_SUFFIX = "-fast"
_SESSION_SKIP = len(SESSION_STREAM_PREFIX)

class _Copy(msgspec.Struct, gc=False, array_like=True):
    """One copy of an API response (kept or not), with what dedupe, pricing and the tables need."""

    slot: int
    id_key: int | None
    request_key: int | None
    session: str
    model: str                  # '-fast' suffix for fast mode
    ms: int
    flags: int
    input_tokens: int
    output_tokens: int
    cache_creation: int
    cache_creation_1h_tokens: int
    cache_read_tokens: int
    cost_usd: float | None
    total: int
    cost: float = _UNKNOWN      # USD, 0.0 when unpriced (computed when first needed)
    unpriced: int = 0
    stored_pico: int = -1       # cost_pico as the table holds it (copies loaded from it)
    pair: int = 0               # its usage_sessions row (copies loaded from the table)
    position: int = 0           # its event (copies from the typed path)
    checked: bool = True        # False: whether a key ccusage rejects is null in its line is not known yet
    fallback: list[_Copy] | None = None  # what counts instead, should this copy be kept (nulls found)

    def price(self, pricing: Pricing) -> float:
        """ccusage's auto cost (a logged costUSD, else priced tokens; 0 when unpriced), computed once."""
        if self.cost == _UNKNOWN:
            if self.cost_usd is not None:
                self.cost, self.unpriced = self.cost_usd, 0
            else:
                fast = bool(self.flags & _FAST)
                price = pricing.lookup((self.model[:-len(_FAST_SUFFIX)] if fast else self.model) or None)
                if price is None:
                    self.cost, self.unpriced = 0.0, 1
                else:
                    self.cost = tokens_cost(price, self.input_tokens, self.output_tokens,
                                            self.cache_creation - self.cache_creation_1h_tokens,
                                            self.cache_creation_1h_tokens, self.cache_read_tokens, fast)
                    self.unpriced = 0
        return self.cost

    def same_price_as(self, other: _Copy) -> bool:
        """Whether the two cost the same for certain, without pricing them (streamed copies mostly do)."""
        return (self.model == other.model and self.cost_usd == other.cost_usd
                and self.flags & _FAST == other.flags & _FAST and self.input_tokens == other.input_tokens
                and self.output_tokens == other.output_tokens and self.cache_creation == other.cache_creation
                and self.cache_creation_1h_tokens == other.cache_creation_1h_tokens
                and self.cache_read_tokens == other.cache_read_tokens)

    def better_than(self, kept: _Copy, pricing: Pricing) -> bool:
        """`usage_entries.better`: main over sidechain, more tokens, higher cost, has speed; else first stays."""
        side, kept_side = self.flags & _SIDECHAIN, kept.flags & _SIDECHAIN
        if side != kept_side:
            return bool(kept_side)
        if self.total != kept.total:
            return self.total > kept.total
        if self.same_price_as(kept):
            return bool(self.flags & _HAS_SPEED) and not kept.flags & _HAS_SPEED
        mine, theirs = self.price(pricing), kept.price(pricing)
        if mine != theirs:
            return mine > theirs
        return bool(self.flags & _HAS_SPEED) and not kept.flags & _HAS_SPEED


class _Copies(list):
    """A batch's copies (`UsageProjection.facts`). Pickled as MessagePack: a rebuild's helper
    processes send them to the runner, and pickling the structs one by one cost five times as much."""

    def __reduce__(self):
        return _unpack_copies, (_COPIES.encode(self),)


_COPIES = msgspec.msgpack.Encoder()
_UNPACK_COPIES = msgspec.msgpack.Decoder(list[_Copy])


def _unpack_copies(packed: bytes) -> _Copies:
    return _Copies(_UNPACK_COPIES.decode(packed))


class PricingUnavailable(EventStoreError):
    """The price table cannot be loaded (a broken `$EVENTSTORE_PRICING` file, say).

    An `EventStoreError`, so the runner stops the catch-up and the command says why, instead
    of recording every usage event as one it could not apply.
    """


class UsageProjection:
    """Usage and cost: deduplicated API responses, 15-minute buckets per model, per-session totals."""

    name = NAME
    handles = frozenset((_ASSISTANT, "claude.progress", OTHER))
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
        self.apply_facts(tx, self.facts(events), prefix)

    def facts(self, events: Sequence[RecordedEvent]) -> list[_Copy]:
        """The copies of API responses in a batch, in log order, read from the events alone."""
        builder = _Facts(self.pricing)
        builder.add(events)
        return builder.result()

    def facts_builder(self) -> _Facts:
        """`facts` of a batch handed over a chunk at a time (projections.base)."""
        return _Facts(self.pricing)

    def apply_facts(self, tx, facts: list[_Copy], prefix: str) -> None:
        """Fold a batch's copies (from `facts`) into the kept copies and the aggregates."""
        if facts:
            _Batch(tx, prefix, self.pricing).run(list(facts))


class _Facts:
    """The copies of API responses in a batch (`UsageProjection.facts`), found a chunk of its events
    at a time: `add` each in log order, then take the `result`."""

    __slots__ = ("pricing", "found", "keys", "best", "previous", "stream", "session")

    def __init__(self, pricing: Pricing) -> None:
        self.pricing = pricing
        self.found = _Copies()
        self.keys = _Keys()
        self.best: dict[int, _Copy] = {}  # per dedupe key, the best copy so far with no rejected null
        self.previous = None  # (line, stream, copy) of the last typed copy found, while it counts as it is
        self.stream = self.session = None  # of the last event added

    def add(self, events: Sequence[RecordedEvent]) -> None:
        found, keys, best, pricing = self.found, self.keys, self.best, self.pricing
        decode = lean.take_assistant  # usage reads an assistant line last: the memo forgets it
        previous, stream, session = self.previous, self.stream, self.session
        for event in events:
            data = event.data
            if data.rfind(USAGE_MARKER) < 0:
                continue  # ccusage's own prefilter (searched from the end, where `usage` sits)
            correlation = event.correlation_id
            if correlation is not None and correlation.startswith(SHARED_LINE_PREFIX):
                continue  # ccusage cannot parse a line holding several records, so it counts none of them
            if event.stream is not stream:  # a batch holds long runs of one stream, sharing its name
                stream = event.stream
                session = stream[_SESSION_SKIP:] if stream.startswith(SESSION_STREAM_PREFIX) else None
            line = decode(data) if event.type == _ASSISTANT else None
            if (previous is not None and line is not None and found[-1] is previous[2] and stream == previous[1]
                    and _repeats(line, previous[0])):
                continue  # the copy of the line before again: not better, so left out (`_same_response`)
            copy = _typed_copy(line, session, keys)
            previous = None
            if copy is not None:
                # A copy counts only if no key ccusage rejects is null in its line; else what the
                # general path reads counts in its place. Looking costs a scan of the line, spared
                # to a copy no better than one before it here, which can hardly be kept (should it
                # be, `_Batch.run` looks then).
                copy.position = event.position
                last = found[-1] if found else None
                twin = last is not None and _same_response(last, copy)
                if twin and not copy.better_than(last, pricing):
                    continue  # the copy before it stays whatever was kept before: leave this one out
                rival = best.get(copy.request_key) if copy.id_key is not None else None
                if rival is not None and not copy.better_than(rival, pricing):
                    copy.checked = False
                elif has_rejected_null(data):
                    copy.fallback = _fallback(data, session)
                elif copy.id_key is not None:
                    best[copy.request_key] = copy
                if twin and copy.checked and copy.fallback is None:
                    found[-1] = copy  # it replaces the copy before it, in the same slot, whatever was kept before
                else:
                    found.append(copy)
                if found[-1] is copy and copy.checked and copy.fallback is None and not copy.flags & _SIDECHAIN:
                    previous = (line, stream, copy)
                continue
            for entry in record_entries(data):  # the general path, for everything the typed one leaves
                found.append(_entry_copy(entry, session, keys))
        self.previous, self.stream, self.session = previous, stream, session

    def result(self) -> _Copies:
        return self.found


def _repeats(line: lean.Assistant, last: lean.Assistant) -> bool:
    """Whether a line's copy would be the copy of the line before, but for its time: the same
    response, usage, model, flags and cost, its time valid. Checked before building the copy (a
    fifth of a rebuild's lines are such repeats)."""
    message, before = line.message, last.message
    timestamp = line.timestamp
    return (message is not None and before is not None and message.id == before.id
            and line.requestId == last.requestId and message.usage == before.usage and message.model == before.model
            and line.isSidechain == last.isSidechain and line.costUSD == last.costUSD
            and line.sessionId == last.sessionId and line.version == last.version
            and line.isApiErrorMessage == last.isApiErrorMessage
            and timestamp is not None and _ms(timestamp) is not None)


def _same_response(last: _Copy, copy: _Copy) -> bool:
    """Whether `copy` follows `last` as another main-chain copy of the same response, in the same
    session under the same model, `last` counting as it is (no null ccusage rejects in its line).

    Claude Code writes a response as one line per content block, most with the same usage. Of
    two such copies in a row only the better one can matter: `better_than` orders copies by a
    key (main chain, total, cost, speed), so whatever slot the first lands in (it is the slot the
    second finds), folding both leaves what folding the better one alone leaves, and with
    nothing between them the slot is numbered alike. Leaving the other out halves a rebuild's
    copies."""
    return (copy.request_key is not None and copy.request_key == last.request_key
            and not (copy.flags | last.flags) & _SIDECHAIN and last.checked and last.fallback is None
            and copy.session == last.session and copy.model == last.model)


def _key(text: str) -> int:
    """A stable signed 64-bit hash (SQLite's INTEGER)."""
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


class _Keys:
    """(id_key, request_key) of (message.id, requestId), remembered for the run of copies of one response."""

    __slots__ = ("last", "keys")

    def __init__(self) -> None:
        self.last: tuple[str | None, str] | None = None
        self.keys: tuple[int | None, int | None] = (None, None)

    def of(self, message_id: str | None, request_id: str) -> tuple[int | None, int | None]:
        pair = (message_id, request_id)
        if pair != self.last:
            self.last = pair
            self.keys = (None, None) if message_id is None else (
                _key(message_id), _key(f"{message_id}\0{request_id}"))
        return self.keys


# Timestamps in Claude Code's own form, `2026-05-01T10:00:00.000Z`, read as their hour (cached: a
# log spans few) plus the minute, second and millisecond parts, each found in a table of every
# value its place can hold. The hours only ever hold what `timestamp_ms` gave.
_HOURS: dict[str, int] = {}
_MINUTE_PART = {f"{n:02d}:": n * 60_000 for n in range(60)}
_SECOND_PART = {f"{n:02d}.": n * 1000 for n in range(60)}
_MILLI_PART = {f"{n:03d}Z": n for n in range(1000)}


def _ms(timestamp: str) -> int | None:
    """`usage_entries.timestamp_ms`, faster for the common form (`YYYY-MM-DDTHH:` cached, then MM:SS.mmmZ)."""
    minute, second = _MINUTE_PART.get(timestamp[14:17]), _SECOND_PART.get(timestamp[17:20])
    milli = _MILLI_PART.get(timestamp[20:])
    common = minute is not None and second is not None and milli is not None
    if common:
        hour = _HOURS.get(timestamp[:14])
        if hour is not None:
            return hour + minute + second + milli
    ms = timestamp_ms(timestamp)
    # Years 0001 and 9999 take `timestamp_ms`'s datetime path: not cached.
    if common and ms is not None and timestamp.isascii() and not timestamp.startswith(("0001", "9999")) \
            and len(_HOURS) < 100_000:
        _HOURS[timestamp[:14]] = ms - minute - second - milli
    return ms


_VERSIONS: dict[str, bool] = {}


def _semver(version: str) -> bool:
    """Whether a `version` starts N.N.N (ccusage's check), remembered: a log holds few versions."""
    known = _VERSIONS.get(version)
    if known is None:
        known = _SEMVER_PREFIX.match(version) is not None
        if len(_VERSIONS) < 10_000:
            _VERSIONS[version] = known
    return known


def _typed_copy(line: lean.Assistant | None, session: str | None, keys: _Keys) -> _Copy | None:
    """The copy in a well-formed assistant record, exactly as usage_decode's typed path reads it;
    None: let the general path decide."""
    if line is None:
        return None
    message = line.message
    if message is None:
        return None
    usage = message.usage
    timestamp = line.timestamp
    if usage is None or timestamp is None:
        return None
    version = line.version
    model = message.model
    if (line.sessionId == "" or line.requestId == "" or message.id == "" or not model or model == SYNTHETIC_MODEL
            or line.isApiErrorMessage or (version is not None and not _semver(version))):
        return None
    ms = _ms(timestamp)
    if ms is None:
        return None
    split = usage.cache_creation
    if split is None:
        write_5m, write_1h = usage.cache_creation_input_tokens, 0
    else:
        write_5m, write_1h = split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens
    speed = usage.speed
    flags = _SIDECHAIN if line.isSidechain is True else 0
    if speed is not None:
        flags |= _HAS_SPEED
        if speed == "fast":
            flags |= _FAST
            model += _FAST_SUFFIX
    request_id = line.requestId or ""
    message_id = message.id
    id_key, request_key = keys.of(message_id, request_id)
    inputs, outputs, reads = usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens
    writes = write_5m + write_1h
    return _Copy(0, id_key, request_key, session or line.sessionId or "", model, ms, flags, inputs, outputs,
                 writes, write_1h, reads, line.costUSD, inputs + outputs + writes + reads)


def _fallback(data: bytes, session: str | None) -> list[_Copy]:
    """The copies the general path reads in a line, which count in place of its typed copy."""
    keys = _Keys()
    return [_entry_copy(entry, session, keys) for entry in record_entries(data)]


def _entry_copy(entry: UsageEntry, session: str | None, keys: _Keys) -> _Copy:
    model = entry.model or ""
    flags = int(entry.is_sidechain)
    if entry.speed is not None:
        flags |= _HAS_SPEED
        if entry.speed == "fast":
            flags |= _FAST
            if model:
                model += _FAST_SUFFIX
    id_key, request_key = keys.of(entry.message_id, entry.request_id or "")
    return _Copy(0, id_key, request_key, session or entry.session_id or "", model, entry.ms, flags,
                 entry.input_tokens, entry.output_tokens, entry.cache_creation_tokens, entry.cache_creation_1h_tokens,
                 entry.cache_read_tokens, entry.cost_usd, entry.total_tokens)


class _Batch:
    """One batch's dedupe work: load the slots its message ids touch, fold, write the net changes.

    Copies of one response mostly arrive together, so a slot may be replaced many times in a
    batch: the aggregates only take each changed slot's final copy, less the stored copy it
    replaced, if any.
    """

    def __init__(self, tx, prefix: str, pricing: Pricing) -> None:
        self.tx, self.p, self.pricing = tx, prefix, pricing
        self.slots: dict[int, _Copy] = {}
        self.exact: dict[int, int] = {}          # request_key -> slot
        self.by_id: dict[int, list[int]] = {}    # id_key -> slots, in slot order
        self.stored: dict[int, _Copy] = {}       # slots as the table held them, before this batch replaced them
        self.changed: set[int] = set()

    def run(self, found: list[_Copy]) -> None:
        tx, p = self.tx, self.p
        ids = sorted({copy.id_key for copy in found if copy.id_key is not None})
        if ids:
            columns = ", ".join(f"e.{c}" for c in _STORED)
            for (slot, id_key, request_key, pair, ms, flags, inputs, outputs, writes, write_1h, reads, pico, cost_usd,
                 session, model) in tx.execute(
                    f"SELECT {columns}, s.session, s.model FROM {p}usage_entries e JOIN {p}usage_sessions s USING (pair)"
                    " WHERE e.id_key IN (SELECT value FROM json_each(?)) ORDER BY e.slot", (msgspec.json.encode(ids),)):
                self._remember(_Copy(slot, id_key, request_key, session, model, ms, flags & ~_UNPRICED, inputs,
                                     outputs, writes, write_1h, reads, cost_usd, inputs + outputs + writes + reads,
                                     stored_pico=pico, pair=pair))
        next_slot = tx.execute(f"SELECT coalesce(max(slot), 0) + 1 FROM {p}usage_entries")[0][0]
        slots, exact, changed, stored, pricing = self.slots, self.exact, self.changed, self.stored, self.pricing
        kept_order: list[_Copy] = []  # copies that were kept at some point, in log order
        found.reverse()
        while found:
            new = found.pop()
            kept = None
            if new.id_key is not None:
                number = exact.get(new.request_key)
                kept = slots[number] if number is not None else self._sidechain_match(new)
            if kept is not None and not new.better_than(kept, pricing):
                continue
            if not new.checked:
                data = tx.execute("SELECT event_payload(?)", (new.position,))[0][0]
                if has_rejected_null(data):
                    new.fallback = _fallback(data, new.session or None)
            if new.fallback is not None:
                found.extend(reversed(new.fallback))
                continue
            kept_order.append(new)
            if kept is None:
                new.slot = next_slot
                next_slot += 1
                self._remember(new)
                changed.add(new.slot)
            else:
                number = new.slot = kept.slot
                if number not in changed:
                    stored[number] = kept
                    changed.add(number)
                del exact[kept.request_key]
                slots[number] = new
                exact[new.request_key] = number
        self._write(kept_order)

    def _remember(self, copy: _Copy) -> None:
        self.slots[copy.slot] = copy
        if copy.id_key is not None:
            self.exact[copy.request_key] = copy.slot
            self.by_id.setdefault(copy.id_key, []).append(copy.slot)

    def _sidechain_match(self, new: _Copy) -> _Copy | None:
        """A sidechain copy (a /btw replay) matches an earlier response by message id alone."""
        for number in self.by_id.get(new.id_key, ()):
            kept = self.slots[number]
            if new.flags & _SIDECHAIN or kept.flags & _SIDECHAIN:
                return kept
        return None

    def _write(self, kept_order: list[_Copy]) -> None:
        tx, p, pricing = self.tx, self.p, self.pricing
        # Pairs are numbered in log order of the copies that were ever kept (the same copies
        # whatever the batch split: the fold is the same), so any split numbers alike.
        pairs = list(dict.fromkeys((copy.session, copy.model) for copy in kept_order))
        tx.executemany(f"INSERT OR IGNORE INTO {p}usage_sessions (session, model) VALUES (?, ?)", pairs)
        numbers = {(session, model): pair for pair, session, model in tx.execute(
            f"SELECT s.pair, s.session, s.model FROM json_each(?) j JOIN {p}usage_sessions s"
            " ON s.session = j.value ->> 0 AND s.model = j.value ->> 1", (msgspec.json.encode(pairs),))}
        # Each changed slot's contribution (values of _SUMS), per bucket and per pair, summed at the end.
        in_buckets: dict[tuple[int, str], list[tuple[int, ...]]] = {}
        in_sessions: dict[int, list[tuple[int, ...]]] = {}
        times: dict[int, list[int]] = {}
        rows = []
        for number in sorted(self.changed):
            copy = self.slots[number]
            pico = round(copy.price(pricing) * PICO)
            pair = numbers[(copy.session, copy.model)]
            rows.append((number, copy.id_key, copy.request_key, pair, copy.ms, copy.flags | (_UNPRICED * copy.unpriced),
                         copy.input_tokens, copy.output_tokens, copy.cache_creation, copy.cache_creation_1h_tokens,
                         copy.cache_read_tokens, pico, copy.cost_usd))
            values = (copy.input_tokens, copy.output_tokens, copy.cache_creation, copy.cache_read_tokens, pico,
                      copy.unpriced, 1)
            in_buckets.setdefault((copy.ms // _BUCKET_MS, copy.model), []).append(values)
            in_sessions.setdefault(pair, []).append(values)
            span = times.get(pair)
            if span is None:
                times[pair] = [copy.ms, copy.ms]
            elif copy.ms < span[0]:
                span[0] = copy.ms
            elif copy.ms > span[1]:
                span[1] = copy.ms
        for copy in self.stored.values():  # what the copies they replaced had added, taken away
            copy.price(pricing)  # sets `unpriced`
            values = (-copy.input_tokens, -copy.output_tokens, -copy.cache_creation, -copy.cache_read_tokens,
                      -copy.stored_pico, -copy.unpriced, -1)
            in_buckets.setdefault((copy.ms // _BUCKET_MS, copy.model), []).append(values)
            in_sessions.setdefault(copy.pair, []).append(values)
        buckets = {key: tuple(map(sum, zip(*parts))) for key, parts in in_buckets.items()}
        sessions = {pair: tuple(map(sum, zip(*parts))) for pair, parts in in_sessions.items()}
        # Delete then insert, not INSERT OR REPLACE: inside the runner's savepoint, every REPLACE
        # statement opens a statement journal whose cost grows with the database.
        tx.executemany(f"DELETE FROM {p}usage_entries WHERE slot = ?", [(number,) for number in self.stored])
        tx.executemany(f"INSERT INTO {p}usage_entries ({', '.join(_STORED)}) VALUES ({', '.join('?' * len(_STORED))})",
                       rows)
        columns = ", ".join(_SUMS)
        marks = ", ".join("?" * len(_SUMS))
        tx.executemany(
            f"INSERT INTO {p}usage_buckets (bucket, model, {columns}) VALUES (?, ?, {marks})"
            f" ON CONFLICT (bucket, model) DO UPDATE SET {_ADD}",
            [(*key, *sums) for key, sums in buckets.items()])
        tx.executemany(f"DELETE FROM {p}usage_buckets WHERE bucket = ? AND model = ? AND entries = 0",
                       [key for key, sums in buckets.items() if sums[-1] <= 0])
        tx.executemany(
            f"UPDATE {p}usage_sessions SET {', '.join(f'{c} = {c} + ?' for c in _SUMS)},"
            " first_ms = CASE WHEN ?8 IS NULL THEN first_ms WHEN first_ms IS NULL OR ?8 < first_ms THEN ?8"
            " ELSE first_ms END,"
            " last_ms = CASE WHEN ?9 IS NULL THEN last_ms WHEN last_ms IS NULL OR ?9 > last_ms THEN ?9"
            " ELSE last_ms END"
            " WHERE pair = ?10",
            [(*sums, *times.get(pair, (None, None)), pair) for pair, sums in sessions.items()])
        # A replaced copy may have held its pair's first or last time: recompute those rows (a scan:
        # it happens about once per log, not worth an index of every entry's time).
        if self.stored:
            bounds = {pair: (first, last) for pair, first, last in tx.execute(
                f"SELECT pair, first_ms, last_ms FROM {p}usage_sessions WHERE pair IN (SELECT value FROM json_each(?))",
                (msgspec.json.encode(sorted({copy.pair for copy in self.stored.values()})),))}
            stale = set()
            for number, old in self.stored.items():
                new = self.slots[number]
                if new.ms == old.ms and numbers[(new.session, new.model)] == old.pair:
                    continue  # its replacement holds the same time in the same row
                if old.ms in bounds[old.pair]:
                    stale.add(old.pair)
            tx.executemany(
                f"UPDATE {p}usage_sessions SET first_ms = (SELECT min(ms) FROM {p}usage_entries WHERE pair = ?1),"
                f" last_ms = (SELECT max(ms) FROM {p}usage_entries WHERE pair = ?1) WHERE pair = ?1",
                [(pair,) for pair in sorted(stale)])

