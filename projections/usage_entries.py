"""Usage entries: the billable token counts in transcript records, and their dedupe rule.

Pure functions over one decoded transcript object (a `dict`), reproducing what ccusage 20
(the Rust build, checked against 20.0.24) counts, so a usage report built from these
entries matches ccusage to the token:

* An entry comes from a record whose `message.usage` is an object (an `assistant` record;
  ccusage does not look at `type`, its own fixtures have none), or from a `progress`
  record's `data.message` (a subagent message copied into the parent transcript; its
  `timestamp`, `requestId`, `isSidechain` and `costUSD` are the embedded ones).
* Dropped like ccusage drops them: a record in which any of `id`, `cwd`, `model`, `speed`,
  `costUSD`, `version`, `sessionId`, `requestId`, `isApiErrorMessage`,
  `cache_read_input_tokens`, `cache_creation_input_tokens` is null anywhere; a timestamp
  that is not `YYYY-MM-DDTHH:MM:SS[.mmm](Z|+HH:MM)` (exactly 0 or 3 fraction digits);
  a `version` that does not start `N.N.N`; an empty `sessionId`, `requestId`,
  `message.id` or `message.model`; usage without integer `input_tokens`/`output_tokens`;
  a `speed` other than `standard`/`fast`.
* Also dropped (our rule; ccusage counts them, but Claude Code writes them with all-zero
  usage, so totals agree): `isApiErrorMessage: true` and `model == "<synthetic>"`.
* Cache writes: with a `cache_creation` breakdown the 5m and 1h counts come from it and
  the cache-creation total is their sum; without it, all of
  `cache_creation_input_tokens` counts as 5-minute writes.

Dedupe (`UsageDeduper`, `better`): key (message.id, requestId), where a missing requestId
is part of the key (entries without one dedupe among themselves) and a missing message.id
means the entry is never deduped. A sidechain entry also matches an earlier entry with
the same message.id whatever its requestId (`/btw` replays). Within a group one entry is
kept: see `better`. ccusage feeds entries in file-path order (byte order of the full
path), lines in file order; the first entry wins a complete tie.

ccusage also reads only lines containing the bytes `"usage":{` (`has_usage_marker`) and
skips a line holding more than one JSON object; those are line-level rules for the
reader, not for these functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Literal

import msgspec

from projections.pricing import Pricing, cost, load_pricing

__all__ = [
    "USAGE_MARKER",
    "UsageDeduper",
    "UsageEntry",
    "better",
    "dedupe",
    "entries_from_record",
    "entry_cost",
    "entry_day",
    "has_usage_marker",
    "iter_entries",
    "parse_timestamp",
    "timestamp_ms",
]

USAGE_MARKER = b'"usage":{'
SYNTHETIC_MODEL = "<synthetic>"

# ccusage drops a whole line when one of these keys is null anywhere in it (a rule kept
# from its TypeScript schema).
_NULL_REJECTED_KEYS = frozenset(
    {
        "id",
        "cwd",
        "model",
        "speed",
        "costUSD",
        "version",
        "sessionId",
        "requestId",
        "isApiErrorMessage",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    }
)
_SPEEDS = frozenset({"standard", "fast"})
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{3}))?(?:Z|([+-])(\d\d):(\d\d))\Z"
)
_SEMVER_PREFIX = re.compile(r"\d+\.\d+\.\d")


class UsageEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One API response's token usage, as read from one transcript record."""

    message_id: str | None
    request_id: str | None
    session_id: str | None
    is_sidechain: bool
    timestamp: str
    ms: int
    """`timestamp` as milliseconds since the epoch (UTC)."""
    model: str | None
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int
    cache_creation_5m_tokens: int
    cache_creation_1h_tokens: int
    speed: str | None = None
    cost_usd: float | None = None
    from_progress: bool = False
    uuid: str | None = None

    @property
    def dedupe_key(self) -> tuple[str, str | None] | None:
        """(message.id, requestId or None); None when there is no message.id (never deduped)."""
        if self.message_id is None:
            return None
        return (self.message_id, self.request_id)

    @property
    def total_tokens(self) -> int:
        """Input + output + cache creation + cache read, the quantity dedupe maximises."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_tokens
            + self.cache_read_tokens
        )


def has_usage_marker(line: bytes) -> bool:
    """ccusage's line prefilter: it parses only lines containing `"usage":{` verbatim."""
    return USAGE_MARKER in line


