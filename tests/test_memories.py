"""Memories: events per memory stream, the read model, and the `memories` commands' JSON."""

from __future__ import annotations

import json

import msgspec
import pytest
from click.testing import CliRunner

from eventstore import Store, WrongExpectedVersion
from eventstore.cli import main
from projections import memories
from projections.memories import MemoriesProjection, MemoryError, MemoryNotFound
from projections.runner import Runner
from projections.search import reader
from schemas import memories as mem

MEMORY_KEYS = {"memory_id", "text", "tags", "project", "links", "deleted", "version", "created_at", "updated_at"}


def cli(db, *args, ok=True):
    result = CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.stderr
    return result


def cli_json(db, *args):
    return json.loads(cli(db, *args, "--json").stdout)


def test_payloads_round_trip_with_stable_type_strings():
    update = mem.MemoryUpdated(memory_id="m", tags=("a",))
    assert mem.encode_payload(update) == b'{"memory_id":"m","tags":["a"]}'  # unset fields left out
    back = mem.decode_payload("memory.updated", b'{"memory_id":"m","project":null}')
    assert back.project is None and back.text is msgspec.UNSET and back.tags is msgspec.UNSET
    assert mem.OPS == {"memory.added": "create", "memory.updated": "update", "memory.forgotten": "delete",
                       "memory.linked": "link", "memory.unlinked": "unlink"}


def test_commands_print_the_memory_object(tmp_path):
    db = tmp_path / "events.db"
    added = cli_json(db, "memories", "add", "Use WAL mode", "--tag", "sqlite", "--tag", "db", "--project", "store")
    assert set(added) == MEMORY_KEYS
    assert added["text"] == "Use WAL mode" and added["tags"] == ["sqlite", "db"] and added["project"] == "store"
    assert added["links"] == [] and added["deleted"] is False and added["version"] == 1
    assert added["created_at"].endswith("Z") and added["created_at"] == added["updated_at"]
    memory_id = added["memory_id"]

    linked = cli_json(db, "memories", "link", memory_id[:8], "--session", "s1")
    assert linked["links"] == [{"session_id": "s1"}] and linked["version"] == 2
    linked = cli_json(db, "memories", "link", memory_id, "--task", "7")
    assert linked["links"] == [{"session_id": "s1"}, {"task_id": "7"}] and linked["version"] == 3
    again = cli_json(db, "memories", "link", memory_id, "--task", "7")  # already linked: nothing appended
    assert again["version"] == 3
    unlinked = cli_json(db, "memories", "unlink", memory_id, "--session", "s1")
    assert unlinked["links"] == [{"task_id": "7"}] and unlinked["version"] == 4
    missing = cli(db, "memories", "unlink", memory_id, "--session", "s1", ok=False)
    assert missing.exit_code == 1 and "not linked" in missing.stderr

    listed = cli_json(db, "memories", "list")
    assert [m["memory_id"] for m in listed["memories"]] == [memory_id]
    assert cli_json(db, "memories", "list", "--tag", "db")["memories"][0]["memory_id"] == memory_id
    assert cli_json(db, "memories", "list", "--tag", "nope")["memories"] == []
    assert cli_json(db, "memories", "list", "--project", "STO")["memories"][0]["memory_id"] == memory_id
    assert cli_json(db, "memories", "list", "--task", "7")["memories"][0]["memory_id"] == memory_id

    forgotten = cli_json(db, "memories", "forget", memory_id)
    assert forgotten["deleted"] is True and forgotten["version"] == 5
    assert cli_json(db, "memories", "list") == {"memories": []}
    history = cli_json(db, "memories", "list", "--all")["memories"]
    assert history == [forgotten]
    again = cli(db, "memories", "forget", memory_id, ok=False)
    assert again.exit_code == 1 and "forgotten" in again.stderr and "Traceback" not in again.output

    with Store(db) as store:
        events = store.read_stream(f"memory:{memory_id}")
    assert [(e.type, e.op, e.version) for e in events] == [
        ("memory.added", "create", 1), ("memory.linked", "link", 2), ("memory.linked", "link", 3),
        ("memory.unlinked", "unlink", 4), ("memory.forgotten", "delete", 5)]
    assert {e.entity for e in events} == {"memory"} and {e.entity_id for e in events} == {memory_id}


