"""The tasks projection and the `tasks`, `tasks add`, `tasks set` commands."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import CORPUS, run_cli
from eventstore import NewEvent, Store
from eventstore.cli import main
from eventstore.ingest import Ingester
from eventstore.ingest.lines import line_pieces
from projections.runner import Runner
from projections.tasks import TasksProjection, derived_id, list_tasks, parse_status_filter
from schemas import tasks as task_events

TASK_FIELDS = {"task_id", "title", "status", "priority", "session_id", "source", "created_at", "updated_at", "version"}
T0 = 1_777_629_600_000  # 2026-05-01T10:00:00Z


def transcript(*records: dict) -> list[NewEvent]:
    """Events exactly as ingestion makes them from these records, one line each."""
    events = []
    for record in records:
        (piece,) = line_pieces(0, json.dumps(record).encode(), "fallback")
        events.append(piece.event)
    return events


def todo_write(minute: int, todos: list[dict], *, session: str = "s1", agent: str | None = None) -> dict:
    record = {"type": "assistant", "sessionId": session, "uuid": f"tw-{session}-{minute}-{agent}",
              "timestamp": _ts(minute), "message": {"id": f"m{minute}{agent}", "model": "m", "content": [
                  {"type": "tool_use", "id": f"toolu_{minute}{agent}", "name": "TodoWrite", "input": {"todos": todos}}]}}
    if agent:
        record.update(isSidechain=True, agentId=agent)
    return record


def _ts(minute: int) -> str:
    return f"2026-05-01T10:{minute:02d}:00.000Z"


def person(task_id: str, minute: int, *, create: bool = False, **fields) -> NewEvent:
    payload = (task_events.TaskCreated(task_id=task_id, **fields) if create
               else task_events.TaskUpdated(task_id=task_id, **fields))
    return NewEvent(event_id=uuid.uuid4().hex, stream=task_events.task_stream(task_id),
                    type=task_events.TASK_CREATED if create else task_events.TASK_UPDATED, entity=task_events.ENTITY,
                    entity_id=task_id, op="create" if create else "update", data=task_events.encode(payload),
                    actor="user", occurred_at=T0 + minute * 60_000)


@pytest.fixture
def tasks_store(store):
    runner = Runner(store, [TasksProjection()])
    runner.catch_up()
    return store


def rows(store: Store, **kw) -> list:
    with store.db.read() as conn:
        return list_tasks(conn, **kw)


def test_todowrite_snapshots_are_diffed(tasks_store):
    tasks_store.append(transcript(
        todo_write(1, [{"content": "A", "status": "pending", "priority": "high"}, {"content": "B", "status": "pending"}]),
        todo_write(2, [{"content": "A", "status": "completed", "priority": "high"}, {"content": "C", "status": "pending"}]),
        todo_write(3, [{"content": "Z", "status": "in_progress"}], agent="agent1"),  # its own list
    ))
    by_title = {r.title: r for r in rows(tasks_store)}
    assert {t: (r.status, r.source) for t, r in by_title.items()} == {
        "A": ("completed", "todowrite"), "B": ("deleted", "todowrite"), "C": ("pending", "todowrite"),
        "Z": ("in_progress", "todowrite"),
    }
    assert by_title["A"].task_id == derived_id("todowrite", "s1", "", "A", "0")
    assert by_title["A"].updated_at == "2026-05-01T10:02:00.000Z" and by_title["A"].created_at.endswith("10:01:00.000Z")
    assert all(r.session_id == "s1" for r in by_title.values())
    assert {t: r.version for t, r in by_title.items()} == {"A": 2, "B": 2, "C": 1, "Z": 1}  # changes, creation first


def test_a_persons_change_stays_until_the_list_itself_changes_that_field(tasks_store):
    """Claude Code's lists restate every item's status and priority each time: only what a list
    changes is taken, so a priority or status a person set is not undone by a list that merely
    repeats its own."""
    a = derived_id("todowrite", "s1", "", "A", "0")
    tasks_store.append(transcript(todo_write(1, [{"content": "A", "status": "pending", "priority": "high"}])))
    tasks_store.append([person(a, 2, priority="low")])
    tasks_store.append(transcript(todo_write(3, [{"content": "A", "status": "in_progress", "priority": "high"}])))
    (task,) = rows(tasks_store)
    assert (task.status, task.priority, task.version) == ("in_progress", "low", 3)
    tasks_store.append([person(a, 4, status="pending")])
    tasks_store.append(transcript(todo_write(5, [{"content": "A", "status": "in_progress", "priority": "medium"}])))
    (task,) = rows(tasks_store)
    assert (task.status, task.priority, task.version) == ("pending", "medium", 5)
    tasks_store.append(transcript(todo_write(6, [{"content": "B", "status": "pending"}]),  # A dropped: deleted
                                  todo_write(7, [{"content": "A", "status": "in_progress", "priority": "medium"}])))
    (task, _) = sorted(rows(tasks_store), key=lambda r: r.title)
    assert (task.status, task.priority, task.version) == ("in_progress", "medium", 7)  # back: as the list says


def test_task_tools_follow_their_results(tasks_store):
    base = {"sessionId": "s9", "timestamp": _ts(5)}
    tasks_store.append(transcript(
        {**base, "type": "assistant", "uuid": "a1", "message": {"id": "x1", "content": [
            {"type": "tool_use", "id": "tc1", "name": "TaskCreate", "input": {"subject": "Draft"}}]}},
        {**base, "type": "user", "uuid": "u1", "message": {"content": [
            {"type": "tool_result", "tool_use_id": "tc1", "content": "Task #1 created successfully: Draft"}]}},
        {**base, "type": "assistant", "uuid": "a2", "message": {"id": "x2", "content": [
            {"type": "tool_use", "id": "tu1", "name": "TaskUpdate", "input": {"taskId": "1", "status": "completed"}}]}},
        {**base, "type": "user", "uuid": "u2", "message": {"content": [
            {"type": "tool_result", "tool_use_id": "tu1", "content": "no such task", "is_error": True}]}},
    ))
    (task,) = rows(tasks_store)
    assert (task.task_id, task.title, task.status, task.source) == (derived_id("taskcreate", "s9", "1"), "Draft",
                                                                    "pending", "taskcreate")


def test_task_tools_on_real_transcripts(store):
    if not CORPUS.is_dir():
        pytest.skip(f"the shared transcript corpus is not at {CORPUS}")
    runner = Runner(store, [TasksProjection()])
    data = CORPUS / "handgemacht-ai__claude-code-log/test/test_data"
    Ingester(store).ingest([data / "real_projects/-experiments-worktrees", data / "task_id_linking.jsonl"])
    runner.catch_up()
    tasks = rows(store, statuses=["completed"])
    real = sorted(t.title for t in tasks if t.session_id == "ef958aa1-0e93-49f0-bb71-150f63befcd1")
    assert len(real) == 6 and "Research Beads (carol)" in real  # all six created and completed
    linked = [t for t in tasks if t.session_id == "s154"]
    assert [(t.title, t.status) for t in linked] == [("Draft fixture", "completed")]


def test_status_filter_negation_and_priority_order(tasks_store):
    tasks_store.append([
        person("t-low", 1, create=True, title="low", priority="low"),
        person("t-none", 2, create=True, title="none"),
        person("t-high-old", 3, create=True, title="high old", priority="high"),
        person("t-med", 4, create=True, title="med", priority="medium"),
        person("t-high-new", 5, create=True, title="high new", priority="high"),
        person("t-done", 6, create=True, title="done", priority="high"),
    ])
    tasks_store.append([person("t-done", 7, status="completed"), person("t-med", 8, status="in_progress")])
    assert [r.task_id for r in rows(tasks_store)] == ["t-done", "t-high-new", "t-high-old", "t-med", "t-low", "t-none"]
    statuses, negate = parse_status_filter("!completed")
    assert [r.task_id for r in rows(tasks_store, statuses=statuses, negate=negate)] == [
        "t-high-new", "t-high-old", "t-med", "t-low", "t-none"]
    statuses, negate = parse_status_filter("pending, in_progress")
    assert not negate and {r.task_id for r in rows(tasks_store, statuses=statuses)} == {
        "t-high-new", "t-high-old", "t-med", "t-low", "t-none"}
    assert [r.task_id for r in rows(tasks_store, statuses=["in_progress"])] == ["t-med"]
    assert parse_status_filter(None) is None and parse_status_filter("!a,b") == (["a", "b"], True)
    assert parse_status_filter("!completed,!deleted") == (["completed", "deleted"], True)  # the '!' again: the same
    with pytest.raises(ValueError, match="names no status"):
        parse_status_filter("!")
    with pytest.raises(ValueError, match="negates the whole list and goes first"):
        parse_status_filter("pending,!completed")  # was taken as a status named '!completed'


def test_as_of_shows_the_list_as_it_stood(tasks_store):
    tasks_store.append([person("t1", 1, create=True, title="one"), person("t2", 5, create=True, title="two")])
    tasks_store.append([person("t1", 3, status="in_progress"), person("t1", 9, status="completed", priority="high")])
    minute = lambda m: T0 + m * 60_000  # noqa: E731
    assert rows(tasks_store, as_of=minute(0)) == []
    (t1,) = rows(tasks_store, as_of=minute(2))
    assert (t1.status, t1.version, t1.updated_at) == ("pending", 1, "2026-05-01T10:01:00.000Z")
    at_6 = {r.task_id: (r.status, r.version) for r in rows(tasks_store, as_of=minute(6))}
    assert at_6 == {"t1": ("in_progress", 2), "t2": ("pending", 1)}
    now = rows(tasks_store)
    assert [(r.task_id, r.status, r.priority, r.version) for r in now] == [
        ("t1", "completed", "high", 3), ("t2", "pending", None, 1)]
    assert [r.task_id for r in rows(tasks_store, as_of=minute(6), statuses=["pending"])] == ["t2"]


def test_an_update_of_a_missing_task_is_an_isolated_error(store):
    runner = Runner(store, [TasksProjection()])
    store.append([person("ghost", 1, status="completed"), person("real", 2, create=True, title="real")])
    runner.catch_up()
    assert [r.task_id for r in rows(store)] == ["real"]
    (error,) = runner.errors("tasks")
    assert error.position == 1 and "ghost" in error.reason


# The commands


def cli(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *args])


def test_tasks_add_set_and_list_json(tmp_path):
    db = tmp_path / "events.db"
    added = cli(db, "tasks", "add", "Write docs", "--priority", "high", "--session", "s1", "--json")
    assert added.exit_code == 0, added.output
    task = json.loads(added.stdout)
    assert set(task) == TASK_FIELDS
    assert (task["title"], task["status"], task["priority"], task["session_id"], task["source"], task["version"]) == (
        "Write docs", "pending", "high", "s1", "user", 1)
    time.sleep(0.005)
    changed = cli(db, "tasks", "set", task["task_id"], "--status", "in_progress", "--priority", "none",
                  "--expect-version", "1", "--json")
    assert changed.exit_code == 0, changed.output
    updated = json.loads(changed.stdout)
    assert set(updated) == TASK_FIELDS
    assert (updated["status"], updated["priority"], updated["version"]) == ("in_progress", None, 2)
    assert updated["updated_at"] > task["updated_at"] and updated["created_at"] == task["created_at"]
    listed = json.loads(cli(db, "tasks", "--json").stdout)
    assert listed == {"tasks": [updated]}
    assert json.loads(cli(db, "tasks", "--status", "!in_progress", "--json").stdout) == {"tasks": []}
    assert json.loads(cli(db, "tasks", "--session", "other", "--json").stdout) == {"tasks": []}
    then = json.loads(cli(db, "tasks", "--as-of", task["created_at"], "--json").stdout)["tasks"]
    assert [(t["status"], t["version"]) for t in then] == [("pending", 1)]


def test_a_long_list_shows_a_page_and_says_how_to_see_the_rest(tmp_path, monkeypatch):
    import eventstore.cli.tasks

    monkeypatch.setattr(eventstore.cli.tasks, "TABLE_ROWS", 3)  # a page, as the default 50 would be of more
    db = tmp_path / "events.db"
    for i in range(5):
        assert cli(db, "tasks", "add", f"Task {i}").exit_code == 0
    every = json.loads(cli(db, "tasks", "--json").stdout)["tasks"]
    assert len(every) == 5  # --json gives all of them
    assert json.loads(cli(db, "tasks", "--json", "--limit", "2").stdout)["tasks"] == every[:2]

    def ids_shown(*args: str) -> tuple[list[str], str]:
        out = cli(db, "tasks", *args).stdout.splitlines()
        return [line.split("│")[1].strip() for line in out if line.startswith("│")], out[-1]

    ids, last = ids_shown()
    assert ids == [t["task_id"] for t in every[:3]]
    assert last == "tasks: the first 3 of 5; --limit N shows more, --json shows all"
    ids, last = ids_shown("--limit", "4")
    assert ids == [t["task_id"] for t in every[:4]] and last.startswith("└")  # asked for: no note under it


def test_a_stale_expect_version_fails_and_names_the_current_one(tmp_path):
    db = tmp_path / "events.db"
    task = json.loads(cli(db, "tasks", "add", "Race", "--json").stdout)
    assert cli(db, "tasks", "set", task["task_id"], "--status", "completed").exit_code == 0
    stale = cli(db, "tasks", "set", task["task_id"], "--status", "pending", "--expect-version", "1")
    assert stale.exit_code == 1
    assert "is at version 2" in stale.output and "not 1" in stale.output
    assert json.loads(cli(db, "tasks", "--json").stdout)["tasks"][0]["status"] == "completed"


def test_expect_version_notices_a_change_claude_code_made(tmp_path):
    """A task from a TodoWrite list, read at version 1, then completed by the list: a change made
    with --expect-version 1 is refused, as a person's own change would have made it."""
    root = tmp_path / "projects" / "-p"
    root.mkdir(parents=True)
    transcript_file = root / "s1.jsonl"
    transcript_file.write_text(json.dumps(todo_write(1, [{"content": "Fix bug", "status": "pending"}])) + "\n")
    db = tmp_path / "events.db"
    assert cli(db, "ingest", str(tmp_path / "projects")).exit_code == 0
    (task,) = json.loads(cli(db, "tasks", "--json").stdout)["tasks"]
    assert task["version"] == 1
    with open(transcript_file, "a") as f:
        f.write(json.dumps(todo_write(2, [{"content": "Fix bug", "status": "completed"}])) + "\n")
    assert cli(db, "ingest", str(tmp_path / "projects")).exit_code == 0
    stale = cli(db, "tasks", "set", task["task_id"], "--status", "pending", "--expect-version", "1")
    assert stale.exit_code == 1 and "is at version 2, not 1" in stale.output
    (task,) = json.loads(cli(db, "tasks", "--json").stdout)["tasks"]
    assert (task["status"], task["version"]) == ("completed", 2)
    current = cli(db, "tasks", "set", task["task_id"], "--status", "pending", "--expect-version", "2", "--json")
    assert current.exit_code == 0 and json.loads(current.stdout)["version"] == 3


