"""Tests for schemas.transcript: real corpus lines, tolerance properties, specific shapes."""

from __future__ import annotations

import ast
import collections
import copy
import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas.transcript as tr
from schemas.transcript import (
    AgentProgress, AssistantRecord, CompactBoundaryRecord, Header, NotARecord, ProgressRecord,
    SummaryRecord, SystemRecord, TextBlock, ToolResultBlock, ToolUseBlock, UnknownBlock,
    UnknownProgress, UnknownRecord, UserRecord, decode_header, decode_record,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS = REPO_ROOT / ".." / "shared" / "corpus"
RECORD_CLASSES = tuple(c for c in tr.Record.__args__)


def split_objects(text: str) -> list[tuple[Any, str]] | None:
    """Every JSON value on one line with its exact text (lines may hold several), or None."""
    decoder = json.JSONDecoder()
    values, pos = [], 0
    while pos < len(text):
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return None
        values.append((value, text[pos:end]))
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return values


# ---------------------------------------------------------------- the real corpus


class Corpus(msgspec.Struct):
    objects: list[tuple[Any, bytes]]  # (stdlib-decoded value, its exact JSON bytes)
    bad_lines: collections.Counter  # per file: lines that hold no JSON object
    expected_bad: dict[str, int]  # per file, from MANIFEST.tsv notes `unparseable_lines=N`


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        pytest.skip(f"transcript corpus not found at {CORPUS.resolve()} (shared/ beside the repo)")
    expected: dict[str, int] = {}
    with manifest.open(newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            m = re.search(r"unparseable_lines=(\d+)", row["notes"] or "")
            if m:
                expected[row["file"]] = int(m.group(1))
    objects, bad = [], collections.Counter()
    for path in sorted(CORPUS.rglob("*.jsonl")):
        name = path.relative_to(CORPUS).as_posix()
        for raw in path.read_bytes().splitlines():
            text = raw.decode("utf-8")
            if not text.strip():
                continue
            values = split_objects(text)
            if values is None:
                bad[name] += 1
                with pytest.raises(msgspec.DecodeError):
                    decode_record(raw)
                continue
            if not any(isinstance(v, dict) for v, _ in values):
                bad[name] += 1
            objects.extend((value, part.encode("utf-8")) for value, part in values)
    return Corpus(objects=objects, bad_lines=bad, expected_bad=expected)


def test_corpus_line_count_without_objects_matches_manifest(corpus: Corpus) -> None:
    # The manifest's `unparseable_lines` counts lines that hold no JSON object
    # (not JSON at all, or JSON such as `42`, `[1]`, `"massive error"`).
    assert corpus.expected_bad, "MANIFEST.tsv notes no unparseable_lines at all"
    assert dict(corpus.bad_lines) == corpus.expected_bad


def _expected_class(value: Any) -> type:
    if not isinstance(value, dict):
        return NotARecord
    t, sub = value.get("type"), value.get("subtype")
    if t == "system":
        return tr.SYSTEM_SUBTYPES.get(sub, SystemRecord) if isinstance(sub, str) else SystemRecord
    return tr.RECORD_TYPES.get(t, UnknownRecord) if isinstance(t, str) else UnknownRecord


def test_every_corpus_object_decodes_to_its_type(corpus: Corpus) -> None:
    assert len(corpus.objects) > 4000
    for value, data in corpus.objects:
        rec = decode_record(data)
        assert type(rec) is _expected_class(value), data[:200]
        header = decode_header(data)
        if isinstance(value, dict):
            assert header.type == value.get("type")
            assert header.session_id == value.get("sessionId")
            assert header.uuid == value.get("uuid")
            assert header.timestamp == value.get("timestamp")
            assert header.is_sidechain == value.get("isSidechain")
            if isinstance(rec, tr.BaseRecord):
                assert rec.session_id == value.get("sessionId")
                assert rec.timestamp == value.get("timestamp")
        if isinstance(rec, UnknownRecord):
            assert rec.type == value.get("type")


def test_corpus_fields_are_read_not_dropped(corpus: Corpus) -> None:
    usage_keys = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                  "cache_read_input_tokens", "speed", "service_tier")
    checked = 0
    for value, data in corpus.objects:
        if not isinstance(value, dict) or value.get("type") not in ("user", "assistant"):
            continue
        rec = decode_record(data)
        msg = value.get("message")
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        if isinstance(content, str):
            assert rec.message.content == content
        elif isinstance(content, list):
            assert len(rec.message.content) == sum(isinstance(b, dict) for b in content)
        if isinstance(rec, AssistantRecord):
            assert rec.request_id == value.get("requestId")
            assert rec.message.model == msg.get("model")
            usage = msg.get("usage")
            if isinstance(usage, dict):
                checked += 1
                for key in usage_keys:
                    assert getattr(rec.message.usage, key) == usage.get(key), key
                cc = usage.get("cache_creation")
                if isinstance(cc, dict):
                    got = rec.message.usage.cache_creation
                    assert got.ephemeral_5m_input_tokens == cc["ephemeral_5m_input_tokens"]
                    assert got.ephemeral_1h_input_tokens == cc["ephemeral_1h_input_tokens"]
        else:
            assert rec.tool_use_result == value.get("toolUseResult")
    assert checked > 2000


def test_corpus_type_counts_are_plausible(corpus: Corpus) -> None:
    raw = collections.Counter()
    got = collections.Counter()
    for value, data in corpus.objects:
        rec = decode_record(data)
        if isinstance(value, dict):
            raw[(value.get("type"), value.get("subtype"))] += 1
        key = (getattr(rec, "type", None), getattr(rec, "subtype", None))
        got[key] += 1
    for t in ("user", "assistant", "summary", "system", "progress", "attachment",
              "queue-operation", "file-history-snapshot"):
        n = sum(c for (rt, _), c in raw.items() if rt == t)
        assert n >= 1, t
        assert sum(c for (gt, _), c in got.items() if gt == t) == n, t
    assert got[("system", "compact_boundary")] == raw[("system", "compact_boundary")] >= 1
    assert got[("user", None)] > 1000 and got[("assistant", None)] > 2000


# ---------------------------------------------------------------- properties

KNOWN_TYPES = sorted({
    *tr.RECORD_TYPES, "text", "thinking", "redacted_thinking", "tool_use", "tool_result",
    "image", "tool_reference", "hook_progress", "bash_progress", "agent_progress",
    "mcp_progress", "query_update", "search_results_received", "waiting_for_task", "message",
})
KNOWN_KEYS = sorted({
    f.encode_name
    for obj in vars(tr).values()
    if isinstance(obj, type) and issubclass(obj, msgspec.Struct)
    for f in msgspec.structs.fields(obj)
} | {"type", "subtype"})

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
           | st.floats() | texts)
