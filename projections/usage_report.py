"""Usage reports from the usage read model: daily, weekly, monthly and per session, like ccusage.

The query side of `projections.usage`, kept apart so that `eventstore usage` imports only
what a report needs (no price table, no transcript rules): it reads the small aggregate
tables, maps UTC 15-minute buckets to calendar days of a time zone, and shapes rows as
ccusage's `--json` does (`period` plus ccusage's own key: `date`, `week`, `month`,
`sessionId`). Weeks start on Sunday, as in ccusage; days are calendar days in the given IANA
zone, or the system zone (the C library's, which follows `$TZ` and /etc/localtime).

A session is a Claude Code session (the stream `claude:session:<id>`), its subagents' usage
included; ccusage 20 names sessions after files instead, so an old-layout `agent-*.jsonl`
subagent file is a session of its own there. Sessions are listed most expensive first, as
ccusage lists them.

Bucket to day: every zone offset in use is a multiple of 15 minutes, so a bucket never
straddles local midnight; offsets are sampled daily over the buckets' range and located to
the bucket where they change, and SQLite sums the buckets of each day.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "BUCKET_SECONDS",
    "KINDS",
    "NAME",
    "PICO",
    "RULES_VERSION",
    "Report",
    "daily_rows",
    "is_fresh",
    "pricing_fingerprint",
    "projection_version",
    "report",
    "session_totals",
    "zone_offsets",
]

NAME = "usage"
RULES_VERSION = "5"
"""Bump when a rule of projections.usage or projections.usage_entries changes: it rebuilds."""
BUCKET_SECONDS = 900
PICO = 10**12
"""Cost is stored in integer picodollars: exact, order-independent sums."""
KINDS = ("daily", "weekly", "monthly", "session")
PRICING_ENV = "EVENTSTORE_PRICING"  # projections.pricing.PRICING_ENV, not imported: it is heavy
_DAY = 86_400
_EPOCH_WEEKDAY_FROM_SUNDAY = 4  # 1970-01-01 was a Thursday
_PERIOD_KEY = {"daily": "date", "weekly": "week", "monthly": "month", "session": "sessionId"}
_TOKENS = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")

Report = dict[str, Any]
Offsets = Callable[[int], int]
"""A zone: seconds since the epoch -> its UTC offset in seconds at that instant."""


# Versions and freshness


def pricing_fingerprint() -> str:
    """A hash of the pricing inputs (built-in table and `$EVENTSTORE_PRICING` file), cheap to compute."""
    try:
        from _blake2 import blake2b  # hashlib's own implementation, without loading OpenSSL
    except ImportError:  # pragma: no cover - other Python builds
        from hashlib import blake2b
    digest = blake2b(digest_size=8)
    with open(os.path.join(os.path.dirname(__file__), "pricing.json"), "rb") as handle:
        digest.update(handle.read())
    override = os.environ.get(PRICING_ENV)
    if override:
        digest.update(b"\0override\0" + override.encode())
        try:
            with open(override, "rb") as handle:
                digest.update(handle.read())
        except OSError as exc:
            digest.update(f"\0unreadable: {exc}".encode())
    return digest.hexdigest()


def projection_version(pricing: str | None = None) -> str:
    """The usage projection's version: rules, and the pricing fingerprint (computed when not given)."""
    return f"{RULES_VERSION}+{pricing or pricing_fingerprint()}"


def is_fresh(conn, version: str | None = None) -> bool:
    """Whether the usage tables are built by this version and at the head of the log (two cheap reads)."""
    rows = conn.execute("SELECT version, position FROM projection_checkpoints WHERE name = ?", (NAME,)).fetchall()
    if not rows or rows[0][0] != (version or projection_version()):
        return False
    head = conn.execute("SELECT max(position) FROM events").fetchall()[0][0] or 0
    return rows[0][1] >= head


# Time zones