def test_stale_expected_version_is_refused_and_names_the_current_one(tmp_path):
    db = tmp_path / "events.db"
    memory_id = cli_json(db, "memories", "add", "first")["memory_id"]
    updated = cli_json(db, "memories", "update", memory_id, "--text", "second", "--expect-version", "1")
    assert updated["text"] == "second" and updated["version"] == 2
    stale = cli(db, "memories", "update", memory_id, "--text", "third", "--expect-version", "1", ok=False)
    assert stale.exit_code == 1 and "version 2" in stale.stderr and stale.stdout == ""
    stale = cli(db, "memories", "forget", memory_id, "--expect-version", "1", ok=False)
    assert stale.exit_code == 1 and "version 2" in stale.stderr
    assert cli_json(db, "memories", "list")["memories"][0]["text"] == "second"


def test_unknown_memory_and_bad_link_are_clean_errors(tmp_path):
    db = tmp_path / "events.db"
    result = cli(db, "memories", "forget", "0123456789abcdef", ok=False)
    assert result.exit_code == 1 and "no memory" in result.stderr
    memory_id = cli_json(db, "memories", "add", "x")["memory_id"]
    result = cli(db, "memories", "link", memory_id, ok=False)
    assert result.exit_code != 0 and "--session" in result.stderr
    result = cli(db, "memories", "link", memory_id, "--session", "a", "--task", "b", ok=False)
    assert result.exit_code != 0


def test_library_commands_and_the_projection_agree(store):
    runner = Runner(store, [MemoriesProjection()])
    runner.catch_up()
    a = memories.add(store, "alpha", tags=["x"])
    b = memories.add(store, "beta", project="p")
    memories.update(store, a.memory_id, tags=["y", "y", "z"], project="q")
    memories.link(store, b.memory_id, "session", "s")
    memories.forget(store, b.memory_id)
    with pytest.raises(WrongExpectedVersion):
        memories.update(store, a.memory_id, text="gamma", expected_version=1)
    with pytest.raises(MemoryNotFound):
        memories.forget(store, "missing")
    with pytest.raises(MemoryError):
        memories.link(store, a.memory_id, "file", "f")
    # The inline projection saw every change in its append transaction.
    listed = memories.list_memories(reader(store), include_deleted=True)
    # Both were created in the same millisecond more often than not: compare regardless of order.
    assert sorted((m.to_json() for m in listed), key=lambda m: m["memory_id"]) == sorted(
        (memories.get(store, a.memory_id).to_json(), memories.get(store, b.memory_id).to_json()),
        key=lambda m: m["memory_id"])
    by_id = {m.memory_id: m for m in listed}
    assert by_id[a.memory_id].tags == ["y", "z"] and by_id[a.memory_id].project == "q" and by_id[b.memory_id].deleted
    # And a rebuild from the log gives the same rows.
    runner.rebuild()
    assert memories.list_memories(reader(store), include_deleted=True) == listed
    runner.close()


def test_concurrent_changes_cannot_both_win(store):
    memory = memories.add(store, "shared")
    memories.update(store, memory.memory_id, text="mine", expected_version=1)
    with pytest.raises(WrongExpectedVersion) as info:
        memories.update(store, memory.memory_id, text="theirs", expected_version=1)
    assert info.value.actual == 2


def test_memories_without_a_subcommand_lists_them(tmp_path):
    db = tmp_path / "events.db"
    cli_json(db, "memories", "add", "listed by default")
    result = cli(db, "memories")
    assert "listed" in result.stdout and "version" in result.stdout


def test_a_link_to_a_session_or_task_this_database_lacks_is_made_with_a_warning(tmp_path):
    """A typo in --session or --task went unnoticed: the link names something that is not there."""
    db = tmp_path / "events.db"
    memory_id = cli_json(db, "memories", "add", "x")["memory_id"]
    task_id = cli_json(db, "tasks", "add", "a task")["task_id"]
    for target, known in (("--session", "nope"), ("--task", "nope")):
        result = cli(db, "memories", "link", memory_id, target, known)
        assert f"warning: no {target[2:]} nope in {db}" in result.stderr
    result = cli(db, "memories", "link", memory_id, "--task", task_id)
    assert "warning" not in result.stderr
    links = cli_json(db, "memories", "list")["memories"][0]["links"]
    assert {"session_id": "nope"} in links and {"task_id": "nope"} in links and {"task_id": task_id} in links