type_values = st.sampled_from(KNOWN_TYPES) | texts | scalars
keys = st.sampled_from(KNOWN_KEYS) | texts


def _containers(children: st.SearchStrategy) -> st.SearchStrategy:
    plain = st.dictionaries(keys, children, max_size=6)
    typed = st.builds(lambda d, t, s: {**d, "type": t, **({} if s is None else {"subtype": s})},
                      plain, type_values,
                      st.none() | st.sampled_from(sorted(tr.SYSTEM_SUBTYPES)) | scalars)
    return st.lists(children, max_size=4) | plain | typed


json_values = st.recursive(scalars, _containers, max_leaves=25)

TEMPLATES: list[dict[str, Any]] = [
    {"type": "assistant", "uuid": "u1", "parentUuid": None, "sessionId": "s", "isSidechain": False,
     "timestamp": "2025-01-01T00:00:00.000Z", "requestId": "req_1",
     "message": {"id": "msg_1", "model": "claude-opus-4-6", "role": "assistant", "type": "message",
                 "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash",
                              "input": {"command": "ls"}}],
                 "stop_reason": None, "stop_sequence": None,
                 "usage": {"input_tokens": 3, "output_tokens": 5,
                           "cache_creation_input_tokens": 7, "cache_read_input_tokens": 11,
                           "cache_creation": {"ephemeral_5m_input_tokens": 7,
                                              "ephemeral_1h_input_tokens": 0},
                           "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                           "service_tier": "standard", "inference_geo": "", "speed": "standard",
                           "iterations": [{"input_tokens": 3, "output_tokens": 5,
                                           "type": "message"}]}}},
    {"type": "user", "uuid": "u2", "parentUuid": "u1", "sessionId": "s",
     "toolUseResult": {"stdout": "x", "stderr": "", "interrupted": False},
     "todos": [{"content": "a", "status": "pending", "activeForm": "A"}],
     "message": {"role": "user", "content": [
         {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": False,
          "content": [{"type": "text", "text": "ok"},
                      {"type": "tool_reference", "tool_name": "X"}]},
         {"type": "image",
          "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}]}},
    {"type": "progress", "uuid": "u3", "toolUseID": "t", "parentToolUseID": "p",
     "data": {"type": "agent_progress", "agentId": "a1", "prompt": "go",
              "message": {"type": "assistant", "requestId": "req_2", "uuid": "u4",
                          "message": {"id": "msg_2", "usage": {"output_tokens": 9}}}}},
    {"type": "system", "subtype": "compact_boundary", "content": "Conversation compacted",
     "parentUuid": None, "logicalParentUuid": "u1",
     "compactMetadata": {"trigger": "auto", "preTokens": 155000}},
    {"type": "system", "subtype": "stop_hook_summary", "hookCount": 1,
     "hookInfos": [{"command": "x", "durationMs": 3}], "hookErrors": [], "stopReason": ""},
    {"type": "file-history-snapshot", "messageId": "m", "isSnapshotUpdate": False,
     "snapshot": {"messageId": "m", "timestamp": "t", "trackedFileBackups": {
         "a.py": {"backupFileName": None, "version": 1, "backupTime": "t"}}}},
    {"type": "attachment", "uuid": "u5",
     "attachment": {"type": "hook_success", "hookName": "SessionStart", "exitCode": 0,
                    "content": ["x"], "durationMs": 5}},
    {"type": "queue-operation", "operation": "enqueue", "content": [{"type": "text", "text": "q"}]},
]


@st.composite
def mutated_templates(draw: st.DrawFn) -> dict[str, Any]:
    """A realistic record with a few values anywhere in it replaced by arbitrary JSON."""
    record = copy.deepcopy(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(1, 4))):
        node = record
        while True:
            children = [v for v in (node.values() if isinstance(node, dict) else node)
                        if isinstance(v, (dict, list)) and v]
            if not children or draw(st.booleans()):
                break
            node = draw(st.sampled_from(children))
        value = draw(json_values)
        if isinstance(node, dict):
            node[draw(st.sampled_from(sorted(node)) | keys)] = value
        else:
            node[draw(st.integers(0, len(node) - 1))] = value
    return record


def _check_never_raises(value: Any) -> None:
    data = msgspec.json.encode(value)
    rec = decode_record(data)
    assert isinstance(rec, RECORD_CLASSES)
    assert type(rec) is _expected_class(value)
    assert isinstance(decode_header(data), Header)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value_decodes(value: Any) -> None:
    _check_never_raises(value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_templates())
def test_records_with_wrong_typed_fields_decode(value: dict[str, Any]) -> None:
    _check_never_raises(value)


# ---------------------------------------------------------------- specific shapes


def _dec(obj: Any) -> Any:
    return decode_record(msgspec.json.encode(obj))


def test_assistant_usage_with_null_subfields() -> None:
    usage = {"input_tokens": 10, "output_tokens": 20, "cache_creation_input_tokens": 30,
             "cache_read_input_tokens": 40, "service_tier": None, "inference_geo": None,
             "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
             "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": None},
             "iterations": None, "speed": "fast"}
    rec = _dec({"type": "assistant", "requestId": "req_1",
                "message": {"id": "msg_1", "model": "claude-sonnet-4-5-20250929", "usage": usage,
                            "content": [{"type": "text", "text": "hi"}], "stop_reason": None}})
    assert isinstance(rec, AssistantRecord)
    u = rec.message.usage
    assert (u.input_tokens, u.output_tokens) == (10, 20)
    assert (u.cache_creation_input_tokens, u.cache_read_input_tokens) == (30, 40)
    assert u.cache_creation.ephemeral_5m_input_tokens == 10
    assert u.cache_creation.ephemeral_1h_input_tokens == 20
    assert u.server_tool_use.web_search_requests == 1
    assert u.server_tool_use.web_fetch_requests is None
    assert u.service_tier is None and u.inference_geo is None and u.iterations is None
    assert u.speed == "fast"
    assert rec.message.content == [TextBlock(text="hi")]

    rec = _dec({"type": "assistant", "message": {"usage": {"cache_creation": None,
                                                           "server_tool_use": None}}})
    assert rec.message.usage.cache_creation is None and rec.message.usage.output_tokens is None

    rec = _dec({"type": "assistant", "message": {"content": [
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"},
         "caller": {"type": "direct"}}]}})
    assert rec.message.content == [ToolUseBlock(id="toolu_1", name="Bash",
                                                input={"command": "ls"})]


