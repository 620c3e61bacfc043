"""`eventstore check`: a sound store passes; each kind of damage is found and named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import apsw
import pytest

from conftest import REPO, new_event, run_cli
from eventstore import Store
from eventstore.check import check
from eventstore.ingest import Ingester
from projections import memories
from projections.runner import Runner

EXAMPLES = REPO / "examples" / "projects"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A store with the example transcripts, a memory and every projection caught up."""
    db = tmp_path_factory.mktemp("check") / "events.db"
    with Store(db) as store:
        Ingester(store).ingest([EXAMPLES])
        memories.add(store, "the parser drops a trailing newline", ["bug"], actor="test")
        Runner.for_store(store).catch_up()
    return db


@pytest.fixture
def db(built, tmp_path) -> Path:
    copy = tmp_path / "events.db"
    shutil.copy(built, copy)
    return copy


def raw(db: Path) -> apsw.Connection:
    """A bare connection with none of the store's protections, to damage the file on purpose."""
    conn = apsw.Connection(str(db))
    conn.set_busy_timeout(5_000)
    return conn


def problems(db: Path, *, deep: bool = False) -> list[tuple[str, str]]:
    with Store(db) as store:
        report = check(store, deep=deep)
    assert report.ok == (not report.problems)
    return [(p.check, p.message) for p in report.problems]


def test_a_sound_store_passes_deep_check_and_json_shape(db):
    result = run_cli("check", "--deep", "--json", db=db)
    report = json.loads(result.stdout)
    assert set(report) == {"ok", "problems", "checks"}
    assert report["ok"] is True and report["problems"] == []
    checks = report["checks"]
    assert checks["integrity"]["ok"] and checks["payloads"]["failed"] == 0
    assert checks["log"]["events"] == checks["log"]["head"] > 900
    assert sorted(checks["log"]["append_only_triggers"]) == [
        "blocks_append_only_delete", "blocks_append_only_update", "events_append_only_delete", "events_append_only_update",
        "stream_index_append_only_delete", "stream_index_append_only_update"]
    assert {"fulltext", "memories", "sessions", "tasks", "vectors"} <= set(checks["projections"])
    assert all(d["compared"] and not any(t["live_only"] or t["rebuilt_only"] for t in d["tables"].values())
               for d in checks["deep"].values())
    with raw(db) as conn:  # the scratch tables are gone
        assert not conn.execute("SELECT name FROM sqlite_schema WHERE name GLOB 'chk_*'").fetchall()
    human = run_cli("check", db=db)
    assert human.stdout.decode().rstrip().endswith("ok")
    assert "triggers in place" in human.stdout.decode()  # it said MISSING once there were six


