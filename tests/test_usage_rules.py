"""Usage-entry rules and pricing, checked against ccusage 20.0.24 as an oracle.

The corpus comparison reads every `*.jsonl` of each corpus tree the way ccusage does
(files in byte order of their path, lines in order, only lines containing `"usage":{`),
builds entries with `projections.usage_entries`, dedupes them across the whole tree and
sums them per UTC day; every day must equal `ccusage claude daily --json` to the token,
and its cost to 1e-6 relative (in practice the difference is exactly 0: same prices,
same per-entry arithmetic, same order of additions).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec
import pytest

from projections.pricing import Pricing, PricingError, cost, load_pricing
from projections.usage_entries import (
    UsageEntry,
    better,
    dedupe,
    entries_from_record,
    entry_cost,
    entry_day,
    has_usage_marker,
    parse_timestamp,
)

try:
    from tests import ccusage_oracle as oracle
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    import ccusage_oracle as oracle  # type: ignore[no-redef]

COST_REL_TOLERANCE = 1e-6


TOKEN_KEYS = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")


@pytest.fixture(scope="module")
def pricing() -> Pricing:
    return load_pricing()


@pytest.fixture(scope="module")
def ccusage() -> None:
    reason = oracle.ccusage_available()
    if reason is not None:
        pytest.skip(f"ccusage oracle unavailable: {reason}")


@pytest.fixture(scope="module")
def corpus_trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    reason = oracle.corpus_available()
    if reason is not None:
        pytest.skip(reason)
    trees = oracle.lay_out_corpus_trees(oracle.CORPUS_DIR, tmp_path_factory.mktemp("corpus"))
    return {tree.parent.name: tree for tree in trees}


# --- reading a tree like ccusage ----------------------------------------------------

_json = json.JSONDecoder()


def _objects(line: bytes) -> list[Any]:
    """Every JSON value on a line; concatenated objects split, non-JSON text ignored."""
    try:
        return [msgspec.json.decode(line)]
    except msgspec.DecodeError:
        pass
    text = line.decode("utf-8", errors="replace")
    values, pos = [], 0
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            break
        try:
            value, pos = _json.raw_decode(text, pos)
        except ValueError:
            break
        values.append(value)
    return values


def tree_entries(projects: Path) -> list[UsageEntry]:
    entries: list[UsageEntry] = []
    for path in sorted(projects.rglob("*.jsonl"), key=str):
        for line in path.read_bytes().split(b"\n"):
            if not has_usage_marker(line):
                continue
            for record in _objects(line):
                if isinstance(record, dict):
                    entries.extend(entries_from_record(record))
    return entries


def daily_totals(
    entries: list[UsageEntry], pricing: Pricing, **dedupe_options: Any
) -> dict[str, dict[str, float]]:
    days: dict[str, dict[str, float]] = defaultdict(
        lambda: dict.fromkeys((*TOKEN_KEYS, "totalCost"), 0)
    )
    for entry in dedupe(entries, pricing, **dedupe_options):
        day = days[entry_day(entry).isoformat()]
        day["inputTokens"] += entry.input_tokens
        day["outputTokens"] += entry.output_tokens
        day["cacheCreationTokens"] += entry.cache_creation_tokens
        day["cacheReadTokens"] += entry.cache_read_tokens
        day["totalCost"] += entry_cost(pricing, entry) or 0.0
    for day in days.values():
        day["totalTokens"] = sum(day[k] for k in TOKEN_KEYS)
    return dict(days)


def compare_with_ccusage(projects: Path, pricing: Pricing) -> float:
    """Assert per-day token equality with ccusage; return the max relative cost difference."""
    theirs = {row["period"]: row for row in oracle.run_ccusage(projects)["daily"]}
    return oracle.assert_days_match(daily_totals(tree_entries(projects), pricing), theirs)


# --- corpus vs ccusage ----------------------------------------------------------------


@pytest.mark.parametrize("repo", oracle.corpus_repos())
def test_corpus_daily_totals_match_ccusage(
    repo: str, corpus_trees: dict[str, Path], ccusage: None, pricing: Pricing
) -> None:
    worst = compare_with_ccusage(corpus_trees[repo], pricing)
    print(f"{repo}: tokens equal on every day; cost max relative difference {worst:.3g}")
    assert worst <= COST_REL_TOLERANCE


def test_sidechain_id_match_does_not_change_corpus_totals(
    corpus_trees: dict[str, Path], pricing: Pricing
) -> None:
    # The /btw rule (a sidechain copy matching on message.id alone) exists in ccusage 20;
    # on this corpus it changes nothing, which this pins down.
    for tree in corpus_trees.values():
        entries = tree_entries(tree)
        assert daily_totals(entries, pricing) == daily_totals(
            entries, pricing, sidechain_id_match=False
        ), tree.parent.name


# --- synthetic cases vs ccusage: each one pins a rule -------------------------------


def record(
    *,
    mid: str | None = "msg_1",
    req: str | None = "req_1",
    ts: str = "2026-01-02T10:00:00.000Z",
    sidechain: bool | None = False,
    model: str | None = "claude-sonnet-4-20250514",
    tokens: tuple[int, int, int, int] = (10, 5, 0, 0),
    split: tuple[int, int] | None = None,
    speed: str | None = None,
    **top: Any,
) -> dict[str, Any]:
    usage: dict[str, Any] = dict(
        zip(
            (
                "input_tokens",
                "output_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
            ),
            tokens,
        )
    )
    if split is not None:
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": split[0],
            "ephemeral_1h_input_tokens": split[1],
        }
    if speed is not None:
        usage["speed"] = speed
    message: dict[str, Any] = {"type": "message", "role": "assistant", "usage": usage}
    if mid is not None:
        message["id"] = mid
    if model is not None:
        message["model"] = model
    rec: dict[str, Any] = {
        "type": "assistant",
        "timestamp": ts,
        "sessionId": "11111111-1111-4111-8111-111111111111",
        "version": "2.1.20",
        "message": message,
    }
    if sidechain is not None:
        rec["isSidechain"] = sidechain
    if req is not None:
        rec["requestId"] = req
    rec.update(top)
    return rec


def progress(inner: dict[str, Any], *, ts: str = "2026-01-09T00:00:00.000Z") -> dict[str, Any]:
    """A parent-transcript progress record embedding a subagent message (2.1.7..2.1.81)."""
    embedded = {
        "type": "assistant",
        "timestamp": inner["timestamp"],
        "message": inner["message"],
        "requestId": inner.get("requestId"),
        "uuid": "embedded-uuid",
    }
    return {
        "parentUuid": "p",
        "isSidechain": False,
        "type": "progress",
        "data": {"type": "agent_progress", "agentId": "a1", "prompt": "", "message": embedded},
        "toolUseID": "toolu_1",
        "parentToolUseID": "toolu_1",
        "sessionId": inner["sessionId"],
        "timestamp": ts,
        "uuid": "wrapper-uuid",
    }


MAIN = "proj/11111111-1111-4111-8111-111111111111.jsonl"
SUB = "proj/11111111-1111-4111-8111-111111111111/subagents/agent-a1.jsonl"
DAY3 = "2026-01-03T10:00:00.000Z"

SYNTHETIC_CASES: dict[str, dict[str, list[Any]]] = {
    "streamed copies keep the largest": {MAIN: [record(), record(tokens=(10, 50, 0, 0))]},
    "larger first still wins": {MAIN: [record(tokens=(10, 50, 0, 0)), record()]},
    "main copy beats larger sidechain copy": {
        MAIN: [record(sidechain=True, tokens=(10, 500, 0, 0)), record()]
    },
    "missing requestId dedupes by id": {MAIN: [record(req=None), record(req=None)]},
    "missing requestId is its own key": {MAIN: [record(req=None), record()]},
    "missing message.id never dedupes": {MAIN: [record(mid=None), record(mid=None)]},
    "sidechain replay matches on id alone": {
        MAIN: [record(req="A"), record(req="B", sidechain=True, tokens=(10, 500, 0, 0))]
    },
    "two main copies with new requestId both count": {
        MAIN: [record(req="A"), record(req="B", tokens=(10, 500, 0, 0))]
    },
    "tie: first file by path wins": {
        "proj/b.jsonl": [record(ts=DAY3)],
        "proj/a-b.jsonl": [record()],
        "proj/a/b.jsonl": [record(ts="2026-01-04T10:00:00.000Z")],
    },
    "larger total beats higher cost": {
        MAIN: [
            record(model="claude-opus-4-20250514"),
            record(model="claude-haiku-4-5", tokens=(10, 6, 0, 0)),
        ]
    },
    "tie: higher cost wins": {
        MAIN: [record(ts=DAY3, model="claude-haiku-4-5"), record(model="claude-opus-4-20250514")]
    },
    "tie: copy with speed wins": {MAIN: [record(ts=DAY3), record(speed="standard")]},
    "1h cache writes at 2x input, tiers per kind": {
        MAIN: [
            record(tokens=(250_000, 300_000, 450_000, 1_000_000), split=(210_000, 240_000)),
            record(mid="m2", tokens=(10, 5, 100, 0), split=(40, 60)),
            record(mid="m3", tokens=(10, 5, 100, 0)),
        ]
    },
    "fast mode multiplier": {
        MAIN: [record(model="claude-opus-4-6", speed="fast", tokens=(1000, 10, 0, 0))]
    },
    "unpriced model counts tokens at $0": {MAIN: [record(model="claude-unknown-9")]},
    "model absent counts tokens": {MAIN: [record(model=None)]},
    "logged costUSD wins in auto mode": {MAIN: [record(costUSD=1.5)]},
    "untyped record counts": {MAIN: [record(type=None)]},
    "strict timestamps": {
        MAIN: [
            record(mid="a", ts="2026-01-02T23:30:00Z"),
            record(mid="b", ts="2026-01-02T23:30:00.123+02:00"),
            record(mid="c", ts="2026-01-02T23:30:00.123456Z"),
            record(mid="d", ts="2026-01-02T23:30:00.1Z"),
            record(mid="e", ts="2026-01-02T23:30:00"),
            record(mid="f", ts="2026-01-02T23:30:00.123-05:00"),
        ]
    },
    "invalid lines are skipped": {
        MAIN: [
            record(mid="a", version="abc"),
            record(mid="b", req=""),
            record(mid="c", speed="priority"),
            record(mid="d", cwd=None),
            record(mid="e"),
        ]
    },
    "progress copy alone counts": {MAIN: [progress(record())]},
    "progress copy deduped with subagent line": {
        MAIN: [progress(record(ts=DAY3))],
        SUB: [record(sidechain=True)],
    },
    "progress copy wins even when smaller": {
        MAIN: [progress(record(tokens=(10, 2, 0, 0)))],
        SUB: [record(sidechain=True, tokens=(10, 50, 0, 0))],
    },
}


def write_tree(root: Path, files: dict[str, list[Any]]) -> Path:
    projects = root / "projects"
    for name, lines in files.items():
        path = projects / name
        path.parent.mkdir(parents=True, exist_ok=True)
        # Compact separators, as Claude Code writes: ccusage only reads `"usage":{` lines.
        path.write_bytes(b"".join(msgspec.json.encode(line) + b"\n" for line in lines))
    return projects


@pytest.mark.parametrize("case", sorted(SYNTHETIC_CASES))
def test_synthetic_case_matches_ccusage(
    case: str, tmp_path: Path, ccusage: None, pricing: Pricing
) -> None:
    projects = write_tree(tmp_path, SYNTHETIC_CASES[case])
    assert compare_with_ccusage(projects, pricing) <= COST_REL_TOLERANCE


TRANSCRIPT_MODELS = (
    "claude-sonnet-4-20250514",
    "claude-opus-4-20250514",
    "claude-opus-4-1-20250805",
    "claude-opus-4-5-20251101",
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5-20251001",
    "claude-opus-4-6",
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-fable-5",
)
"""Models TRANSCRIPTS.md and the corpus name."""

PRICED_NAMES = [
    *TRANSCRIPT_MODELS,
    "claude-sonnet-4",
    "claude-sonnet-5",
    "claude-opus-5",
    "claude-3-sonnet",
    "claude-3-sonnet-20240229",
    "haiku",
    # lookup variants: aliases, provider prefixes, '.' for '-', version boundaries
    "claude-sonnet-4-5",
    "claude-sonnet-4-6",
    "claude-haiku-4-5",
    "claude-opus-4",
    "claude-opus-4-1",
    "claude-opus-4-0",
    "claude-opus-4-9",
    "claude-4-sonnet",
    "claude-sonnet-4.5",
    "claude-opus-4.6",
    "anthropic/claude-sonnet-4-5",
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "claude-3-5-haiku-20241022",
    "claude-3-opus-latest",
    "claude-opus-4-5-thinking",
    "claude-2",
    "not-a-model",
]


def test_model_prices_match_ccusage(tmp_path: Path, ccusage: None, pricing: Pricing) -> None:
    shapes = [
        (1234, 5678, 900, 100_000, (300, 600), None),
        (250_000, 300_000, 450_000, 1_000_000, (210_000, 240_000), None),
        (10, 20, 500, 30, None, None),
        (300_000, 1, 0, 0, None, "fast"),
    ]
    lines, n = [], 0
    for name in PRICED_NAMES:
        for i, o, cw, cr, split, speed in shapes:
            n += 1
            day = f"2025-{1 + n // 28:02d}-{1 + n % 28:02d}T12:00:00.000Z"
            lines.append(
                record(mid=f"m{n}", req=f"r{n}", ts=day, model=name, tokens=(i, o, cw, cr),
                       split=split, speed=speed)
            )
    projects = write_tree(tmp_path, {MAIN: lines})
    assert compare_with_ccusage(projects, pricing) <= COST_REL_TOLERANCE


# --- unit tests ---------------------------------------------------------------------


def entry(**overrides: Any) -> UsageEntry:
    (built,) = entries_from_record(record(**overrides))
    return built


def test_better_prefers_main_copy_then_total_then_cost_then_speed(pricing: Pricing) -> None:
    main = entry(tokens=(1, 1, 0, 0))
    side = entry(sidechain=True, tokens=(1000, 1000, 0, 0))
    assert better(main, side, pricing) and not better(side, main, pricing)

    small, large = entry(tokens=(10, 1, 0, 0)), entry(tokens=(10, 9, 0, 0))
    assert better(large, small, pricing) and not better(small, large, pricing)
    # More tokens win even at a lower price (mid-stream model fallback keeps one id).
    opus_small = entry(model="claude-opus-4-20250514", tokens=(10, 1, 0, 0))
    haiku_large = entry(model="claude-haiku-4-5", tokens=(10, 2, 0, 0))
    assert better(haiku_large, opus_small, pricing)

    cheap = entry(model="claude-haiku-4-5")
    dear = entry(model="claude-opus-4-20250514")
    assert better(dear, cheap, pricing) and not better(cheap, dear, pricing)

    unpriced = entry(model="claude-unknown-9")
    assert better(cheap, unpriced, pricing)  # unpriced counts as $0

    with_speed, without = entry(speed="standard"), entry()
    assert better(with_speed, without, pricing) and not better(without, with_speed, pricing)

    assert not better(entry(), entry(), pricing)  # a full tie keeps the first copy


def test_synthetic_and_api_error_records_are_skipped() -> None:
    assert entries_from_record(record(model="<synthetic>", tokens=(0, 0, 0, 0))) == []
    assert entries_from_record(record(isApiErrorMessage=True)) == []
    api_error_copy = progress(record())
    api_error_copy["data"]["message"]["isApiErrorMessage"] = True
    assert entries_from_record(api_error_copy) == []
    assert len(entries_from_record(record(isApiErrorMessage=False))) == 1


def test_entry_fields() -> None:
    built = entry(tokens=(3, 4, 100, 7), split=(40, 60), speed="fast", uuid="u-1")
    assert built.dedupe_key == ("msg_1", "req_1")
    assert (built.cache_creation_tokens, built.cache_creation_5m_tokens) == (100, 40)
    assert built.cache_creation_1h_tokens == 60
    assert built.total_tokens == 3 + 4 + 100 + 7
    assert (built.speed, built.uuid, built.from_progress) == ("fast", "u-1", False)
    assert built.session_id == "11111111-1111-4111-8111-111111111111"
    flat = entry(tokens=(0, 0, 90, 0))
    assert (flat.cache_creation_5m_tokens, flat.cache_creation_1h_tokens) == (90, 0)
    assert entry(req=None).dedupe_key == ("msg_1", None)
    assert entry(mid=None).dedupe_key is None


def test_progress_copy_is_deduped_with_the_subagent_line(pricing: Pricing) -> None:
    own_line = record(sidechain=True, agentId="a1", ts="2026-01-02T10:00:00.000Z")
    (copy,) = entries_from_record(progress(own_line, ts="2026-01-02T10:00:05.000Z"))
    (own,) = entries_from_record(own_line)
    assert copy.from_progress and copy.timestamp == own.timestamp  # the embedded timestamp
    assert copy.dedupe_key == own.dedupe_key == ("msg_1", "req_1")
    # The embedded copy carries no isSidechain, so it is the "main" copy and is kept.
    assert not copy.is_sidechain
    for order in ([copy, own], [own, copy]):
        assert dedupe(order, pricing) == [copy]


def test_unknown_model_has_no_cost(pricing: Pricing) -> None:
    unknown = entry(model="claude-unknown-9")
    assert cost(pricing, "claude-unknown-9", unknown) is None
    assert entry_cost(pricing, unknown) is None
    assert cost(pricing, None, unknown) is None
    assert entry_cost(pricing, entry(model="claude-unknown-9", costUSD=0.25)) == 0.25


def test_cost_arithmetic(pricing: Pricing) -> None:
    usage = {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 1000,
        "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 60},
    }
    # sonnet 4: $3 in, $15 out, $3.75 5m write, 1h write at 2x input = $6, $0.30 read (per M)
    expected = (10 * 3 + 5 * 15 + 40 * 3.75 + 60 * 6 + 1000 * 0.3) / 1e6
    assert cost(pricing, "claude-sonnet-4-20250514", usage) == pytest.approx(expected, rel=1e-12)
    above = {"input_tokens": 300_000, "output_tokens": 0}
    assert cost(pricing, "claude-sonnet-4-20250514", above) == pytest.approx(
        (200_000 * 3 + 100_000 * 6) / 1e6, rel=1e-12
    )
    # Opus 4.6 has no long-context tier in ccusage's table, and a 6x fast multiplier.
    assert cost(pricing, "claude-opus-4-6", {**above, "speed": "fast"}) == pytest.approx(
        300_000 * 5 * 6 / 1e6, rel=1e-12
    )


def test_model_lookup_is_tolerant_but_respects_versions(pricing: Pricing) -> None:
    assert pricing.resolve("claude-opus-4-7") == "claude-opus-4-7"
    assert pricing.resolve("claude-sonnet-4.5") is not None  # '.' normalised to '-'
    assert pricing.resolve("anthropic/claude-sonnet-4-5") == "claude-sonnet-4-5"
    assert pricing.resolve("claude-opus-4-9") is None  # claude-opus-4 must not match
    assert pricing.resolve("<synthetic>") is None
    assert pricing.lookup("") is None


def test_pricing_override_and_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTSTORE_PRICING", raising=False)
    base = load_pricing()
    assert base.fingerprint == load_pricing().fingerprint and len(base.fingerprint) == 16
    override = tmp_path / "prices.json"
    override.write_text(
        json.dumps(
            {
                "models": {
                    "claude-opus-4-7": {"output": 1e-5},
                    "my-model": {"input": 1e-6, "output": 2e-6},
                }
            }
        )
    )
    merged = load_pricing(override)
    assert merged.fingerprint != base.fingerprint
    opus = merged.lookup("claude-opus-4-7")
    assert opus is not None and opus.output == 1e-5 and opus.input == 5e-6
    mine = merged.lookup("my-model")
    assert mine is not None
    assert (mine.cache_write_5m, mine.cache_write_1h, mine.cache_read) == pytest.approx(
        (1.25e-6, 2e-6, 1e-7)
    )
    monkeypatch.setenv("EVENTSTORE_PRICING", str(override))
    assert load_pricing().fingerprint == merged.fingerprint

    bad = tmp_path / "bad.json"
    bad.write_text('{"models": {"x": {"input": 1e-6, "outptu": 1}}}')
    with pytest.raises(PricingError, match="outptu"):
        load_pricing(bad)
    with pytest.raises(PricingError, match="cannot read"):
        load_pricing(tmp_path / "missing.json")


def test_every_transcripts_model_is_priced(pricing: Pricing) -> None:
    for model in TRANSCRIPT_MODELS:
        assert model in pricing.models, model


def test_timestamps_follow_ccusage() -> None:
    assert parse_timestamp("2026-01-02T23:30:00.123Z") is not None
    assert parse_timestamp("2026-01-02T23:30:00Z") is not None
    moved = parse_timestamp("2026-01-02T23:30:00.000-05:00")
    assert moved is not None and moved.isoformat() == "2026-01-03T04:30:00+00:00"
    for rejected in (
        "2026-01-02T23:30:00.123456Z",
        "2026-01-02T23:30:00.1Z",
        "2026-01-02T23:30:00",
        "2026-01-02 23:30:00Z",
        "2026-02-30T00:00:00Z",
    ):
        assert parse_timestamp(rejected) is None, rejected
    assert entries_from_record(record(ts="2026-01-02T23:30:00.123456Z")) == []


def test_usage_marker_and_null_rule() -> None:
    assert has_usage_marker(b'{"message":{"usage":{"input_tokens":1}}}')
    assert not has_usage_marker(b'{"message": {"usage": {"input_tokens": 1}}}')
    assert entries_from_record(record(cwd=None)) == []
    nested_null = record()
    nested_null["message"]["content"] = [{"type": "tool_use", "input": {"id": None}}]
    assert entries_from_record(nested_null) == []