def test_synthetic_error_message() -> None:
    rec = _dec({
        "type": "assistant", "isApiErrorMessage": True, "error": "authentication_failed",
        "uuid": "5a1", "sessionId": "s",
        "message": {"id": "4b8c0d2e-3f9a-4c1b-8e7d-6a5b4c3d2e1f", "model": "<synthetic>",
                    "role": "assistant", "type": "message", "stop_reason": "stop_sequence",
                    "stop_sequence": "", "content": [
                        {"type": "text", "text": "Login expired · Please run /login"}],
                    "usage": {"input_tokens": 0, "output_tokens": 0,
                              "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                              "server_tool_use": {"web_search_requests": 0,
                                                  "web_fetch_requests": 0},
                              "service_tier": None, "cache_creation": {
                                  "ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
                              "inference_geo": None, "iterations": None, "speed": None}}})
    assert isinstance(rec, AssistantRecord)
    assert rec.is_api_error_message is True and rec.error == "authentication_failed"
    assert rec.message.model == "<synthetic>" and rec.message.usage.output_tokens == 0
    assert rec.message.usage.speed is None and rec.request_id is None


def test_user_content_string_or_blocks() -> None:
    rec = _dec({"type": "user", "message": {"role": "user", "content": "hello"}, "isMeta": True})
    assert isinstance(rec, UserRecord) and rec.message.content == "hello" and rec.is_meta
    rec = _dec({"type": "user", "sourceToolAssistantUUID": "a1", "toolUseResult": "Error: x",
                "message": {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "out",
                     "is_error": True},
                    {"type": "tool_result", "tool_use_id": "toolu_2",
                     "content": [{"type": "text", "text": "a"}, {"type": "mystery"}]}]}})
    first, second = rec.message.content
    assert first == ToolResultBlock(tool_use_id="toolu_1", content="out", is_error=True)
    assert second.content == [TextBlock(text="a"), UnknownBlock(type="mystery")]
    assert rec.source_tool_assistant_uuid == "a1" and rec.tool_use_result == "Error: x"
    for tur in ([{"type": "text", "text": "mcp"}], {"stdout": ""}, None):
        assert _dec({"type": "user", "toolUseResult": tur}).tool_use_result == tur


