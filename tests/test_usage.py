"""The usage projection and `eventstore usage`: ccusage through the whole pipeline, and its rules.

The corpus comparison lays each corpus source out as a Claude `projects/` tree, ingests it
with the Ingester, catches the usage projection up, and checks `eventstore usage daily
--json --timezone UTC` against `ccusage daily --json --offline --timezone UTC`: every day
to the token, cost within 1e-6 relative. The rest pins what ccusage cannot check for us:
incremental application equals a rebuild in any batch split, bucketing into weeks and
months and time zones (with :30 and :45 offsets), date filters, unpriced models and the
JSON shape of every report.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import apsw
import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import NewEvent, Store
from eventstore.cli import main
from eventstore.ingest import Ingester
from projections import usage_report
from projections.pricing import load_pricing
from projections.runner import Runner
from projections.sessions import SessionsProjection
from projections.usage import UsageProjection
from projections.usage import _ms as usage_ms
from projections.usage_decode import record_entries, timestamp_ms
from projections.usage_entries import dedupe, entries_from_record, entry_cost, parse_timestamp
from schemas.envelope import RecordedEvent

try:
    from tests import ccusage_oracle as oracle
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    import ccusage_oracle as oracle  # type: ignore[no-redef]

TOKENS = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens", "totalTokens")
COST_REL_TOLERANCE = 1e-6
SESSION_A = "11111111-1111-4111-8111-111111111111"
SESSION_B = "22222222-2222-4222-8222-222222222222"
PRICING = load_pricing()


# --- building transcripts -------------------------------------------------------------


def assistant(*, mid: str | None = "msg_1", req: str | None = "req_1", ts: str = "2026-01-02T10:00:00.000Z",
              session: str = SESSION_A, sidechain: bool = False, model: str | None = "claude-sonnet-4-20250514",
              tokens: tuple[int, int, int, int] = (10, 5, 0, 0), speed: str | None = None,
              **top: Any) -> dict[str, Any]:
    """An assistant record as Claude Code writes it (one content block)."""
    usage: dict[str, Any] = dict(zip(("input_tokens", "output_tokens", "cache_creation_input_tokens",
                                      "cache_read_input_tokens"), tokens))
    if speed is not None:
        usage["speed"] = speed
    message: dict[str, Any] = {"type": "message", "role": "assistant",
                               "content": [{"type": "text", "text": "ok"}], "stop_reason": None, "usage": usage}
    if mid is not None:
        message["id"] = mid
    if model is not None:
        message["model"] = model
    record: dict[str, Any] = {"parentUuid": None, "isSidechain": sidechain, "type": "assistant",
                              "uuid": str(uuid.uuid4()), "timestamp": ts, "sessionId": session,
                              "version": "2.1.20", "cwd": "/work/demo", "message": message}
    if req is not None:
        record["requestId"] = req
    record.update(top)
    return record


def progress(inner: dict[str, Any], *, ts: str | None = None) -> dict[str, Any]:
    """A parent-transcript progress record embedding a subagent's assistant message."""
    embedded = {"type": "assistant", "timestamp": inner.get("timestamp"), "message": inner["message"],
                "requestId": inner.get("requestId"), "uuid": str(uuid.uuid4())}
    return {"parentUuid": None, "isSidechain": False, "type": "progress",
            "data": {"type": "agent_progress", "agentId": "a1", "prompt": "", "message": embedded},
            "toolUseID": "toolu_1", "parentToolUseID": "toolu_1", "sessionId": inner.get("sessionId"),
            "timestamp": ts or inner.get("timestamp"), "uuid": str(uuid.uuid4()), "version": "2.1.20"}


def line(record: dict[str, Any]) -> bytes:
    return msgspec.json.encode(record)


def write_tree(root: Path, files: dict[str, list[dict[str, Any]]]) -> Path:
    projects = root / "projects"
    for name, records in files.items():
        path = projects / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as handle:
            handle.write(b"".join(line(r) + b"\n" for r in records))
    return projects


def ingest(db: Path, *roots: Path, projections: list | None = None) -> None:
    with Store(db) as store:
        runner = Runner(store, projections if projections is not None else [UsageProjection()])
        runner.catch_up()
        Ingester(store).ingest(list(roots))
        runner.catch_up()


