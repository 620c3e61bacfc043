"""Tests for benchmarks/gen_transcripts.py, the synthetic Claude Code projects tree generator."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gen_transcripts.py"

_spec = importlib.util.spec_from_file_location("gen_transcripts", SCRIPT)
gen = importlib.util.module_from_spec(_spec)
sys.modules["gen_transcripts"] = gen
_spec.loader.exec_module(gen)

_decoder = json.JSONDecoder()


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under root, by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def decode_line(line: str) -> list[dict]:
    """All JSON objects on one line (real lines can hold a record followed by a summary)."""
    objs, i = [], 0
    while i < len(line):
        obj, i = _decoder.raw_decode(line, i)
        objs.append(obj)
    return objs


def read_records(path: Path) -> list[dict]:
    """Records of every complete (newline-terminated) line of a JSONL file."""
    text = path.read_text(encoding="utf-8")
    complete = text.split("\n")[:-1]  # the part after the last newline is a torn line
    return [obj for line in complete for obj in decode_line(line)]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, dict]:
    """One 3 MB tree shared by the structural tests."""
    root = tmp_path_factory.mktemp("gen") / "projects"
    stats = gen.generate(root, 3_000_000, seed=0)
    return root, stats


@pytest.fixture(scope="module")
def records(tree) -> dict[Path, list[dict]]:
    """Decoded records of every JSONL file of the shared tree."""
    root, _ = tree
    return {p: read_records(p) for p in sorted(root.rglob("*.jsonl"))}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    a = gen.generate(tmp_path / "a", 800_000, seed=5)
    b = gen.generate(tmp_path / "b", 800_000, seed=5, workers=2)
    gen.generate(tmp_path / "c", 800_000, seed=6)
    assert a == b
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    assert tree_bytes(tmp_path / "a") != tree_bytes(tmp_path / "c")


def test_size_is_within_ten_percent_of_target(tree):
    root, stats = tree
    written = sum(len(data) for name, data in tree_bytes(root).items() if name.endswith(".jsonl"))
    assert written == stats["bytes"]
    assert 0.9 * 3_000_000 <= written <= 1.1 * 3_000_000
    assert 500 <= stats["avg_line_bytes"] <= 5_000


def test_every_complete_line_is_json_or_a_concatenation_of_json_objects(tree):
    root, stats = tree
    lines = concatenated = torn = 0
    for path in root.rglob("*.jsonl"):
        text = path.read_text(encoding="utf-8")
        parts = text.split("\n")
        if parts[-1]:
            torn += 1
        for line in parts[:-1]:
            objs = decode_line(line)
            assert objs and all(isinstance(o, dict) and "type" in o for o in objs), line[:200]
            lines += 1
            concatenated += len(objs) > 1
    assert torn == stats["torn_files"] >= 1
    assert concatenated == stats["concatenated_lines"] >= 1
    assert lines + torn == stats["lines"]  # checkpoint copies included


def test_project_dirs_follow_the_cwd_encoding(tree, records):
    root, _ = tree
    assert gen.encode_cwd("/Users/me/.agents") == "-Users-me--agents"
    assert gen.encode_cwd("C:\\Users\\x") == "C--Users-x"
    long = gen.encode_cwd("/x" * 150)
    assert len(long) > 200 and long[:200] == "-x" * 100 and re.fullmatch(r"-[0-9a-z]+", long[200:])
    for path, recs in records.items():
        cwds = {r["cwd"] for r in recs if "cwd" in r and not r.get("isSidechain")}
        for cwd in cwds:
            if path.name.startswith("agent-") or "subagents" in path.parts:
                continue
            # a checkpoint copy sits in another project's directory
            assert gen.encode_cwd(cwd) in {path.parent.name, *(d.name for d in root.iterdir())}


def test_sessions_have_uuid_names_and_their_own_session_id(records):
    uuid_name = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.jsonl")
    sessions = [p for p in records if uuid_name.fullmatch(p.name)]
    assert len(sessions) >= 10
    assert any(p.stat().st_size == 0 for p in sessions)
    assert any(recs and all(r["type"] == "summary" for r in recs) for recs in records.values())
    for p in sessions:
        sids = {r["sessionId"] for r in records[p] if "sessionId" in r}
        assert sids <= {p.stem}


def test_both_subagent_layouts_carry_parent_session_and_sidechain(tree, records):
    root, stats = tree
    old = [p for p in records if re.fullmatch(r"agent-[0-9a-f]{8}\.jsonl", p.name) and p.parent.parent == root]
    new = [p for p in records if p.parent.name == "subagents" and p.name.startswith("agent-")]
    assert old and new
    assert len(old) == stats["subagent_files_old"] and len(new) == stats["subagent_files_new"]
    session_ids = {p.stem for p in records if p.parent.parent == root and not p.name.startswith("agent-")}
    for p in old + new:
        recs = records[p]
        assert recs[0]["parentUuid"] is None
        assert all(r["isSidechain"] is True for r in recs)
        assert {r["sessionId"] for r in recs} <= session_ids
    for p in new:
        assert {r["sessionId"] for r in records[p]} == {p.parent.parent.name}
    metas = list(root.rglob("agent-*.meta.json"))
    assert metas and all({"agentType", "description"} <= json.loads(m.read_text()).keys() for m in metas)


def assistant_lines(records) -> list[dict]:
    """Every non-synthetic assistant record in the tree, in file order."""
    return [r for recs in records.values() for r in recs
            if r["type"] == "assistant" and r["message"]["model"] != "<synthetic>"]


def test_streamed_groups_share_ids_and_some_carry_partial_output_tokens(records):
    groups = defaultdict(list)  # per file: checkpoint copies repeat whole groups in another file
    for path, recs in records.items():
        for r in recs:
            if r["type"] == "assistant" and r["message"]["model"] != "<synthetic>" and not r["isSidechain"]:
                groups[(path, r["message"]["id"], r["requestId"])].append(r)
    multi = [g for g in groups.values() if len(g) > 1]
    assert multi
    partial = 0
    for g in multi:
        assert all(len(r["message"]["content"]) == 1 for r in g)
        assert len({r["uuid"] for r in g}) == len(g)
        for prev, cur in zip(g, g[1:]):
            assert cur["parentUuid"] == prev["uuid"]
        outs = [r["message"]["usage"]["output_tokens"] for r in g]
        assert outs[-1] == max(outs)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            assert len({r["message"]["usage"][key] for r in g}) == 1
        partial += outs[0] < outs[-1]
    assert partial >= 5


def test_usage_cache_creation_split_sums_and_synthetic_messages_are_zero(records):
    seen_1h = False
    for r in assistant_lines(records):
        u = r["message"]["usage"]
        if "cache_creation" in u:
            cc = u["cache_creation"]
            assert cc["ephemeral_5m_input_tokens"] + cc["ephemeral_1h_input_tokens"] == u["cache_creation_input_tokens"]
            seen_1h |= cc["ephemeral_1h_input_tokens"] > 0
    assert seen_1h
    synthetic = [r for recs in records.values() for r in recs
                 if r["type"] == "assistant" and r["message"]["model"] == "<synthetic>"]
    assert synthetic and all(r["isApiErrorMessage"] for r in synthetic)
    assert all(r["message"]["usage"]["output_tokens"] == 0 for r in synthetic)


def test_agent_progress_embeds_copies_of_subagent_assistant_messages(records):
    subagent_keys = {(r["message"]["id"], r["requestId"]) for p, recs in records.items()
                     if p.parent.name == "subagents" for r in recs if r["type"] == "assistant"}
    copies = [r["data"]["message"] for recs in records.values() for r in recs
              if r["type"] == "progress" and r["data"]["type"] == "agent_progress"
              and r["data"]["message"]["type"] == "assistant"]
    assert copies
    assert all("usage" in c["message"] and c["requestId"].startswith("req_") for c in copies)
    assert any((c["message"]["id"], c["requestId"]) in subagent_keys for c in copies)


def test_record_type_coverage(records):
    seen = defaultdict(set)
    for recs in records.values():
        for r in recs:
            seen[r["type"]].add(r.get("subtype") or (r.get("data") or {}).get("type") or "")
    for t in ("user", "assistant", "system", "progress", "attachment", "summary", "file-history-snapshot",
              "queue-operation", "permission-mode", "last-prompt"):
        assert t in seen, t
    assert {"turn_duration", "stop_hook_summary", "compact_boundary", "local_command", "api_error"} <= seen["system"]
    assert {"hook_progress", "agent_progress"} <= seen["progress"]
    tools = {b["name"] for r in assistant_lines(records) for b in r["message"]["content"] if b["type"] == "tool_use"}
    assert {"TodoWrite", "TaskCreate", "TaskUpdate", "Bash", "Read", "Edit"} <= tools
    models = {r["message"]["model"] for r in assistant_lines(records)}
    assert gen.FUTURE_MODEL in models and len(models) >= 4
    versions = {r["version"] for recs in records.values() for r in recs if "version" in r}
    assert any(v.startswith("1.0.") for v in versions) and any(v.startswith("2.1.") for v in versions)
    assert any(r.get("isCompactSummary") for recs in records.values() for r in recs)


def test_checkpoint_copy_repeats_lines_of_a_session_in_another_project(tree):
    root, stats = tree
    by_name = defaultdict(list)
    for p in root.glob("*/*.jsonl"):
        by_name[p.name].append(p)
    copies = [ps for ps in by_name.values() if len(ps) > 1]
    assert len(copies) == stats["checkpoint_copies"] >= 1
    a, b = (p.read_text(encoding="utf-8").split("\n")[:-1] for p in copies[0])
    short, long_ = sorted((a, b), key=len)
    assert short == long_[:len(short)]


def test_garbage_rate_adds_non_json_lines_only_when_asked(tmp_path):
    stats = gen.generate(tmp_path / "g", 400_000, seed=1, garbage_rate=0.02)
    assert stats["garbage_lines"] > 0
    bad = 0
    for p in (tmp_path / "g").rglob("*.jsonl"):
        for line in p.read_text(encoding="utf-8").split("\n")[:-1]:
            try:
                decode_line(line)
            except ValueError:
                bad += 1
    assert bad >= stats["garbage_lines"]


def test_cli_prints_stats_json(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "cli"), "--mb", "0.3", "--seed", "2"],
                         capture_output=True, text=True, check=True, timeout=60)
    stats = json.loads(out.stdout)
    assert stats["bytes"] > 0 and stats["files"] >= 1 and "elapsed_s" in stats