def test_a_removed_event_shows_as_a_gap_and_a_broken_stream(db):
    with raw(db) as conn:
        conn.execute("DROP TRIGGER events_append_only_delete")
        conn.execute("DELETE FROM events WHERE position = 10")
    found = problems(db)
    checks = {c for c, _ in found}
    assert {"log.positions", "log.streams", "log.triggers"} <= checks
    assert any("1 missing" in m and "10" in m for c, m in found if c == "log.positions")
    result = run_cli("check", db=db, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr.decode()
    assert "problem [log.positions]" in result.stderr.decode()


def test_a_removed_tail_shows_in_the_sequence(db):
    with raw(db) as conn:
        head = conn.execute("SELECT max(position) FROM events").fetchall()[0][0]
        conn.execute("DROP TRIGGER events_append_only_delete")
        conn.execute("DELETE FROM events WHERE position = ?", (head,))
        conn.execute("CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events BEGIN "
                     "SELECT RAISE(ABORT, 'append-only'); END")
    found = problems(db)
    assert any(c == "log.positions" and "removed from its end" in m for c, m in found)
    assert any(c == "projections.checkpoint" for c, _ in found)  # checkpoints are now beyond the head


def test_a_stream_version_out_of_step_is_found(db):
    with raw(db) as conn:
        conn.execute("UPDATE streams SET version = version + 1 WHERE stream_no = 1")
    assert [c for c, _ in problems(db)] == ["log.streams"]


def _copy_of_an_event(conn: apsw.Connection, **changes: object) -> None:
    """Insert a copy of event 1's envelope under a new id and position, with some columns changed."""
    columns = [row[1] for row in conn.execute("PRAGMA table_info(events)")]
    row = dict(zip(columns, conn.execute("SELECT * FROM events WHERE position = 1").fetchall()[0]))
    row.update(position=None, event_id=bytes(16), dict_id=None, data=b"{}", block_id=None, **changes)
    conn.execute(f"INSERT INTO events ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def test_a_repeated_stream_version_is_found(db):
    with raw(db) as conn:
        _copy_of_an_event(conn)  # the same stream and version again, under another id
    found = [c for c, _ in problems(db)]
    assert "log.streams" in found and "log.stream_index" in found


def test_an_unknown_op_is_found(db):
    with raw(db) as conn:
        stream_no, version = conn.execute("SELECT stream_no, version FROM streams LIMIT 1").fetchall()[0]
        conn.execute("INSERT INTO names (name) VALUES ('mutate')")
        _copy_of_an_event(conn, stream_no=stream_no, version=version + 1, op_no=conn.last_insert_rowid())
        conn.execute("UPDATE streams SET version = version + 1 WHERE stream_no = ?", (stream_no,))
        conn.execute("INSERT INTO stream_index VALUES (?, ?, ?, (SELECT max(position) FROM events), NULL)",
                     (stream_no, version + 1, version + 1))
    assert [c for c, _ in problems(db)] == ["log.ops"]


def test_a_missing_trigger_is_found(db):
    with raw(db) as conn:
        conn.execute("DROP TRIGGER events_append_only_update")
    found = problems(db)
    assert [c for c, _ in found] == ["log.triggers"] and "events_append_only_update" in found[0][1]


def test_a_payload_that_does_not_decode_is_found(db):
    with Store(db) as store:  # a small append: a frame in the event's own row
        (alone,) = store.append([new_event("s", b'{"text": "%s"}' % (b"compressible " * 20))])
    with raw(db) as conn:
        conn.execute("DROP TRIGGER events_append_only_update")
        conn.execute("DROP TRIGGER blocks_append_only_update")
        assert conn.execute("SELECT dict_id IS NOT NULL FROM events WHERE position = ?", (alone,)).fetchall() == [(1,)]
        conn.execute("UPDATE events SET data = x'00112233445566778899' WHERE position = ?", (alone,))
        block_id, first = conn.execute("SELECT block_id, first_position FROM blocks WHERE dict_id IS NOT NULL"
                                       " ORDER BY block_id DESC LIMIT 1").fetchall()[0]
        conn.execute("UPDATE blocks SET data = zeroblob(length(data)) WHERE block_id = ?", (block_id,))
        members = conn.execute("SELECT count(*) FROM events WHERE block_id = ?", (block_id,)).fetchall()[0][0]
    messages = [m for c, m in problems(db) if c == "log.payloads"]
    assert messages and messages[0].startswith(f"{members + 1} payloads do not decode: {first} (")


def test_a_stale_projection_version_and_projection_errors_are_problems_but_quarantine_is_not(db):
    with raw(db) as conn:
        conn.execute("UPDATE projection_checkpoints SET version = 'old' WHERE name = 'sessions'")
        conn.execute("INSERT INTO projection_errors VALUES ('tasks', 3, 0, 'ValueError: boom', 0)")
        source = conn.execute("SELECT source_id FROM sources LIMIT 1").fetchall()[0][0]
        conn.execute("INSERT INTO quarantine (source_id, offset, reason, line, recorded_at) VALUES (?, 0, 'x', x'00', 0)",
                     (source,))
    with Store(db) as store:
        report = check(store)
    assert sorted(p.check for p in report.problems) == ["projections.errors", "projections.version"]
    assert report.checks["quarantine"]["lines"] == 1 and report.checks["projection_errors"] == 1


def test_quarantine_alone_is_not_a_failure(db):
    with raw(db) as conn:
        source = conn.execute("SELECT source_id FROM sources LIMIT 1").fetchall()[0][0]
        conn.execute("INSERT INTO quarantine (source_id, offset, reason, line, recorded_at) VALUES (?, 0, 'x', x'00', 0)",
                     (source,))
    report = json.loads(run_cli("check", "--json", db=db).stdout)
    assert report["ok"] and report["checks"]["quarantine"]["lines"] == 1


def test_deep_check_finds_a_live_table_that_differs_from_a_rebuild(db):
    assert problems(db, deep=True) == []
    with raw(db) as conn:
        conn.execute("UPDATE sessions SET user_messages = user_messages + 1 WHERE rowid = (SELECT min(rowid) FROM sessions)")
        conn.execute("INSERT INTO fts_text (rowid, body) VALUES (999999, 'words nobody wrote')")
    found = problems(db, deep=True)
    assert {m.split(":")[0] for c, m in found if c == "deep"} == {"projection sessions", "projection fulltext"}
    assert any("table sessions differs" in m and "1 rows only live, 1 only rebuilt" in m for _, m in found)
    assert not problems(db)  # the shallow check cannot see it
    with raw(db) as conn:
        assert not conn.execute("SELECT name FROM sqlite_schema WHERE name GLOB 'chk_*'").fetchall()


def test_a_damaged_file_is_reported_not_a_traceback(db, tmp_path):
    with raw(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchall()[0][0]
        root = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'sqlite_autoindex_events_1'").fetchall()[0][0]
    with open(db, "r+b") as f:  # scribble over the event-id index's root page
        f.seek((root - 1) * page_size + 8)
        f.write(b"\xff" * 64)
    result = run_cli("check", "--json", db=db, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["problems"]


def test_an_empty_new_store_passes(tmp_path):
    with Store(tmp_path / "e.db") as store:
        store.append([new_event()])
    assert json.loads(run_cli("check", "--json", db=tmp_path / "e.db").stdout)["ok"]


def test_check_backup_and_redact_refuse_a_database_that_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere" / "events.db"
    for args in (["check"], ["backup", str(tmp_path / "copy.db")], ["redact", "x+"]):
        result = run_cli(*args, db=missing, check=False)
        assert result.returncode == 1 and "no such database" in result.stderr.decode()
    assert not missing.exists()


def test_deep_check_of_a_log_ingested_in_parts_sees_the_same_sessions(tmp_path):
    """Each batch packs its record keys in runs of its own: compared row by row, a log ingested in
    two parts differed from its rebuild, and check --deep said to replay, again after each ingest."""
    projects = sorted(p for p in EXAMPLES.iterdir() if p.is_dir())
    assert len(projects) >= 2
    db = tmp_path / "events.db"
    with Store(db) as store:
        for project in projects:
            Ingester(store).ingest([project])
            Runner.for_store(store).catch_up(["sessions"])
    assert problems(db, deep=True) == []
    with raw(db) as conn:  # the keys compared as pairs still show a session that holds another's record
        keys, sessions = conn.execute("SELECT keys, sessions FROM session_key_runs ORDER BY run LIMIT 1").fetchall()[0]
        wrong = (int.from_bytes(sessions[:4], "little") + 1).to_bytes(4, "little") + sessions[4:]
        conn.execute("UPDATE session_key_runs SET sessions = ? WHERE keys = ?", (wrong, keys))
    assert any("table session_key_runs differs" in m for _, m in problems(db, deep=True))