def cli(db: Path, *args: str, ok: bool = True):
    result = CliRunner().invoke(main, ["--db", str(db), *args])
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def usage_json(db: Path, kind: str, *args: str) -> dict[str, Any]:
    return json.loads(cli(db, "usage", kind, "--json", *args).stdout)


# --- ccusage through the whole pipeline ---------------------------------------------


@pytest.fixture(scope="module")
def ccusage() -> None:
    reason = oracle.ccusage_available()
    if reason is not None:
        pytest.skip(f"ccusage oracle unavailable: {reason}")


@pytest.fixture(scope="module")
def corpus_dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    reason = oracle.corpus_available()
    if reason is not None:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("usage-corpus")
    out = {}
    for tree in oracle.lay_out_corpus_trees(oracle.CORPUS_DIR, root / "trees"):
        db = root / "dbs" / f"{tree.parent.name}.db"
        ingest(db, tree)
        out[tree.parent.name] = (tree, db)
    return out


def compare_daily(ours: dict[str, Any], theirs: dict[str, Any]) -> float:
    """Assert per-day token equality of two usage documents; return the largest relative cost difference."""
    return oracle.assert_days_match({row["period"]: row for row in ours["daily"]},
                                    {row["period"]: row for row in theirs["daily"]})


@pytest.mark.parametrize("repo", oracle.corpus_repos())
def test_corpus_daily_report_matches_ccusage(repo: str, corpus_dbs, ccusage: None) -> None:
    tree, db = corpus_dbs[repo]
    worst = compare_daily(usage_json(db, "daily", "--timezone", "UTC"), oracle.run_ccusage(tree))
    assert worst <= COST_REL_TOLERANCE


MAIN = f"proj/{SESSION_A}.jsonl"
SUB = f"proj/{SESSION_A}/subagents/agent-a1.jsonl"
DAY3 = "2026-01-03T10:00:00.000Z"

CASES: dict[str, dict[str, list[dict[str, Any]]]] = {
    "streamed copies keep the largest": {MAIN: [assistant(), assistant(tokens=(10, 50, 0, 0))]},
    "main copy beats larger sidechain copy": {
        MAIN: [assistant(sidechain=True, tokens=(10, 500, 0, 0)), assistant()]},
    "sidechain replay matches on id alone": {
        MAIN: [assistant(req="A"), assistant(req="B", sidechain=True, tokens=(10, 500, 0, 0))]},
    "two main copies with new requestId both count": {
        MAIN: [assistant(req="A"), assistant(req="B", tokens=(10, 500, 0, 0))]},
    "tie: higher cost wins": {
        MAIN: [assistant(ts=DAY3, model="claude-haiku-4-5"), assistant(model="claude-opus-4-20250514")]},
    "progress copy deduped with the subagent line": {
        MAIN: [progress(assistant(ts=DAY3))], SUB: [assistant(sidechain=True)]},
    "fast mode and unpriced models": {
        MAIN: [assistant(mid="m1", model="claude-opus-4-6", speed="fast", tokens=(1000, 10, 0, 0)),
               assistant(mid="m2", model="claude-unknown-9"), assistant(mid="m3", model=None)]},
    "untyped and odd records": {
        MAIN: [assistant(mid="m1", type=None), assistant(mid="m2", cwd=None), assistant(mid="m3", version="abc")]},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_synthetic_case_matches_ccusage(case: str, tmp_path: Path, ccusage: None) -> None:
    tree = write_tree(tmp_path, CASES[case])
    ingest(tmp_path / "events.db", tree)
    for kind in ("daily",):
        worst = compare_daily(usage_json(tmp_path / "events.db", kind, "--timezone", "UTC"),
                              oracle.run_ccusage(tree, kind))
        assert worst <= COST_REL_TOLERANCE


def test_weekly_monthly_and_session_match_ccusage(corpus_dbs, ccusage: None) -> None:
    tree, db = corpus_dbs["handgemacht-ai__claude-code-log"]
    for kind, key in (("weekly", "weekly"), ("monthly", "monthly")):
        ours = usage_json(db, kind, "--timezone", "UTC")
        theirs = oracle.run_ccusage(tree, kind)
        assert [(r["period"], [r[k] for k in TOKENS]) for r in ours[kind]] == \
            [(r["period"], [r[k] for k in TOKENS]) for r in theirs[key] if r["totalTokens"]]
        assert {k: ours["totals"][k] for k in TOKENS} == {k: theirs["totals"][k] for k in TOKENS}


# --- incremental application equals a rebuild ----------------------------------------


class MemoryTx:
    """The Writer a projection sees, over an in-memory SQLite database."""

    def __init__(self) -> None:
        self.conn = apsw.Connection(":memory:")

    def execute(self, sql: str, params=()) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows) -> None:
        self.conn.executemany(sql, rows)