def test_agent_progress_embedded_usage_is_reachable() -> None:
    rec = _dec({
        "type": "progress", "uuid": "p1", "toolUseID": "agent_msg_1", "parentToolUseID": "toolu_9",
        "data": {"type": "agent_progress", "agentId": "a22b0b3", "prompt": "look",
                 "normalizedMessages": [],
                 "message": {"type": "assistant", "uuid": "x1", "timestamp": "t",
                             "requestId": "req_011CX",
                             "message": {"id": "msg_01", "model": "claude-haiku-4-5-20251001",
                                         "content": [{"type": "text", "text": "done"}],
                                         "usage": {"input_tokens": 4, "output_tokens": 2,
                                                   "cache_read_input_tokens": 100}}}}})
    assert isinstance(rec, ProgressRecord) and isinstance(rec.data, AgentProgress)
    assert rec.tool_use_id == "agent_msg_1" and rec.parent_tool_use_id == "toolu_9"
    copy_ = rec.data.message
    assert isinstance(copy_, AssistantRecord) and copy_.request_id == "req_011CX"
    assert copy_.message.id == "msg_01" and copy_.message.usage.cache_read_input_tokens == 100

    user_copy = _dec({"type": "progress", "data": {"type": "agent_progress", "message": {
        "type": "user", "message": {"role": "user", "content": "task"}}}}).data.message
    assert isinstance(user_copy, UserRecord) and user_copy.message.content == "task"


