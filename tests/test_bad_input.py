"""Bad input: arbitrary bytes and arbitrary JSON lines in transcript files never crash ingestion,
every line lands in the log or in quarantine, and `check` (deep) stays clean."""

from __future__ import annotations

import json
import os

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from eventstore import Store
from eventstore.check import check
from eventstore.ingest import Ingester
from projections.runner import Runner
from test_ingest import assert_every_line_kept

EXAMPLES = int(os.environ.get("EVENTSTORE_FUZZ_EXAMPLES", "30"))
"""Examples per run (400 pass too; raise it to search longer)."""

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False), st.text(max_size=30))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                           max_leaves=12)
RECORD_TYPES = ["user", "assistant", "summary", "system", "progress", "file-history-snapshot", "ai-title",
                "custom-title", "queue-operation", "result", ""]
# Objects shaped like transcript records, with anything at all in their fields: these reach the
# projections' parsers, not only the envelope decoder.
records = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.sampled_from(RECORD_TYPES), json_values),
    "sessionId": st.one_of(st.sampled_from(["s1", "s2", ""]), json_values),
    "uuid": st.one_of(st.uuids().map(str), json_values),
    "parentUuid": st.one_of(st.none(), st.uuids().map(str), json_values),
    "timestamp": st.one_of(st.sampled_from(["2026-06-01T10:00:00.000Z", "2026-13-45T99:00:00Z", "yesterday"]),
                           json_values),
    "cwd": st.one_of(st.just("/home/u/p"), json_values),
    "isSidechain": json_values,
    "requestId": json_values,
    "summary": json_values,
    "message": st.one_of(json_values, st.fixed_dictionaries({}, optional={
        "role": st.one_of(st.sampled_from(["user", "assistant"]), json_values),
        "id": json_values,
        "model": st.one_of(st.sampled_from(["claude-sonnet-4-20250514", "<synthetic>"]), json_values),
        "content": st.one_of(json_values, st.lists(st.fixed_dictionaries({}, optional={
            "type": st.one_of(st.sampled_from(["text", "tool_use", "tool_result", "thinking", "image"]), json_values),
            "text": json_values, "name": json_values, "input": json_values, "id": json_values,
            "tool_use_id": json_values, "content": json_values,
        }), max_size=3)),
        "usage": st.one_of(json_values, st.fixed_dictionaries({}, optional={
            "input_tokens": json_values, "output_tokens": json_values,
            "cache_creation_input_tokens": json_values, "cache_read_input_tokens": json_values,
        })),
    })),
    "toolUseResult": json_values,
})


def as_line(value) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


lines = st.one_of(
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")),  # anything at all (no newline: one line)
    json_values.map(as_line),
    records.map(as_line),
    st.lists(records.map(as_line), min_size=2, max_size=3).map(b"".join),  # objects back to back on one line
    records.map(as_line).map(lambda b: b.replace(b"a", b"\xe9", 1)),  # a byte damaged: JSON, but not UTF-8
)
files = st.lists(st.lists(lines, max_size=8).map(lambda ls: b"".join(line + b"\n" for line in ls))
                 .flatmap(lambda body: st.sampled_from([body, body + b'{"torn": tr'])),  # maybe a torn last line
                 min_size=1, max_size=3)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(contents=files)
def test_any_bytes_are_ingested_or_quarantined_and_check_stays_clean(tmp_path_factory, contents):
    base = tmp_path_factory.mktemp("bad")
    project = base / "projects" / "-p"
    project.mkdir(parents=True)
    paths = []
    for i, content in enumerate(contents):
        path = project / f"session-{i}.jsonl"
        path.write_bytes(content)
        paths.append(path)
    with Store(base / "events.db") as store:
        report = Ingester(store).ingest([base / "projects"])
        runner = Runner.for_store(store)
        runner.catch_up()
        assert_every_line_kept(store, paths)
        assert report.lines == sum(c.count(b"\n") for c in contents)
        result = check(store, deep=True)
        assert result.ok, [p.message for p in result.problems]
        again = Ingester(store).ingest([base / "projects"])
        assert again.events_appended == 0 and again.quarantined == 0


def test_a_line_damaged_inside_its_text_is_kept_and_read_around_the_damage(tmp_path):
    """Bytes that are not UTF-8 inside a string (a disk error, a bad copy) leave the line JSON but
    for them: it is kept in the log as it is, and the projections read it with U+FFFD there. The
    sessions projection recorded an error for it, so `check` failed for good, and search missed it."""
    from conftest import run_cli

    prompt = (b'{"type":"user","sessionId":"s1","uuid":"u1","timestamp":"2026-06-01T10:00:00.000Z",'
              b'"message":{"role":"user","content":"find the zebra \xff\xfe in the log"}}')
    todo = (b'{"type":"assistant","sessionId":"s1","uuid":"u2","parentUuid":"u1","timestamp":"2026-06-01T10:00:01.000Z",'
            b'"message":{"id":"m1","role":"assistant","model":"claude-sonnet-4-20250514","content":[{"type":"tool_use",'
            b'"id":"t1","name":"TodoWrite","input":{"todos":[{"content":"feed the \xe9 zebra","status":"pending"}]}}]}}')
    transcript = tmp_path / "s1.jsonl"
    transcript.write_bytes(prompt + b"\n" + todo + b"\n")
    db = tmp_path / "e.db"
    report = json.loads(run_cli("ingest", str(transcript), "--json", db=db).stdout)
    assert report["events_appended"] == 2 and report["quarantined"] == 0
    assert json.loads(run_cli("check", "--json", db=db).stdout)["ok"]
    sessions = json.loads(run_cli("sessions", "--json", db=db).stdout)["sessions"]
    assert [(s["session_id"], s["messages"]) for s in sessions] == [("s1", 2)]
    found = json.loads(run_cli("search", "zebra", "--json", db=db).stdout)["results"]
    assert {r["event_position"] for r in found} >= {1}
    tasks = json.loads(run_cli("tasks", "--json", db=db).stdout)["tasks"]
    assert [t["title"] for t in tasks] == ["feed the \ufffd zebra"]
    with Store(db) as store:
        assert [e.data for e in store.read_all()] == [prompt, todo]