def recorded(position: int, record: dict[str, Any]) -> RecordedEvent:
    kind = record.get("type")
    return RecordedEvent(
        position=position, event_id=uuid.uuid4().hex, stream=f"claude:session:{record.get('sessionId')}",
        version=position, type=f"claude.{kind}" if kind in ("assistant", "progress") else "claude.other",
        schema_version=1, entity="transcript_record", entity_id=str(position), op="create", client_id="c",
        actor="claude-code", occurred_at=None, recorded_at=0, causation_id=None, correlation_id=None,
        data=line(record))


def tables(tx: MemoryTx) -> dict[str, list[tuple]]:
    return {name: tx.execute(f"SELECT * FROM {name} ORDER BY 1, 2") for name in UsageProjection.tables}


MODELS = ("claude-sonnet-4-20250514", "claude-opus-4-6", "claude-haiku-4-5", "claude-unknown-9", None)


@st.composite
def usage_records(draw) -> list[dict[str, Any]]:
    records = []
    for _ in range(draw(st.integers(1, 30))):
        record = assistant(
            mid=draw(st.sampled_from(["m1", "m2", "m3", None])),
            req=draw(st.sampled_from(["r1", "r2", None])),
            ts=(datetime(2026, 3, 7, 23, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 3000)))
                ).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            session=draw(st.sampled_from([SESSION_A, SESSION_B])),
            sidechain=draw(st.booleans()),
            model=draw(st.sampled_from(MODELS)),
            tokens=(draw(st.integers(0, 300_000)), draw(st.sampled_from([1, 5, 50, 500])), draw(st.integers(0, 3)),
                    draw(st.integers(0, 3))),
            speed=draw(st.sampled_from([None, "standard", "fast"])),
        )
        records.append(progress(record) if draw(st.integers(0, 4)) == 0 else record)
    return records