def test_unknown_things_are_opaque() -> None:
    rec = _dec({"type": "worktree-state", "sessionId": "s", "worktreeSession": {"a": 1}})
    assert rec == UnknownRecord(type="worktree-state", session_id="s")
    assert _dec({"type": 3, "uuid": "u"}) == UnknownRecord(uuid="u")
    assert _dec({"silly": "this"}) == UnknownRecord()
    for value in (3, [], "x", None, 1.5, True, [1, {"type": "user"}]):
        assert _dec(value) == NotARecord(value=value)
    rec = _dec({"type": "assistant", "message": {"content": [
        {"type": "fallback", "from": {"model": "a"}}, "stray", {"type": "thinking",
                                                              "thinking": "", "signature": "s"}]}})
    assert rec.message.content == [UnknownBlock(type="fallback"),
                                   tr.ThinkingBlock(thinking="", signature="s")]
    assert _dec({"type": "progress", "data": {"type": "new_kind"}}).data == UnknownProgress(
        type="new_kind")
    rec = _dec({"type": "system", "subtype": "api_refusal", "content": "no", "level": "error"})
    assert type(rec) is SystemRecord and rec.subtype == "api_refusal" and rec.content == "no"
    old_untyped = _dec({"type": "system", "content": "Running hook", "toolUseID": "t"})
    assert type(old_untyped) is SystemRecord and old_untyped.tool_use_id == "t"


def test_wrong_typed_field_is_dropped_and_the_rest_kept() -> None:
    rec = _dec({"type": "assistant", "uuid": "u", "isSidechain": "yes", "requestId": 7,
                "message": {"id": "m", "usage": {"input_tokens": "12", "output_tokens": 4}}})
    assert isinstance(rec, AssistantRecord)
    assert rec.uuid == "u" and rec.is_sidechain is None and rec.request_id is None
    assert rec.message.id == "m"
    assert rec.message.usage.input_tokens is None and rec.message.usage.output_tokens == 4
    rec = _dec({"type": "user", "message": "error", "uuid": "u"})
    assert isinstance(rec, UserRecord) and rec.message is None and rec.uuid == "u"


SYSTEM_EXAMPLES = {
    "compact_boundary": ({"compactMetadata": {"trigger": "manual", "preTokens": 5,
                                              "postTokens": 2, "durationMs": 9},
                          "logicalParentUuid": "lp"},
                         lambda r: (r.compact_metadata.post_tokens,
                                    r.logical_parent_uuid) == (2, "lp")),
    "microcompact_boundary": ({"microcompactMetadata": {"trigger": "auto", "preTokens": 1,
                                                        "tokensSaved": 2, "compactedToolIds": ["t"],
                                                        "clearedAttachmentUUIDs": []}},
                              lambda r: r.microcompact_metadata.compacted_tool_ids == ["t"]),
    "stop_hook_summary": ({"hookCount": 2, "hookInfos": [{"command": "c", "durationMs": 1.5}],
                           "preventedContinuation": False, "hasOutput": True},
                          lambda r: r.hook_infos[0].duration_ms == 1.5 and r.has_output),
    "turn_duration": ({"durationMs": 1234, "messageCount": 3},
                      lambda r: (r.duration_ms, r.message_count) == (1234, 3)),
    "local_command": ({"content": "<command-name>/mcp</command-name>"},
                      lambda r: r.content.startswith("<command-name>")),
    "api_error": ({"error": {"status": 529}, "retryInMs": 512.7, "retryAttempt": 1,
                   "maxRetries": 10},
                  lambda r: r.retry_in_ms == 512.7 and r.error["status"] == 529),
    "bridge_status": ({"url": "https://x"}, lambda r: r.url == "https://x"),
    "away_summary": ({"content": "recap"}, lambda r: r.content == "recap"),
}