def zone_offsets(name: str | None) -> Offsets:
    """UTC offsets of an IANA zone (ValueError if unknown), or of the system zone for None."""
    if name is None:
        localtime = time.localtime
        return lambda seconds: localtime(seconds).tm_gmtoff
    if name in ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"):
        return lambda seconds: 0  # the common scripted case, without loading zoneinfo
    from datetime import datetime
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as Europe/Paris)") from None
    fromtimestamp = datetime.fromtimestamp

    def offset(seconds: int) -> int:
        return int(fromtimestamp(seconds, zone).utcoffset().total_seconds())

    return offset


def _transitions(offset_at: Offsets, first: int, last: int) -> list[tuple[int, int]]:
    """[(first bucket, offset)] over buckets first..last: where the zone's offset changes."""
    cur = offset_at(first * BUCKET_SECONDS)
    out = [(first, cur)]
    step = _DAY // BUCKET_SECONDS
    bucket = first
    while bucket < last:
        nxt = min(bucket + step, last)
        if offset_at(nxt * BUCKET_SECONDS) == cur:
            bucket = nxt
            continue
        lo, hi = bucket, nxt  # offset(lo) == cur != offset(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if offset_at(mid * BUCKET_SECONDS) == cur:
                lo = mid
            else:
                hi = mid
        cur = offset_at(hi * BUCKET_SECONDS)
        out.append((hi, cur))
        bucket = hi
    return out


def _day_expression(transitions: list[tuple[int, int]]) -> tuple[str, list[int]]:
    """SQL for a bucket's local day number (days since 1970-01-01 in the zone), and its parameters."""
    params: list[int] = []
    if len(transitions) == 1:
        offset = "?"
        params.append(transitions[0][1])
    else:
        cases = []
        for (_, offset_value), (next_start, _) in zip(transitions, transitions[1:]):
            cases.append("WHEN bucket < ? THEN ?")
            params += [next_start, offset_value]
        offset = f"CASE {' '.join(cases)} ELSE ? END"
        params.append(transitions[-1][1])
    return f"(bucket * {BUCKET_SECONDS} + {offset}) / {_DAY}", params


# Reading the aggregates


def daily_rows(conn, offset_at: Offsets, prefix: str = "") -> list[tuple]:
    """(local day number, model, input, output, cache creation, cache read, cost pico, unpriced, first bucket)."""
    first, last = conn.execute(f"SELECT min(bucket), max(bucket) FROM {prefix}usage_buckets").fetchall()[0]
    if first is None:
        return []
    day, params = _day_expression(_transitions(offset_at, first, last))
    return conn.execute(
        f"SELECT {day} AS day, model, sum(input_tokens), sum(output_tokens), sum(cache_creation),"
        f" sum(cache_read), sum(cost_pico), sum(unpriced), min(bucket)"
        f" FROM {prefix}usage_buckets GROUP BY day, model",
        params,
    ).fetchall()


def session_rows(conn, start_ms: int | None = None, end_ms: int | None = None, prefix: str = "") -> list[tuple]:
    """(session, model, input, output, cache creation, cache read, cost pico, unpriced, first ms, last ms)."""
    if start_ms is None and end_ms is None:
        return conn.execute(
            "SELECT session, model, input_tokens, output_tokens, cache_creation, cache_read, cost_pico, unpriced,"
            f" first_ms, last_ms FROM {prefix}usage_sessions WHERE entries > 0").fetchall()
    return conn.execute(
        "SELECT s.session, s.model, sum(e.input_tokens), sum(e.output_tokens), sum(e.cache_creation),"
        " sum(e.cache_read), sum(e.cost_pico), sum(e.flags >> 3 & 1), min(e.ms), max(e.ms)"
        f" FROM {prefix}usage_entries e JOIN {prefix}usage_sessions s USING (pair)"
        " WHERE e.ms >= ? AND e.ms < ? GROUP BY e.pair",
        (-(1 << 62) if start_ms is None else start_ms, (1 << 62) if end_ms is None else end_ms),
    ).fetchall()