def reference(records: list[dict[str, Any]]) -> tuple[dict, dict]:
    """Buckets and sessions straight from the pure rules (`usage_entries.dedupe`)."""
    entries = [e for r in records for e in entries_from_record(r)]
    buckets: dict[tuple, list[int]] = defaultdict(lambda: [0] * 6)
    sessions: dict[tuple, list[int]] = defaultdict(lambda: [0] * 6)
    for entry in dedupe(entries, PRICING):
        moment = parse_timestamp(entry.timestamp)
        cost = entry_cost(PRICING, entry)
        model = (entry.model or "") + ("-fast" if entry.model and entry.speed == "fast" else "")
        values = (entry.input_tokens, entry.output_tokens, entry.cache_creation_tokens, entry.cache_read_tokens,
                  round((cost or 0.0) * usage_report.PICO), cost is None)
        for table, key in ((buckets, (int(moment.timestamp()) // 900, model)), (sessions, (entry.session_id, model))):
            for i, value in enumerate(values):
                table[key][i] += value
    return dict(buckets), dict(sessions)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=usage_records(), cuts=st.lists(st.integers(1, 29), max_size=6))
def test_any_batch_split_equals_a_rebuild_and_the_rules(records, cuts) -> None:
    events = [recorded(i + 1, r) for i, r in enumerate(records)]
    projection = UsageProjection(PRICING)
    whole = MemoryTx()
    projection.create(whole, "")
    projection.apply(whole, events, "")
    split = MemoryTx()
    projection.create(split, "")
    bounds = sorted({0, len(events), *(c for c in cuts if c < len(events))})
    for start, end in zip(bounds, bounds[1:]):
        projection.apply(split, events[start:end], "")
    assert tables(split) == tables(whole)
    buckets, sessions = reference(records)
    assert {(b, m): list(v) for b, m, *v in whole.execute(
        "SELECT bucket, model, input_tokens, output_tokens, cache_creation, cache_read, cost_pico, unpriced"
        " FROM usage_buckets")} == {k: [*v[:5], int(v[5])] for k, v in buckets.items()}
    assert {(s, m): list(v) for s, m, *v in whole.execute(
        "SELECT session, model, input_tokens, output_tokens, cache_creation, cache_read, cost_pico, unpriced"
        " FROM usage_sessions WHERE entries > 0")} == {k: [*v[:5], int(v[5])] for k, v in sessions.items()}
    # first/last activity are those of the kept copies
    for session, model, first, last in whole.execute("SELECT session, model, first_ms, last_ms FROM usage_sessions"):
        assert (first, last) == tuple(whole.execute(
            "SELECT min(ms), max(ms) FROM usage_entries JOIN usage_sessions USING (pair)"
            " WHERE session = ? AND model = ?", (session, model))[0])


@given(moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
       millis=st.sampled_from([None, 0, 7, 999]), offset=st.sampled_from(["Z", "+05:30", "-03:00", "+14:00", "-00:45"]))
def test_timestamp_ms_agrees_with_parse_timestamp(moment: datetime, millis: int | None, offset: str) -> None:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + ("" if millis is None else f".{millis:03d}") + offset
    parsed = parse_timestamp(text)
    assert parsed is not None
    assert timestamp_ms(text) == (parsed - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@pytest.mark.parametrize("text", [
    "2026-02-30T10:00:00Z", "2026-13-01T10:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T10:60:00Z",
    "2026-01-01T10:00:60Z", "2026-01-01T10:00:00+24:00", "2026-01-01T10:00:00+05:60", "0000-01-01T00:00:00Z",
    "2026-01-01T10:00:00.12Z", "2024-02-29T10:00:00.999-13:45", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"])
def test_timestamp_ms_rejects_what_parse_timestamp_rejects(text: str) -> None:
    parsed = parse_timestamp(text)
    expected = None if parsed is None else (parsed - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert timestamp_ms(text) == expected


@settings(max_examples=500)
@given(head=st.sampled_from(["2026-05-01T10:", "2024-02-29T23:", "2026-02-29T23:", "2026-05-01T24:", "0001-01-01T00:",
                             "9999-12-31T23:", "2026-05-01 10:", "\u0662\u0660\u0662\u0666-05-01T10:", "2026-5-01T10:0"]),
       tails=st.lists(st.from_regex(r"\A[0-9]{2}:[0-9]{2}\.[0-9]{3}Z\Z") | st.text("0123456789:.Z+-", max_size=12),
                      min_size=1, max_size=4))
def test_cached_timestamp_reading_agrees_with_timestamp_ms(head: str, tails: list[str]) -> None:
    """The replay's cached reading of timestamps (`usage._ms`) gives what `timestamp_ms` gives,
    whatever the cache held before."""
    for tail in tails:
        assert usage_ms(head + tail) == timestamp_ms(head + tail)


ODD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 300_000), st.floats(allow_nan=False, width=32),
                       st.sampled_from(["", "x", "standard", "fast", "priority", "2.1.20", "abc", "<synthetic>",
                                        "2026-01-02T10:00:00Z", "2026-01-02 10:00:00", "claude-opus-4-6"]),
                       st.builds(list), st.builds(dict), st.builds(lambda: {"ephemeral_5m_input_tokens": 3}))
RECORD_PATHS = [("timestamp",), ("sessionId",), ("version",), ("requestId",), ("isSidechain",), ("costUSD",),
                ("isApiErrorMessage",), ("uuid",), ("cwd",), ("message",), ("message", "id"), ("message", "model"),
                ("message", "usage"), ("message", "usage", "input_tokens"), ("message", "usage", "output_tokens"),
                ("message", "usage", "cache_creation_input_tokens"), ("message", "usage", "cache_read_input_tokens"),
                ("message", "usage", "cache_creation"), ("message", "usage", "speed"),
                ("message", "content", 0, "id")]


@settings(max_examples=300, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(RECORD_PATHS), ODD_VALUES, st.booleans()), max_size=4),
       wrap=st.booleans())
def test_fast_decoders_agree_with_the_rules_on_odd_records(changes, wrap) -> None:
    record = assistant(tokens=(10, 5, 3, 2))
    record["message"]["content"] = [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]
    for path, value, delete in changes:
        target = record
        for step in path[:-1]:
            if isinstance(target, dict) and isinstance(step, str) and step in target:
                target = target[step]
            elif isinstance(target, list) and isinstance(step, int) and step < len(target):
                target = target[step]
            else:
                target = None
                break
        if isinstance(target, dict):
            if delete:
                target.pop(path[-1], None)
            else:
                target[path[-1]] = value
    if wrap:
        record = progress(record) if isinstance(record.get("message"), dict) else record
    data = line(record)
    try:
        expected = entries_from_record(msgspec.json.decode(data))
    except TypeError:  # `speed` a list or object: usage_entries raises where ccusage rejects
        expected = []
    assert record_entries(data) == expected


def test_lean_decoder_reads_what_the_full_record_says() -> None:
    samples = [
        assistant(), assistant(mid=None), assistant(speed="fast"), assistant(cwd=None),
        assistant(isApiErrorMessage=True), assistant(costUSD=1.25), assistant(message="not an object"),
        progress(assistant()), progress(assistant(sidechain=True)), {"type": "summary", "usage": {"a": 1}},
        assistant(model="<synthetic>"), assistant(ts="2026-01-02T10:00:00Z"), assistant(version=None),
    ]
    for record in samples:
        assert record_entries(line(record)) == entries_from_record(record), record
    # ccusage reads only lines with `"usage":{` verbatim
    spaced = json.dumps(assistant()).encode()
    assert b'"usage": {' in spaced and record_entries(spaced) == []


# --- reports: shape, periods, zones, filters ------------------------------------------


ROW_KEYS = ["period", "inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens", "totalTokens",
            "totalCost", "modelsUsed", "modelBreakdowns"]
BREAKDOWN_KEYS = ["modelName", "inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens", "cost"]
TOTAL_KEYS = ["inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens", "totalTokens", "totalCost"]


def stamp(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture
def spread_db(tmp_path: Path) -> Path:
    """Responses around week, month and day boundaries, in two sessions and three models."""
    times = ["2026-01-31T18:29:00Z", "2026-01-31T18:30:00Z", "2026-02-01T00:10:00Z", "2026-02-07T23:59:59Z",
             "2026-02-08T00:00:00Z", "2026-02-28T20:00:00Z", "2026-03-01T01:00:00Z"]
    models = ["claude-sonnet-4-20250514", "claude-opus-4-6", "claude-haiku-4-5"]
    records = [assistant(mid=f"m{i}", req=f"r{i}", ts=stamp(t), model=models[i % 3],
                         session=SESSION_A if i < 4 else SESSION_B, tokens=(100 * (i + 1), i + 1, 10, 1000))
               for i, t in enumerate(times)]
    ingest(tmp_path / "events.db", write_tree(tmp_path, {MAIN: records[:4], f"proj/{SESSION_B}.jsonl": records[4:]}))
    return tmp_path / "events.db"


def expected_days(db: Path, zone: str) -> dict[str, int]:
    """Input tokens per local day, computed per response with zoneinfo."""
    days: dict[str, int] = defaultdict(int)
    with Store(db) as store:
        for event in store.read_all(types=["claude.assistant"]):
            record = msgspec.json.decode(event.data)
            moment = parse_timestamp(record["timestamp"])
            days[moment.astimezone(ZoneInfo(zone)).date().isoformat()] += record["message"]["usage"]["input_tokens"]
    return dict(days)


def test_every_report_has_the_contract_shape(spread_db: Path) -> None:
    for kind in usage_report.KINDS:
        doc = usage_json(spread_db, kind, "--timezone", "UTC")
        assert list(doc) == [kind, "totals"]
        assert doc[kind], kind
        for row in doc[kind]:
            assert [k for k in row if k in ROW_KEYS] == ROW_KEYS
            assert set(row) - set(ROW_KEYS) <= {"date", "week", "month", "sessionId", "firstActivity",
                                                "lastActivity"}
            assert row["totalTokens"] == sum(row[k] for k in TOKENS[:4])
            for breakdown in row["modelBreakdowns"]:
                assert list(breakdown) == BREAKDOWN_KEYS
            assert [b["modelName"] for b in row["modelBreakdowns"]] == sorted(
                row["modelsUsed"], key=lambda m: -next(b["cost"] for b in row["modelBreakdowns"]
                                                       if b["modelName"] == m))
            assert sum(b["inputTokens"] for b in row["modelBreakdowns"]) == row["inputTokens"]
        assert list(doc["totals"]) == TOTAL_KEYS
        for key in TOTAL_KEYS[:-1]:
            assert doc["totals"][key] == sum(row[key] for row in doc[kind])
        assert doc["totals"]["totalCost"] == pytest.approx(sum(row["totalCost"] for row in doc[kind]))


def test_weeks_start_on_sunday_and_months_are_calendar_months(spread_db: Path) -> None:
    weekly = usage_json(spread_db, "weekly", "--timezone", "UTC")["weekly"]
    assert [r["period"] for r in weekly] == ["2026-01-25", "2026-02-01", "2026-02-08", "2026-02-22", "2026-03-01"]
    assert all(datetime.fromisoformat(r["period"]).weekday() == 6 for r in weekly)
    assert [r["inputTokens"] for r in weekly] == [300, 700, 500, 600, 700]
    monthly = usage_json(spread_db, "monthly", "--timezone", "UTC")["monthly"]
    assert [(r["period"], r["inputTokens"]) for r in monthly] == [("2026-01", 300), ("2026-02", 1800),
                                                                  ("2026-03", 700)]
    assert [r["month"] for r in monthly] == [r["period"] for r in monthly]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham",
                                  "America/Los_Angeles"])
def test_days_follow_the_time_zone(spread_db: Path, zone: str) -> None:
    daily = usage_json(spread_db, "daily", "--timezone", zone)["daily"]
    assert {r["period"]: r["inputTokens"] for r in daily} == expected_days(spread_db, zone)


def test_half_hour_offset_splits_at_local_midnight(spread_db: Path) -> None:
    # 18:29Z and 18:30Z on Jan 31 are 23:59 and 00:00 in India (+05:30).
    daily = {r["period"]: r["inputTokens"] for r in usage_json(spread_db, "daily", "--timezone", "Asia/Kolkata")["daily"]}
    assert daily["2026-01-31"] == 100
    assert daily["2026-02-01"] == 200 + 300


def test_dst_change_inside_the_data(tmp_path: Path) -> None:
    # Europe/Berlin moves from +01:00 to +02:00 at 2026-03-29T01:00Z.
    times = ["2026-03-28T22:59:00Z", "2026-03-28T23:00:00Z", "2026-03-29T21:59:00Z", "2026-03-29T22:00:00Z",
             "2026-10-24T21:59:00Z", "2026-10-24T22:00:00Z", "2026-10-25T22:59:00Z", "2026-10-25T23:00:00Z"]
    records = [assistant(mid=f"m{i}", ts=stamp(t), tokens=(1 << i, 1, 0, 0)) for i, t in enumerate(times)]
    ingest(tmp_path / "events.db", write_tree(tmp_path, {MAIN: records}))
    daily = usage_json(tmp_path / "events.db", "daily", "--timezone", "Europe/Berlin")["daily"]
    assert {r["period"]: r["inputTokens"] for r in daily} == expected_days(tmp_path / "events.db", "Europe/Berlin")
    assert {r["period"]: r["inputTokens"] for r in daily} == {
        "2026-03-28": 1, "2026-03-29": 2 + 4, "2026-03-30": 8, "2026-10-24": 16, "2026-10-25": 32 + 64,
        "2026-10-26": 128}


def test_system_zone_is_the_default(spread_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Kathmandu")
    time.tzset()
    try:
        assert usage_json(spread_db, "daily") == usage_json(spread_db, "daily", "--timezone", "Asia/Kathmandu")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_since_and_until(spread_db: Path) -> None:
    daily = usage_json(spread_db, "daily", "--timezone", "UTC", "--since", "20260201", "--until", "20260228")
    assert [r["period"] for r in daily["daily"]] == ["2026-02-01", "2026-02-07", "2026-02-08", "2026-02-28"]
    assert daily["totals"]["inputTokens"] == 300 + 400 + 500 + 600
    weekly = usage_json(spread_db, "weekly", "--timezone", "UTC", "--since", "20260201", "--until", "20260207")
    assert [(r["period"], r["inputTokens"]) for r in weekly["weekly"]] == [("2026-02-01", 700)]
    sessions = usage_json(spread_db, "session", "--timezone", "UTC", "--since", "20260201", "--until", "20260207")
    assert [(r["period"], r["inputTokens"], r["firstActivity"], r["lastActivity"]) for r in sessions["session"]] == [
        (SESSION_A, 300 + 400, "2026-02-01T00:10:00.000Z", "2026-02-07T23:59:59.000Z")]
    # in India, 2026-02-01 starts at 18:30Z the day before
    sessions = usage_json(spread_db, "session", "--timezone", "Asia/Kolkata", "--until", "20260131")
    assert [(r["period"], r["inputTokens"]) for r in sessions["session"]] == [(SESSION_A, 100)]
    everything = usage_json(spread_db, "session", "--timezone", "UTC")["session"]
    assert {r["period"]: r["inputTokens"] for r in everything} == {SESSION_A: 1000, SESSION_B: 1800}
    assert [r["totalCost"] for r in everything] == sorted((r["totalCost"] for r in everything), reverse=True)
    bad = cli(spread_db, "usage", "daily", "--since", "2026-02-01", ok=False)
    assert bad.exit_code == 2 and "YYYYMMDD" in bad.stderr
    bad = cli(spread_db, "usage", "daily", "--timezone", "Mars/Olympus", ok=False)
    assert bad.exit_code == 2 and "time zone" in bad.stderr


def test_unpriced_models_are_named_and_cost_nothing(tmp_path: Path) -> None:
    records = [assistant(mid="m1", model="claude-unknown-9"), assistant(mid="m2", model="claude-unknown-9",
                                                                        speed="fast"),
               assistant(mid="m3"), assistant(mid="m4", model=None)]
    ingest(tmp_path / "events.db", write_tree(tmp_path, {MAIN: records}))
    result = cli(tmp_path / "events.db", "usage", "daily", "--json", "--timezone", "UTC")
    doc = json.loads(result.stdout)
    assert doc["totals"]["unpricedModels"] == ["claude-unknown-9", "claude-unknown-9-fast"]
    assert "claude-unknown-9" in result.stderr and "claude-unknown-9-fast" in result.stderr
    (day,) = doc["daily"]
    by_model = {b["modelName"]: b for b in day["modelBreakdowns"]}
    assert set(by_model) == {"claude-unknown-9", "claude-unknown-9-fast", "claude-sonnet-4-20250514"}
    assert by_model["claude-unknown-9"]["cost"] == 0 and by_model["claude-unknown-9"]["missingPricing"] is True
    assert "missingPricing" not in by_model["claude-sonnet-4-20250514"]
    assert day["inputTokens"] == 40  # the response without a model counts in the totals only
    assert day["totalCost"] == pytest.approx(by_model["claude-sonnet-4-20250514"]["cost"])
    # human output carries the warning too, and a priced report has none
    assert "claude-unknown-9" in cli(tmp_path / "events.db", "usage", "monthly").stderr
    priced = tmp_path / "priced"
    ingest(priced / "events.db", write_tree(priced, {MAIN: [assistant()]}))
    result = cli(priced / "events.db", "usage", "daily", "--json")
    assert result.stderr == "" and "unpricedModels" not in json.loads(result.stdout)["totals"]


def test_human_output_is_a_table(spread_db: Path) -> None:
    out = cli(spread_db, "usage", "weekly", "--timezone", "UTC").stdout
    assert "2026-02-01" in out and "Total" in out and "2,800" in out


def test_a_current_read_model_is_read_without_opening_the_store(spread_db: Path, monkeypatch) -> None:
    from eventstore.cli import usage as command

    def no_store(*args, **kwargs):
        raise AssertionError("the slow path ran")

    monkeypatch.setattr(command, "_caught_up", no_store)
    assert usage_json(spread_db, "daily")["totals"]["inputTokens"] == 2800
    conn = apsw.Connection(str(spread_db))
    assert usage_report.is_fresh(conn)
    conn.close()
    with Store(spread_db) as store:  # an event the usage projection has not seen
        store.append([NewEvent(event_id=uuid.uuid4().hex, stream="x", type="t.x", entity="x", entity_id="x",
                               op="create", data=b"{}")])
    conn = apsw.Connection(str(spread_db))
    assert not usage_report.is_fresh(conn)
    conn.close()
    with pytest.raises(AssertionError, match="slow path"):
        usage_json(spread_db, "daily")


def test_new_events_and_price_changes_reach_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "events.db"
    tree = write_tree(tmp_path, {MAIN: [assistant(mid="m1", model="claude-unknown-9", tokens=(1000, 0, 0, 0))]})
    ingest(db, tree)
    assert usage_json(db, "daily")["totals"]["totalCost"] == 0
    # appended without catching up: the report notices the log moved on
    write_tree(tmp_path, {MAIN: [assistant(mid="m2", model="claude-unknown-9", tokens=(500, 0, 0, 0))]})
    with Store(db) as store:
        Ingester(store).ingest([tree])
    assert usage_json(db, "daily")["totals"]["inputTokens"] == 1500
    # a new price changes the version: the read model is rebuilt with it
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"claude-unknown-9": {"input": 0.001, "output": 0.002}}}))
    monkeypatch.setenv("EVENTSTORE_PRICING", str(prices))
    doc = usage_json(db, "daily")
    assert doc["totals"]["totalCost"] == pytest.approx(1.5) and "unpricedModels" not in doc["totals"]