@pytest.mark.parametrize("subtype", sorted(tr.SYSTEM_SUBTYPES))
def test_system_subtypes(subtype: str) -> None:
    extra, check = SYSTEM_EXAMPLES[subtype]
    rec = _dec({"type": "system", "subtype": subtype, "uuid": "u", "level": "info", **extra})
    assert type(rec) is tr.SYSTEM_SUBTYPES[subtype] and isinstance(rec, SystemRecord)
    assert rec.type == "system" and rec.subtype == subtype and rec.uuid == "u" and check(rec)


METADATA_EXAMPLES = [
    ({"type": "summary", "summary": "Title", "leafUuid": "l"}, "leaf_uuid", "l"),
    ({"type": "custom-title", "customTitle": "T", "sessionId": "s"}, "custom_title", "T"),
    ({"type": "agent-name", "agentName": "n"}, "agent_name", "n"),
    ({"type": "ai-title", "aiTitle": "A"}, "ai_title", "A"),
    ({"type": "last-prompt", "lastPrompt": "p"}, "last_prompt", "p"),
    ({"type": "mode", "mode": "normal"}, "mode", "normal"),
    ({"type": "permission-mode", "permissionMode": "plan"}, "permission_mode", "plan"),
    ({"type": "bridge-session", "bridgeSessionId": "b", "lastSequenceNum": 4},
     "last_sequence_num", 4),
    ({"type": "pr-link", "prNumber": 12, "prUrl": "u", "prRepository": "o/r", "timestamp": "t"},
     "pr_number", 12),
    ({"type": "queue-operation", "operation": "enqueue", "content": "typed ahead"},
     "content", "typed ahead"),
    ({"type": "file-history-delta", "messageId": "m", "snapshotMessageId": "s0",
      "trackingPath": "a.py", "backup": {"backupFileName": "x@v2", "version": 2}},
     "tracking_path", "a.py"),
    ({"type": "file-history-snapshot", "messageId": "m", "isSnapshotUpdate": True,
      "snapshot": {"messageId": "m", "trackedFileBackups": {}}}, "is_snapshot_update", True),
    ({"type": "attachment", "attachment": {"type": "date_change", "newDate": "d"}},
     "attachment", tr.Attachment(type="date_change")),
]


@pytest.mark.parametrize("obj,attr,expected", METADATA_EXAMPLES, ids=lambda x: str(x)[:30])
def test_small_records(obj: dict[str, Any], attr: str, expected: Any) -> None:
    rec = _dec(obj)
    assert type(rec) is tr.RECORD_TYPES[obj["type"]] and rec.type == obj["type"]
    assert getattr(rec, attr) == expected


