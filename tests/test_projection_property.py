"""Property: sessions and tasks built incrementally, in any batch split, equal a full rebuild.

Random transcript-like lines (prompts, tool results, streamed assistant responses with repeated
message ids, sidechains and agents, summaries pointing at known and unknown uuids, titles,
TodoWrite snapshots, TaskCreate/TaskUpdate with their results) and a person's task events are
appended in random chunks, with catch-ups at random points and the inline hook live; the query
results must then be exactly those of a rebuild from position 0.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import NewEvent, Store
from eventstore.ingest.lines import line_pieces
from projections.runner import Runner
from projections.sessions import SessionsProjection, list_sessions
from projections.tasks import TasksProjection, list_tasks
from schemas import tasks as task_events

SESSIONS = ("s-one", "s-two", "s-three")
UUIDS = tuple(f"u{i}" for i in range(12))
MESSAGE_IDS = tuple(f"msg_{i}" for i in range(6))
CONTENTS = ("write tests", "fix bug", "ship it", "review")
STATUSES = ("pending", "in_progress", "completed")
USER_TASKS = ("ut-a", "ut-b", "ut-c")


def _ts(minute: int) -> str:
    return f"2026-05-01T{10 + minute // 60:02d}:{minute % 60:02d}:00.000Z"


@st.composite
def transcript_line(draw, minute: int) -> bytes:
    session = draw(st.sampled_from(SESSIONS))
    kind = draw(st.sampled_from(("user", "assistant", "tool_result", "summary", "title", "system",
                                 "todo", "task_create", "task_update")))
    side = draw(st.booleans()) if kind in ("user", "assistant") else False
    base = {
        "sessionId": session, "timestamp": _ts(minute), "uuid": draw(st.sampled_from(UUIDS)),
        "parentUuid": draw(st.one_of(st.none(), st.sampled_from(UUIDS))), "isSidechain": side,
        "cwd": draw(st.sampled_from(("/w/alpha", "/w/beta/wt"))), "gitBranch": draw(st.sampled_from(("", "main", "dev"))),
    }
    if side and draw(st.booleans()):
        base["agentId"] = draw(st.sampled_from(("a1", "a2")))
    if kind == "user":
        record = {**base, "type": "user", "isMeta": draw(st.booleans()),
                  "message": {"role": "user", "content": draw(st.sampled_from(("hi", "do it")))}}
    elif kind == "assistant":
        record = {**base, "type": "assistant", "message": {
            "id": draw(st.sampled_from(MESSAGE_IDS)), "model": draw(st.sampled_from(("m-a", "m-b", "<synthetic>"))),
            "content": [{"type": "text", "text": "ok"}]}}
    elif kind == "tool_result":
        tool_use_id = draw(st.sampled_from(("tc1", "tc2", "tu1", "tu2", "other")))
        record = {**base, "type": "user", "message": {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_use_id, "is_error": draw(st.booleans()),
             "content": f"Task #{draw(st.sampled_from(('1', '2')))} created successfully: x"}]}}
        if draw(st.booleans()):
            record["toolUseResult"] = {"task": {"id": draw(st.sampled_from(("1", "2"))), "subject": "from result"}}
    elif kind == "summary":
        record = {"type": "summary", "summary": f"summary {minute}",
                  "leafUuid": draw(st.sampled_from((*UUIDS, "unknown-uuid")))}
    elif kind == "title":
        which = draw(st.sampled_from(("ai-title", "custom-title")))
        record = {"type": which, "sessionId": session,
                  ("aiTitle" if which == "ai-title" else "customTitle"): f"{which} {minute}"}
    elif kind == "system":
        record = {**base, "type": "system", "subtype": "turn_duration"}
    elif kind == "todo":
        todos = draw(st.lists(st.fixed_dictionaries({
            "content": st.sampled_from(CONTENTS), "status": st.sampled_from(STATUSES),
            "priority": st.sampled_from(("high", "low", None))}), max_size=4))
        record = {**base, "type": "assistant", "message": {"id": f"todo_{minute}", "model": "m-a", "content": [
            {"type": "tool_use", "id": f"tw{minute}", "name": "TodoWrite", "input": {"todos": todos}}]}}
    else:
        tool = "TaskCreate" if kind == "task_create" else "TaskUpdate"
        tool_input = ({"subject": f"subject {minute}"} if tool == "TaskCreate" else
                      {"taskId": draw(st.sampled_from(("1", "2"))), "status": draw(st.sampled_from(STATUSES))})
        record = {**base, "type": "assistant", "message": {"id": f"task_{minute}", "model": "m-a", "content": [
            {"type": "tool_use", "id": draw(st.sampled_from(("tc1", "tc2") if tool == "TaskCreate" else ("tu1", "tu2"))),
             "name": tool, "input": tool_input}]}}
    # A minute's worth of uniqueness: identical lines dedupe in the log, like ingestion.
    record["n"] = minute
    return json.dumps(record).encode()


@st.composite
def person_event(draw, minute: int) -> NewEvent:
    task_id = draw(st.sampled_from(USER_TASKS))
    at = 1_777_629_600_000 + minute * 60_000
    if draw(st.booleans()):
        payload = task_events.TaskCreated(task_id=task_id, title=f"mine {minute}",
                                          priority=draw(st.sampled_from(("high", "medium", None))))
        type_, op = task_events.TASK_CREATED, "create"
    else:
        payload = task_events.TaskUpdated(task_id=task_id, status=draw(st.sampled_from((None, *STATUSES))),
                                          priority=draw(st.sampled_from((None, "low", "none"))))
        type_, op = task_events.TASK_UPDATED, "update"
    return NewEvent(event_id=uuid.uuid4().hex, stream=task_events.task_stream(task_id), type=type_,
                    entity=task_events.ENTITY, entity_id=task_id, op=op, data=task_events.encode(payload),
                    actor="user", occurred_at=at)


@st.composite
def histories(draw):
    n = draw(st.integers(min_value=1, max_value=40))
    events = []
    for minute in range(n):
        if draw(st.integers(0, 5)) == 0:
            events.append(draw(person_event(minute)))
        else:
            line = draw(transcript_line(minute))
            (piece,) = list(line_pieces(0, line, "fallback"))
            events.append(piece.event)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=6)))
    catch_ups = draw(st.lists(st.booleans(), min_size=len(cuts) + 1, max_size=len(cuts) + 1))
    batch_size = draw(st.integers(min_value=1, max_value=8))
    return events, cuts, catch_ups, batch_size


def snapshot(store: Store, runner: Runner) -> dict:
    with store.db.read() as conn:
        state = {
            "sessions": list_sessions(conn),
            "tasks": list_tasks(conn),
            "as_of": [list_tasks(conn, as_of=1_777_629_600_000 + m * 60_000) for m in (3, 11, 25)],
            "open": list_tasks(conn, statuses=["completed"], negate=True),
        }
    state["errors"] = sorted((e.name, e.position) for e in runner.errors())
    return msgspec.to_builtins(state)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_incremental_in_any_split_equals_rebuild(history):
    events, cuts, catch_ups, batch_size = history
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "events.db") as store:
        runner = Runner(store, [SessionsProjection(), TasksProjection()], batch_size=batch_size)
        runner.catch_up()  # built (empty) first, so the inline hook applies tasks as they are appended
        for chunk, catch_up in zip(_split(events, cuts), catch_ups):
            store.append(chunk)
            if catch_up:
                runner.catch_up()
        runner.catch_up()
        incremental = snapshot(store, runner)
        runner.batch_size = 10_000
        runner.rebuild()
        assert snapshot(store, runner) == incremental


def _split(events: list, cuts: list[int]) -> list[list]:
    bounds = [0, *cuts, len(events)]
    return [events[a:b] for a, b in zip(bounds, bounds[1:]) if a < b]