def parse_timestamp(value: str) -> datetime | None:
    """An aware UTC datetime for a timestamp ccusage accepts, else None."""
    match = _TIMESTAMP.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, millis, sign, off_h, off_m = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int(millis or 0) * 1000,
            tzinfo=UTC,
        )
    except ValueError:
        return None
    if sign is not None:
        offset_h, offset_m = int(off_h), int(off_m)
        if offset_h > 23 or offset_m > 59:
            return None
        offset = timedelta(hours=offset_h, minutes=offset_m)
        moment = moment - offset if sign == "+" else moment + offset
    return moment


def timestamp_ms(value: str) -> int | None:
    """Milliseconds since the epoch (UTC) of a timestamp `parse_timestamp` accepts, else None.

    The same rules without building a datetime for every record: a replay reads one per
    assistant line. Calendar days are looked up once each.
    """
    match = _TIMESTAMP.match(value)
    if match is None:
        return None
    if value.startswith(("0001", "9999")):  # an offset may leave datetime's range: its rules decide
        moment = parse_timestamp(value)
        return None if moment is None else (moment - _EPOCH) // timedelta(milliseconds=1)
    days = _DAY_NUMBERS.get(value[:10])
    if days is None:
        days = _day_number(value)
        if days is None:
            return None
    _, _, _, hour, minute, second, millis, sign, off_h, off_m = match.groups()
    hour, minute, second = int(hour), int(minute), int(second)
    if hour > 23 or minute > 59 or second > 59:
        return None
    ms = (((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + (int(millis) if millis else 0)
    if sign is not None:
        offset_h, offset_m = int(off_h), int(off_m)
        if offset_h > 23 or offset_m > 59:
            return None
        offset = (offset_h * 60 + offset_m) * 60_000
        ms = ms - offset if sign == "+" else ms + offset
    return ms


_DAY_NUMBERS: dict[str, int] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()


def _day_number(value: str) -> int | None:
    """Days since the epoch of a timestamp's date, None when the date does not exist."""
    try:
        days = date(int(value[0:4]), int(value[5:7]), int(value[8:10])).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    if len(_DAY_NUMBERS) < 100_000:
        _DAY_NUMBERS[value[:10]] = days
    return days


def entry_day(entry: UsageEntry, tz: tzinfo = UTC) -> date:
    """The calendar day of an entry in `tz` (ccusage's `daily` bucket)."""
    moment = parse_timestamp(entry.timestamp)
    if moment is None:
        raise ValueError(f"not a ccusage timestamp: {entry.timestamp!r}")
    return moment.astimezone(tz).date()


def entries_from_record(record: Mapping[str, Any]) -> list[UsageEntry]:
    """The usage entries in one decoded transcript object: zero or one (progress: its copy)."""
    if not isinstance(record, Mapping):
        return []
    message = record.get("message")
    entry = None
    if isinstance(message, Mapping) and isinstance(message.get("usage"), Mapping):
        entry = _direct_entry(record, message)
    if entry is None:
        # ccusage tries the agent_progress shape whenever the direct one does not parse.
        entry = _progress_entry(record)
    if entry is None or _has_rejected_null(record):
        return []
    return [entry]


def iter_entries(records: Iterable[Mapping[str, Any]]) -> Iterator[UsageEntry]:
    """Every usage entry in a sequence of decoded records, in order (before dedupe)."""
    for record in records:
        yield from entries_from_record(record)


def entry_cost(
    pricing: Pricing, entry: UsageEntry, mode: Literal["auto", "calculate"] = "auto"
) -> float | None:
    """USD for an entry: the logged costUSD in `auto` mode when present, else priced tokens."""
    if mode == "auto" and entry.cost_usd is not None:
        return entry.cost_usd
    return cost(pricing, entry.model, entry)


def better(a: UsageEntry, b: UsageEntry, pricing: Pricing | None = None) -> bool:
    """Whether `a` should replace `b` as the kept copy of one API response (ccusage 20's rule).

    In order: a non-sidechain copy beats a sidechain one; then the larger total
    (input + output + cache creation + cache read); then the higher cost (ccusage's `auto`
    cost, an unpriced model counting 0); then one that has `speed` over one that has not.
    Otherwise `b`, the copy seen first, stays. `pricing` defaults to the built-in table.
    """
    if a.is_sidechain != b.is_sidechain:
        return b.is_sidechain
    if a.total_tokens != b.total_tokens:
        return a.total_tokens > b.total_tokens
    table = pricing if pricing is not None else _builtin_pricing()
    cost_a = entry_cost(table, a) or 0.0
    cost_b = entry_cost(table, b) or 0.0
    if cost_a != cost_b:
        return cost_a > cost_b
    return a.speed is not None and b.speed is None


class UsageDeduper:
    """Keeps one entry per API response, fed entries in ccusage's order (files by path)."""

    __slots__ = ("_entries", "_index", "_pricing", "_sidechain_id_match")

    def __init__(self, pricing: Pricing | None = None, *, sidechain_id_match: bool = True) -> None:
        self._pricing = pricing if pricing is not None else _builtin_pricing()
        self._sidechain_id_match = sidechain_id_match
        self._entries: list[UsageEntry] = []
        # (id, requestId) -> positions; (id, None) also lists every position holding that
        # id, as ccusage's message-id-only hash bucket does.
        self._index: dict[tuple[str, str | None], list[int]] = {}

    @property
    def entries(self) -> list[UsageEntry]:
        """The kept entries, in first-seen order of their group."""
        return list(self._entries)

    def add(self, entry: UsageEntry) -> None:
        """Add one entry: keep it, replace the copy it duplicates, or drop it."""
        message_id = entry.message_id
        if message_id is None:
            self._entries.append(entry)
            return
        key = (message_id, entry.request_id)
        position = self._find(key, entry.is_sidechain)
        if position is None:
            self._entries.append(entry)
            self._remember(key, len(self._entries) - 1)
        elif better(entry, self._entries[position], self._pricing):
            self._entries[position] = entry
            self._remember(key, position)

    def extend(self, entries: Iterable[UsageEntry]) -> None:
        """Add entries in order."""
        for entry in entries:
            self.add(entry)

    def _find(self, key: tuple[str, str | None], is_sidechain: bool) -> int | None:
        entries = self._entries
        for position in self._index.get(key, ()):
            kept = entries[position]
            if kept.message_id == key[0] and kept.request_id == key[1]:
                return position
        if not self._sidechain_id_match:
            return None
        for position in self._index.get((key[0], None), ()):
            kept = entries[position]
            if kept.message_id == key[0] and (is_sidechain or kept.is_sidechain):
                return position
        return None

    def _remember(self, key: tuple[str, str | None], position: int) -> None:
        for k in (key, (key[0], None)):
            positions = self._index.setdefault(k, [])
            if position not in positions:
                positions.append(position)


def dedupe(
    entries: Iterable[UsageEntry],
    pricing: Pricing | None = None,
    *,
    sidechain_id_match: bool = True,
) -> list[UsageEntry]:
    """The entries ccusage would keep, given entries in its reading order."""
    deduper = UsageDeduper(pricing, sidechain_id_match=sidechain_id_match)
    deduper.extend(entries)
    return deduper.entries


# --- building one entry -----------------------------------------------------------


_builtin: Pricing | None = None


def _builtin_pricing() -> Pricing:
    global _builtin
    if _builtin is None:
        _builtin = load_pricing()
    return _builtin


def _direct_entry(record: Mapping[str, Any], message: Mapping[str, Any]) -> UsageEntry | None:
    session_id = record.get("sessionId")
    version = record.get("version")
    if not _optional_str(session_id, nonempty=True):
        return None
    if version is not None and not (isinstance(version, str) and _SEMVER_PREFIX.match(version)):
        return None
    if record.get("isApiErrorMessage") is True:
        return None
    if not _optional_bool(record.get("isApiErrorMessage")):
        return None
    return _build(
        envelope=record,
        message=message,
        session_id=session_id,
        uuid=record.get("uuid"),
        from_progress=False,
    )


def _progress_entry(record: Mapping[str, Any]) -> UsageEntry | None:
    data = record.get("data")
    if not isinstance(data, Mapping):
        return None
    envelope = data.get("message")
    if not isinstance(envelope, Mapping):
        return None
    message = envelope.get("message")
    if not isinstance(message, Mapping) or not isinstance(message.get("usage"), Mapping):
        return None
    if envelope.get("isApiErrorMessage") is True:
        return None
    session_id = record.get("sessionId")
    return _build(
        envelope=envelope,
        message=message,
        session_id=session_id if isinstance(session_id, str) else None,
        uuid=envelope.get("uuid"),
        from_progress=True,
    )


def _build(
    *,
    envelope: Mapping[str, Any],
    message: Mapping[str, Any],
    session_id: str | None,
    uuid: Any,
    from_progress: bool,
) -> UsageEntry | None:
    timestamp = envelope.get("timestamp")
    ms = timestamp_ms(timestamp) if isinstance(timestamp, str) else None
    if ms is None:
        return None
    request_id = envelope.get("requestId")
    is_sidechain = envelope.get("isSidechain")
    cost_usd = envelope.get("costUSD")
    message_id = message.get("id")
    model = message.get("model")
    if not (
        _optional_str(request_id, nonempty=True)
        and _optional_str(message_id, nonempty=True)
        and _optional_str(model, nonempty=True)
        and _optional_bool(is_sidechain)
        and (cost_usd is None or _is_number(cost_usd))
    ):
        return None
    if model == SYNTHETIC_MODEL:
        return None
    tokens = _tokens(message["usage"])
    if tokens is None:
        return None
    input_tokens, output_tokens, write_5m, write_1h, write_total, read, speed = tokens
    return UsageEntry(
        message_id=message_id,
        request_id=request_id,
        session_id=session_id,
        is_sidechain=is_sidechain is True,
        timestamp=timestamp,
        ms=ms,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_creation_tokens=write_total,
        cache_read_tokens=read,
        cache_creation_5m_tokens=write_5m,
        cache_creation_1h_tokens=write_1h,
        speed=speed,
        cost_usd=None if cost_usd is None else float(cost_usd),
        from_progress=from_progress,
        uuid=uuid if isinstance(uuid, str) else None,
    )


def _tokens(usage: Mapping[str, Any]) -> tuple[int, int, int, int, int, int, str | None] | None:
    input_tokens = usage.get("input_tokens")
    output_tokens = usage.get("output_tokens")
    if not (_is_count(input_tokens) and _is_count(output_tokens)):
        return None
    write_flat = usage.get("cache_creation_input_tokens", 0)
    read = usage.get("cache_read_input_tokens", 0)
    if not (_is_count(write_flat) and _is_count(read)):
        return None
    speed = usage.get("speed")
    if speed is not None and speed not in _SPEEDS:
        return None
    breakdown = usage.get("cache_creation")
    if breakdown is None:
        write_5m, write_1h, write_total = write_flat, 0, write_flat
    elif isinstance(breakdown, Mapping):
        write_5m = breakdown.get("ephemeral_5m_input_tokens", 0)
        write_1h = breakdown.get("ephemeral_1h_input_tokens", 0)
        if not (_is_count(write_5m) and _is_count(write_1h)):
            return None
        write_total = write_5m + write_1h
    else:
        return None
    return input_tokens, output_tokens, write_5m, write_1h, write_total, read, speed


def _has_rejected_null(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, child in item.items():
                if child is None:
                    if key in _NULL_REJECTED_KEYS:
                        return True
                elif isinstance(child, (Mapping, list)):
                    stack.append(child)
        elif isinstance(item, list):
            stack.extend(child for child in item if isinstance(child, (Mapping, list)))
    return False


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _optional_str(value: Any, *, nonempty: bool) -> bool:
    if value is None:
        return True
    return isinstance(value, str) and (bool(value) or not nonempty)


def _optional_bool(value: Any) -> bool:
    return value is None or isinstance(value, bool)