def test_snake_case_attributes_map_to_camel_case_keys() -> None:
    rec = UserRecord(session_id="s", parent_uuid="p", is_sidechain=True, agent_id="a",
                     git_branch="main", is_meta=False, is_compact_summary=True,
                     tool_use_result={"k": 1}, message=tr.UserMessage(role="user", content="x"))
    encoded = msgspec.json.decode(msgspec.json.encode(rec))
    assert encoded["type"] == "user"
    for key in ("sessionId", "parentUuid", "isSidechain", "agentId", "gitBranch", "isMeta",
                "isCompactSummary", "toolUseResult"):
        assert key in encoded
    assert decode_record(msgspec.json.encode(rec)) == rec
    s = SummaryRecord(summary="t", leaf_uuid="l")
    assert msgspec.json.decode(msgspec.json.encode(s)) == {
        "type": "summary", "sessionId": None, "timestamp": None, "summary": "t", "leafUuid": "l"}
    assert CompactBoundaryRecord().subtype == "compact_boundary"
    with pytest.raises(AttributeError):
        rec.uuid = "changed"  # type: ignore[misc]


STRUCTS = [c for c in vars(tr).values() if isinstance(c, type) and issubclass(c, msgspec.Struct)]


@pytest.mark.parametrize("cls", STRUCTS, ids=lambda c: c.__name__)
def test_every_type_is_frozen_keyword_only_and_tolerant(cls: type) -> None:
    assert cls.__struct_config__.frozen and not cls.__struct_config__.forbid_unknown_fields
    with pytest.raises(TypeError):
        cls("positional")
    assert all(not f.required for f in msgspec.structs.fields(cls))


def test_concatenated_line_is_split_by_the_caller() -> None:
    line = ('{"type":"user","uuid":"u","message":{"role":"user","content":"hi"}}'
            '{"type":"summary","summary":"S","leafUuid":"u"}')
    with pytest.raises(msgspec.DecodeError):
        decode_record(line.encode())
    recs = [decode_record(part.encode()) for _, part in split_objects(line)]
    assert [type(r) for r in recs] == [UserRecord, SummaryRecord]


def test_hard_json_edges() -> None:
    # A lone surrogate escape (an emoji cut in half) is valid JSON; msgspec refuses it.
    rec = decode_record(b'{"type":"user","uuid":"u","message":{"content":"cut \\ud83d"}}')
    assert rec.message.content == "cut \ufffd" and rec.uuid == "u"
    assert decode_header(b'{"type":"user","uuid":"u","x":"\\udc00"}').uuid == "u"
    deep = b'{"type":"user","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert isinstance(decode_record(deep), UnknownRecord)
    assert decode_header(deep) == Header()
    for bad in (b'{"type":"user"', b"", b"{'a': 1}", b'{"a":NaN}'):
        with pytest.raises(msgspec.DecodeError):
            decode_record(bad)
        with pytest.raises(msgspec.DecodeError):
            decode_header(bad)
    # Bytes that are not UTF-8 in JSON otherwise sound (damaged on disk) read as U+FFFD; the
    # header decode, which ingestion uses to quarantine a line, still refuses them.
    damaged = b'{"type":"user","uuid":"u","message":{"content":"a\xffb"}}'
    assert decode_record(damaged).message.content == "a\ufffdb" and decode_record(damaged).uuid == "u"
    assert decode_record(b'"\xff"') == NotARecord(value="\ufffd")
    with pytest.raises(msgspec.DecodeError):
        decode_header(b'"\xff"')


def test_decode_header() -> None:
    line = (b'{"parentUuid":null,"isSidechain":true,"type":"system","subtype":"turn_duration",'
            b'"message":{"content":[1,2,3]},"sessionId":"s","uuid":"u",'
            b'"timestamp":"2026-01-01T00:00:00.000Z"}')
    assert decode_header(line) == Header(type="system", subtype="turn_duration", session_id="s",
                                         uuid="u", timestamp="2026-01-01T00:00:00.000Z",
                                         is_sidechain=True)
    assert decode_header(b'{"type":"user","uuid":5,"sessionId":"s"}') == Header(
        type="user", session_id="s")
    for value in (b"3", b"[]", b"null", b'"x"', b"{}"):
        assert decode_header(value) == Header()


def test_module_imports_only_msgspec_and_stdlib() -> None:
    tree = ast.parse(Path(tr.__file__).read_text())
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module}
    assert roots - {"msgspec"} <= set(sys.stdlib_module_names) | {"__future__"}
