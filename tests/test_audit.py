"""The audit trail: replay, import, redact and migrations each leave one event in stream `audit`."""

from __future__ import annotations

import json

import apsw

from conftest import new_event, run_cli
from eventstore import Store
from eventstore.storage import latest_schema_version, migrations

AUDIT_KEYS = {"position", "operation", "actor", "recorded_at", "details"}


def audit(db) -> list[dict]:
    return json.loads(run_cli("audit", "--json", db=db).stdout)["audit"]


def test_replay_and_import_are_recorded_with_actor_and_counts(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with Store(a) as store:
        store.append([new_event(f"s{i % 2}", f'{{"n":{i}}}'.encode()) for i in range(4)])
    assert audit(a) == []
    run_cli("replay", "--json", db=a, env={"USER": "dana"})
    dump = tmp_path / "dump.jsonl"
    run_cli("export", str(dump), db=a)
    run_cli("import", str(dump), db=b, env={"USER": "lee"})
    run_cli("import", str(dump), db=b, env={"USER": "lee"})

    (replay,) = audit(a)
    assert set(replay) >= AUDIT_KEYS and replay["operation"] == "replay" and replay["actor"] == "dana"
    assert "sessions" in replay["details"]["projections"] and replay["recorded_at"].endswith("Z")

    entries = audit(b)
    assert [e["operation"] for e in entries] == ["replay", "import", "import"]  # a's replay travelled along
    assert entries[0]["actor"] == "dana" and entries[1]["actor"] == entries[2]["actor"] == "lee"
    assert entries[1]["details"] == {"events": 5, "appended": 5, "duplicates": 0, "conflicts": 0,
                                     "conflicting_streams": []}
    assert entries[2]["details"]["appended"] == 0 and entries[2]["details"]["duplicates"] == 5
    with Store(b) as store:
        events = store.read_stream("audit")
        assert [e.version for e in events] == [1, 2, 3]
        # Stamped when the transaction began, as its append is: never recorded before it occurred.
        assert all(e.occurred_at == e.recorded_at for e in events)
        assert {(e.type, e.entity, e.op) for e in events} == {("audit.replay", "operation", "create"),
                                                              ("audit.import", "operation", "create")}
    # Both stores' audit events go back and forth without conflicts or copies.
    back = tmp_path / "back.jsonl"
    run_cli("export", str(back), db=b)
    report = json.loads(run_cli("import", str(back), "--json", db=a).stdout)
    assert report["conflicts"] == [] and report["appended"] == 2  # b's two imports; a's replay is a duplicate
    assert [e["operation"] for e in audit(a)] == ["replay", "import", "import", "import"]


def test_schema_migrations_of_an_existing_database_are_recorded_but_creation_is_not(tmp_path):
    fresh = tmp_path / "fresh.db"
    Store(fresh).close()
    assert audit(fresh) == []

    old = tmp_path / "old.db"  # a database as the first two migrations left it
    conn = apsw.Connection(str(old))
    for version, name, sql in migrations()[:2]:
        conn.execute(sql)
        if version == 1:
            conn.execute("CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                         " applied_at INTEGER NOT NULL)")
        conn.execute("INSERT INTO migrations VALUES (?, ?, 0)", (version, name))
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    (entry,) = audit(old)
    assert entry["operation"] == "migrate"
    assert entry["details"]["from_version"] == 2 and entry["details"]["to_version"] == latest_schema_version()
    assert [m["version"] for m in entry["details"]["applied"]] == list(range(3, latest_schema_version() + 1))
    assert audit(old) == [entry]  # reopening applies nothing and records nothing


def test_audit_command_for_people(tmp_path):
    db = tmp_path / "e.db"
    Store(db).close()
    assert "no administrative operations" in run_cli("audit", db=db).stdout.decode()
    run_cli("replay", db=db)
    assert "replay" in run_cli("audit", db=db).stdout.decode()