def test_a_broken_price_file_is_an_error_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "events.db"
    ingest(db, write_tree(tmp_path, {MAIN: [assistant()]}))
    prices = tmp_path / "prices.json"
    prices.write_text("{not json")
    monkeypatch.setenv("EVENTSTORE_PRICING", str(prices))
    result = cli(db, "usage", "daily", "--json", ok=False)
    assert result.exit_code == 1 and "usage cannot be priced" in result.stderr and "not valid JSON" in result.stderr
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    with Store(db) as store:  # nothing was recorded as an event the projection could not apply
        assert Runner(store, []).errors() == []
    monkeypatch.delenv("EVENTSTORE_PRICING")
    assert usage_json(db, "daily")["totals"]["inputTokens"] == 10


def test_an_empty_or_new_database_reports_nothing(tmp_path: Path) -> None:
    doc = usage_json(tmp_path / "new.db", "daily")
    assert doc == {"daily": [], "totals": {k: 0 for k in TOTAL_KEYS}}
    assert cli(tmp_path / "new.db", "usage", "session").stdout.strip() == "no usage"


def test_sessions_listing_carries_usage_totals(spread_db: Path) -> None:
    with Store(spread_db) as store:
        Runner(store, [SessionsProjection(), UsageProjection()]).catch_up()
    listed = {s["session_id"]: s for s in json.loads(cli(spread_db, "sessions", "--json").stdout)["sessions"]}
    report = {r["period"]: r for r in usage_json(spread_db, "session")["session"]}
    assert set(listed) == set(report) == {SESSION_A, SESSION_B}
    for session, row in report.items():
        for key in TOKENS:
            assert listed[session][key] == row[key], (session, key)
        assert listed[session]["totalCost"] == pytest.approx(row["totalCost"])
        assert row["totalCost"] > 0
    assert usage_report.session_totals(Store(spread_db).db.conn)[SESSION_A]["inputTokens"] == 1000