def session_totals(conn, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Token and cost totals per session id, keyed as ccusage names them (for the sessions listing)."""
    out = {}
    for session, i, o, cc, cr, pico in conn.execute(
        "SELECT session, sum(input_tokens), sum(output_tokens), sum(cache_creation), sum(cache_read),"
        f" sum(cost_pico) FROM {prefix}usage_sessions WHERE entries > 0 GROUP BY session"):
        out[session] = {"inputTokens": i, "outputTokens": o, "cacheCreationTokens": cc, "cacheReadTokens": cr,
                        "totalTokens": i + o + cc + cr, "totalCost": pico / PICO}
    return out


# Shaping reports


def _day_label(day: int) -> str:
    t = time.gmtime(day * _DAY)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"


def _week_start(day: int) -> int:
    return day - (day + _EPOCH_WEEKDAY_FROM_SUNDAY) % 7


def _iso_ms(ms: int) -> str:
    t = time.gmtime(ms // 1000)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
            f".{ms % 1000:03d}Z")


class _Group:
    """One report row being summed: per model (input, output, cache creation, cache read, pico, unpriced, first)."""

    __slots__ = ("models", "first", "last")

    def __init__(self) -> None:
        self.models: dict[str, list[int]] = {}
        self.first: int | None = None
        self.last: int | None = None

    def add(self, model: str, sums: Iterable[int], order: int) -> None:
        acc = self.models.get(model)
        if acc is None:
            self.models[model] = [*sums, order]
            return
        for i, value in enumerate(sums):
            acc[i] += value
        acc[6] = min(acc[6], order)


def _row(kind: str, label: str, group: _Group) -> dict[str, Any]:
    totals = [0, 0, 0, 0, 0]
    breakdowns = []
    for model, (i, o, cc, cr, pico, unpriced, _) in group.models.items():
        totals[0] += i
        totals[1] += o
        totals[2] += cc
        totals[3] += cr
        totals[4] += pico
        if model:  # '' holds responses without a model: in the totals, not in the breakdown
            breakdown = {"modelName": model, "inputTokens": i, "outputTokens": o, "cacheCreationTokens": cc,
                         "cacheReadTokens": cr, "cost": pico / PICO}
            if unpriced:
                breakdown["missingPricing"] = True
            breakdowns.append((pico, breakdown))
    breakdowns.sort(key=lambda item: (-item[0], item[1]["modelName"]))
    used = sorted((m for m in group.models if m), key=lambda m: (group.models[m][6], m))
    row: dict[str, Any] = {"period": label, _PERIOD_KEY[kind]: label}
    if kind == "session":
        row["firstActivity"] = _iso_ms(group.first) if group.first is not None else None
        row["lastActivity"] = _iso_ms(group.last) if group.last is not None else None
    row.update({
        "inputTokens": totals[0], "outputTokens": totals[1], "cacheCreationTokens": totals[2],
        "cacheReadTokens": totals[3], "totalTokens": sum(totals[:4]), "totalCost": totals[4] / PICO,
        "modelsUsed": used, "modelBreakdowns": [b for _, b in breakdowns],
    })
    return row


def _totals(groups: Iterable[_Group]) -> dict[str, Any]:
    sums = [0, 0, 0, 0, 0]
    unpriced = set()
    for group in groups:
        for model, values in group.models.items():
            for i in range(5):
                sums[i] += values[i]
            if values[5] and model:
                unpriced.add(model)
    totals: dict[str, Any] = dict(zip(_TOKENS, sums[:4]))
    totals["totalTokens"] = sum(sums[:4])
    totals["totalCost"] = sums[4] / PICO
    if unpriced:
        totals["unpricedModels"] = sorted(unpriced)
    return totals


def report(kind: str, rows: list[tuple], *, since: str | None = None, until: str | None = None) -> Report:
    """The `usage KIND --json` document from `daily_rows` (or `session_rows` for "session").

    `since`/`until` are YYYYMMDD local days, both inclusive; for sessions, the rows are
    already filtered (`session_rows` with a time range).
    """
    groups: dict[Any, _Group] = {}
    if kind == "session":
        for session, model, i, o, cc, cr, pico, unpriced, first_ms, last_ms in rows:
            group = groups.get(session)
            if group is None:
                group = groups[session] = _Group()
            group.add(model, (i, o, cc, cr, pico, unpriced), first_ms)
            group.first = first_ms if group.first is None else min(group.first, first_ms)
            group.last = last_ms if group.last is None else max(group.last, last_ms)
        # ccusage's order: the most expensive session first.
        ordered = sorted(groups.items(), key=lambda item: (-sum(v[4] for v in item[1].models.values()),
                                                           -(item[1].last or 0), item[0]))
        return {"session": [_row(kind, session, group) for session, group in ordered],
                "totals": _totals(groups.values())}
    low = int(since) if since else None
    high = int(until) if until else None
    labels: dict[int, str] = {}
    for day, model, i, o, cc, cr, pico, unpriced, first_bucket in rows:
        label = labels.get(day)
        if label is None:
            label = labels[day] = _day_label(day)
        if low is not None or high is not None:
            number = int(label.replace("-", ""))
            if (low is not None and number < low) or (high is not None and number > high):
                continue
        if kind == "daily":
            key = day
        elif kind == "weekly":
            key = _week_start(day)
        elif kind == "monthly":
            key = label[:7]
        else:
            raise ValueError(f"unknown report {kind!r}; expected one of {', '.join(KINDS)}")
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group()
        group.add(model, (i, o, cc, cr, pico, unpriced), first_bucket)
    out = []
    for key in sorted(groups):
        label = key if kind == "monthly" else _day_label(key)
        out.append(_row(kind, label, groups[key]))
    return {kind: out, "totals": _totals(groups.values())}


def day_start_ms(day: str, zone: str | None) -> int:
    """The first instant (ms since the epoch) of a YYYYMMDD calendar day in a zone (None: the system's)."""
    year, month, mday = int(day[:4]), int(day[4:6]), int(day[6:8])
    if zone is None:
        return int(time.mktime((year, month, mday, 0, 0, 0, 0, 0, -1))) * 1000
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return int(datetime(year, month, mday, tzinfo=ZoneInfo(zone)).timestamp()) * 1000


LAST_DAY = "99991231"
"""The last date YYYYMMDD can write: it has no next day."""


def next_day(day: str) -> str:
    """The YYYYMMDD day after a YYYYMMDD day before `LAST_DAY`."""
    return _day_label(_days(day) + 1).replace("-", "")


def is_day(text: str) -> bool:
    """Whether `text` is a real calendar date written YYYYMMDD (years 0001 to 9999)."""
    if len(text) != 8 or not text.isdigit() or not (1 <= int(text[4:6]) <= 12) or text[:4] == "0000":
        return False
    return _day_label(_days(text)).replace("-", "") == text


def _days(day: str) -> int:
    """Days since 1970-01-01 of a YYYYMMDD date (Howard Hinnant's days_from_civil)."""
    year, month, mday = int(day[:4]), int(day[4:6]), int(day[6:8])
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + mday - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def build_report(conn, kind: str, since: str | None, until: str | None, zone: str | None) -> Report:
    """One usage report from the read model on `conn` (zone: IANA name, None for the system zone)."""
    if kind == "session":
        start = day_start_ms(since, zone) if since else None
        end = day_start_ms(next_day(until), zone) if until and until != LAST_DAY else None
        return report(kind, session_rows(conn, start, end))
    return report(kind, daily_rows(conn, zone_offsets(zone)), since=since, until=until)


def warm_report(path, kind: str, since: str | None, until: str | None, zone: str | None,
                schema_version: int) -> Report | None:
    """The report straight from the read model when the database is at `schema_version` (this
    code's) and the model is built and at the head of the log, in one snapshot; None when not (or
    the file cannot be read), for the caller to migrate, catch up or refuse."""
    import apsw

    try:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
    except apsw.Error:
        return None  # missing or unreadable: the Store says why, or creates it
    try:
        conn.set_busy_timeout(5_000)
        conn.execute("BEGIN")
        try:
            if conn.execute("PRAGMA user_version").fetchall()[0][0] != schema_version or not is_fresh(conn):
                return None
            return build_report(conn, kind, since, until, zone)
        finally:
            conn.execute("COMMIT")
    except apsw.Error:
        return None  # not ours, not built, locked: the slow path reports it properly
    finally:
        conn.close()