def test_a_status_no_task_has_is_named_in_a_warning(tmp_path):
    db = tmp_path / "events.db"
    assert cli(db, "tasks", "add", "x").exit_code == 0
    typo = run_cli("tasks", "--status", "PENDING,completed", "--json", db=db)
    assert json.loads(typo.stdout) == {"tasks": []}
    assert typo.stderr.decode() == "warning: no task has status 'PENDING'; statuses: completed, deleted, in_progress, pending\n"
    assert run_cli("tasks", "--status", "!", db=db, check=False).returncode == 2


def test_tasks_set_errors(tmp_path):
    db = tmp_path / "events.db"
    missing = cli(db, "tasks", "set", "nope", "--status", "completed")
    assert missing.exit_code == 1 and "no task nope" in missing.output
    task = json.loads(cli(db, "tasks", "add", "x", "--json").stdout)
    assert cli(db, "tasks", "set", task["task_id"]).exit_code == 2  # nothing to change
    assert cli(db, "tasks", "set", task["task_id"], "--status", "bogus").exit_code == 2
    assert cli(db, "tasks", "--as-of", "yesterday").exit_code == 2


def test_tasks_human_output(tmp_path):
    db = tmp_path / "events.db"
    assert "no tasks" in cli(db, "tasks").output
    assert "added task" in cli(db, "tasks", "add", "Visible").output
    assert "Visible" in cli(db, "tasks").output


def test_a_task_for_a_session_this_database_lacks_is_added_with_a_warning(tmp_path):
    """`tasks add --session` with a typo went unnoticed; a session already ingested draws no warning."""
    db = tmp_path / "events.db"
    (tmp_path / "p" / "proj").mkdir(parents=True)
    (tmp_path / "p" / "proj" / "s2.jsonl").write_bytes(
        b'{"type":"user","sessionId":"s2","uuid":"u1","timestamp":"2026-05-01T10:00:00.000Z","message":{"content":"hi"}}\n')
    with Store(db) as store:
        Ingester(store).ingest([tmp_path / "p"])
    unknown = cli(db, "tasks", "add", "Typo", "--session", "s3", "--json")
    assert unknown.exit_code == 0 and json.loads(unknown.stdout)["session_id"] == "s3"
    assert f"warning: no session s3 in {db}" in unknown.stderr
    known = cli(db, "tasks", "add", "Fine", "--session", "s2", "--json")
    assert known.exit_code == 0 and "warning" not in known.stderr
