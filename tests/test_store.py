"""The Store against a real SQLite file: appends, reads, named errors, append-only, file modes."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import apsw
import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from conftest import new_event
from eventstore import (
    CorruptDatabase,
    EventIdConflict,
    ExpectedVersion,
    NotADatabase,
    Store,
    TooNewDatabase,
    WrongExpectedVersion,
    entity_ids,
)


def test_append_assigns_gap_free_positions_and_stream_versions(store):
    positions = store.append([new_event("a"), new_event("b"), new_event("a")])
    assert positions == [1, 2, 3]
    assert [e.version for e in store.read_stream("a")] == [1, 2]
    assert [e.position for e in store.read_all()] == [1, 2, 3]
    assert store.stream_version("a") == 2 and store.stream_version("missing") == 0
    assert store.head() == 3


def test_read_back_is_exact(store):
    event = new_event("a", b'{"x": "\xc3\xa9"}\r', type="t.x", op="update", entity="e", entity_id="9")
    (position,) = store.append([event])
    got = store.get(position)
    assert got is not None
    assert (got.event_id, got.stream, got.type, got.op, got.entity, got.entity_id, got.data) == (
        event.event_id, "a", "t.x", "update", "e", "9", event.data)
    assert got.client_id == store.client_id and got.recorded_at > 0


@pytest.mark.parametrize(
    "expected, current, ok",
    [
        (ExpectedVersion.NO_STREAM, 0, True),
        (ExpectedVersion.NO_STREAM, 1, False),
        (ExpectedVersion.EXISTS, 0, False),
        (ExpectedVersion.EXISTS, 2, True),
        (2, 2, True),
        (1, 2, False),
        (3, 2, False),
        (ExpectedVersion.ANY, 5, True),
    ],
)
def test_expected_version(store, expected, current, ok):
    if current:
        store.append([new_event("s") for _ in range(current)])
    if ok:
        store.append([new_event("s")], expected)
        assert store.stream_version("s") == current + 1
    else:
        with pytest.raises(WrongExpectedVersion) as info:
            store.append([new_event("s")], expected)
        assert info.value.actual == current and "stream 's'" in str(info.value)
        assert store.stream_version("s") == current


def test_failed_batch_appends_nothing(store):
    store.append([new_event("a")])
    with pytest.raises(WrongExpectedVersion):
        store.append([new_event("b"), new_event("a")], {"a": ExpectedVersion.NO_STREAM})
    assert store.head() == 1 and store.stream_version("b") == 0


def test_same_id_same_content_is_a_noop(store):
    event = new_event("a", b'{"n":1}')
    first = store.append([event], ExpectedVersion.NO_STREAM)
    again = store.append([event], ExpectedVersion.NO_STREAM)  # a retried append
    assert first == again == [1]
    assert store.head() == 1 and store.stream_version("a") == 1


def test_same_id_other_content_is_a_named_error(store):
    event = new_event("a", b'{"n":1}')
    store.append([event])
    with pytest.raises(EventIdConflict) as info:
        store.append([new_event("a", b'{"n":2}', event_id=event.event_id)])
    assert info.value.position == 1
    with pytest.raises(EventIdConflict):
        store.append([new_event("other", b'{"n":1}', event_id=event.event_id)])


def test_event_id_must_be_128_bit_hex(store):
    with pytest.raises(ValueError, match="32 hex digits"):
        store.append([new_event(event_id="not-hex")])


def test_events_table_rejects_update_and_delete_from_any_client(store):
    store.append([new_event("a")])
    store.close()
    for statement in ("UPDATE events SET actor_no = 1", "DELETE FROM events", "UPDATE events SET data = x'00'"):
        raw = apsw.Connection(str(store.path))
        with pytest.raises(apsw.ConstraintError, match="append-only"):
            raw.execute(statement)
        raw.close()
        plain = sqlite3.connect(store.path)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            plain.execute(statement)
        plain.close()


def test_new_database_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "deep" / "dir" / "events.db"
        with Store(path) as s:
            s.append([new_event()])
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (tmp_path / "deep", tmp_path / "deep" / "dir"):  # every directory it made
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for sidecar in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        if sidecar.exists():
            assert stat.S_IMODE(sidecar.stat().st_mode) & 0o077 == 0


def test_an_existing_database_is_made_private_with_its_wal_files(tmp_path):
    """SQLite makes the WAL files with the database's mode as it first reads it, before the
    mode is tightened: they are tightened too."""
    path = tmp_path / "events.db"
    with Store(path) as s:
        s.append([new_event()])
    path.chmod(0o644)
    with Store(path) as s:
        s.append([new_event()])
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def test_file_that_is_not_a_database_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 200)
    path.chmod(0o644)
    with pytest.raises(NotADatabase, match="not an eventstore database"):
        Store(path)
    assert path.read_bytes().startswith(b"these are my notes")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # --db named it by mistake: not ours to change
    other = tmp_path / "other.db"
    foreign = sqlite3.connect(other)
    foreign.execute("CREATE TABLE notes (body TEXT)")
    foreign.commit()
    foreign.close()
    other.chmod(0o644)
    with pytest.raises(NotADatabase, match="not an eventstore one"):
        Store(other)
    assert stat.S_IMODE(other.stat().st_mode) == 0o644


def test_a_database_cut_short_is_called_damaged_not_foreign(tmp_path):
    path = tmp_path / "events.db"
    with Store(path) as s:
        s.append([new_event(data=os.urandom(2000).hex().encode()) for _ in range(100)])
    with open(path, "r+b") as file:
        file.truncate(8192)
    with pytest.raises(CorruptDatabase, match="is damaged .* restore it from a backup"):
        Store(path)


@pytest.mark.parametrize("user_version", [0, 3], ids=["unversioned", "versioned by its own program"])
def test_foreign_sqlite_database_is_refused(tmp_path, user_version):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.execute(f"PRAGMA user_version = {user_version}")
    conn.commit()
    conn.close()
    with pytest.raises(NotADatabase, match="not an eventstore one"):
        Store(path)


def test_database_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "events.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(TooNewDatabase, match="upgrade eventstore"):
        Store(path)


def test_migrations_are_recorded_and_reopening_is_stable(tmp_path):
    path = tmp_path / "events.db"
    with Store(path) as s:
        client = s.client_id
        s.append([new_event()])
    with Store(path) as s:
        assert s.client_id == client and s.head() == 1
        versions = [v for (v,) in s.db.conn.execute("SELECT version FROM migrations ORDER BY version")]
        assert versions == list(range(1, len(versions) + 1)) and versions


def test_cli_reports_bad_database_without_traceback(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"\x00junk" * 1000)
    result = subprocess.run([sys.executable, "-m", "eventstore", "--db", str(path), "events"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "not an eventstore database" in result.stderr and "Traceback" not in result.stderr


def test_subscribe_wakes_on_an_append_from_another_process(tmp_path):
    path = tmp_path / "events.db"
    with Store(path) as s:
        s.append([new_event("a")])
        stream = s.subscribe(after=0, idle_seconds=10)
        assert next(stream).position == 1
        writer = (
            "import sys, time, uuid; sys.path.insert(0, %r)\n"
            "from eventstore import Store, NewEvent\n"
            "s = Store(%r)\n"
            "time.sleep(0.3)\n"
            "t = time.time()\n"
            "s.append([NewEvent(event_id=uuid.uuid4().hex, stream='b', type='t', entity='e', entity_id='1',"
            " op='create', data=b'{}')])\n"
            "print(t)\n"
        ) % (str(Path(__file__).parent.parent), str(path))
        proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
        event = next(stream)
        woke = time.time()
        appended_at = float(proc.communicate(timeout=30)[0])
        stream.close()
    assert event.position == 2 and event.stream == "b"
    assert woke - appended_at < 0.5  # typically a few ms; generous against a loaded machine


def test_sql_function_reads_payloads_from_frames_and_blocks(store):
    payloads = [(b'{"type":"assistant","text":"%s"}' % (b"word " * (i % 50 + 10))) for i in range(3000)]
    store.append([new_event("a", p) for p in payloads])
    rows = store.db.conn.execute("SELECT event_payload(position), block_id FROM events ORDER BY position").fetchall()
    assert [r[0] for r in rows] == payloads
    assert {r[1] for r in rows} - {None}, "a bulk append stores runs of payloads in blocks"
    stored = store.db.conn.execute("SELECT sum(length(data)) FROM blocks").fetchall()[0][0]
    assert stored < sum(map(len, payloads)) / 5


def test_blocks_hold_several_frames_and_any_one_event_reads_back(store):
    import random

    from eventstore.check import check
    from eventstore.payloads import ALONE_BYTES, layout

    rng = random.Random(5)
    payloads = [rng.choice([b'{"n":%d,"t":"%s"}' % (i, b"ab" * rng.randrange(400)),
                            b'{"big":"%s"}' % (b"%d " % i * 9000)]) if i % 97 == 0 else
                b'{"n":%d,"t":"%s"}' % (i, b"xy" * rng.randrange(600)) for i in range(2000)]
    positions = store.append([new_event(f"s{i % 5}", p) for i, p in enumerate(payloads)])
    conn = store.db.conn
    rows = [layout(sizes, frames, length) for sizes, frames, length in
            conn.execute("SELECT sizes, frames, length(data) FROM blocks")]
    assert any(len(spans) > 1 for _, spans in rows), "some rows hold several frames"
    large = [hi - lo for member_sizes, spans in rows for lo, hi, _, _ in spans
             if max(member_sizes[lo:hi]) >= ALONE_BYTES]
    assert large and set(large) == {1}, "a large payload is a frame of its own"
    assert conn.execute("SELECT count(*) FROM events WHERE block_id IS NULL").fetchall()[0][0] == 0
    assert [e.data for e in store.read_all()] == payloads
    for i in rng.sample(range(2000), 200):  # one event at a time: only its frame is decoded
        assert store.get(positions[i]).data == payloads[i]
    assert [e.data for e in store.read_stream("s3")] == payloads[3::5]
    report = check(store, deep=True)
    assert report.ok, report.problems


def test_block_sizes_are_two_bytes_each_unless_a_member_needs_four(store):
    small = [b'{"n":%d}' % i for i in range(40)]
    large = small[:20] + [b"x" * 100_000] + small[20:]
    store.append([new_event("a", p) for p in small])
    store.append([new_event("b", p) for p in large])
    widths = [len(sizes) // members for sizes, members in store.db.conn.execute(
        "SELECT sizes, (SELECT count(*) FROM events e WHERE e.block_id = b.block_id) FROM blocks b ORDER BY block_id")]
    assert widths == [2, 4]
    assert [e.data for e in store.read_all()] == small + large


def test_read_stream_finds_interleaved_and_consecutive_runs_from_any_version(store):
    bulk = [new_event(f"s{i % 3}", b'{"n":%d}' % i) for i in range(300)]  # streams interleaved in blocks
    store.append(bulk)
    store.append([new_event("s0", b'{"n":"alone"}')])
    store.append([new_event("s1", b'{"n":%d}' % i) for i in range(40)])  # one consecutive run
    s0 = store.read_stream("s0")
    assert [e.version for e in s0] == list(range(1, 102))
    assert [e.data for e in s0] == [b'{"n":%d}' % i for i in range(0, 300, 3)] + [b'{"n":"alone"}']
    assert [e.version for e in store.read_stream("s0", 100)] == [100, 101]
    assert [e.version for e in store.read_stream("s1", 95)] == list(range(95, 141))
    assert store.read_stream("s1", 141) == [] and store.read_stream("missing") == []
    for name in ("s0", "s1", "s2"):
        assert [e.position for e in store.read_stream(name)] == [
            e.position for e in store.read_all() if e.stream == name]


def test_an_unknown_op_is_refused_before_anything_is_written(store):
    with pytest.raises(ValueError, match="op must be one of"):
        store.append([new_event("a"), new_event("a", op="mutate")])
    assert store.head() == 0


def test_a_log_written_before_the_stream_index_is_migrated(tmp_path):
    """A database as migration 0005 left it: its events move to the new table, stream reads and
    positions carry on, and `check` finds nothing wrong."""
    from eventstore.check import check
    from eventstore.ingest.sources import origins
    from eventstore.storage import migrations

    path = tmp_path / "old.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)")
    for version, name, sql in migrations()[:5]:
        conn.execute(sql)
        conn.execute("INSERT INTO migrations VALUES (?, ?, 0)", (version, name))
    conn.execute("PRAGMA user_version = 5")
    conn.execute("INSERT INTO clients (client_id) VALUES ('old')")
    conn.execute("INSERT INTO meta (key, value) VALUES ('client_id', 'old')")
    for n, (stream, version) in enumerate([("a", 1), ("b", 1), ("a", 2)], start=1):
        conn.execute("INSERT OR IGNORE INTO streams (name, version) VALUES (?, 0)", (stream,))
        conn.execute("UPDATE streams SET version = ? WHERE name = ?", (version, stream))
        conn.execute(
            "INSERT INTO events (event_id, stream_no, version, type, schema_version, entity, entity_id, op, client_no,"
            " actor, recorded_at, data) VALUES (?, (SELECT stream_no FROM streams WHERE name = ?), ?, 't', 1, 'e',"
            " '1', 'create', 1, '', 0, ?)", (bytes([n]) * 16, stream, version, b'{"n":%d}' % n))
    conn.execute("INSERT INTO sources (source_id, path, device, inode, head_hash, head_len, offset, size, mtime_ns,"
                 " updated_at) VALUES (1, 'a.jsonl', 0, 0, x'', 0, 30, 30, 0, 0)")
    conn.executemany("INSERT INTO line_sources VALUES (?, 1, ?)", [(1, 0), (2, 10), (3, 20)])
    conn.close()
    with Store(path) as store:
        assert [(e.position, e.data) for e in store.read_stream("a")] == [(1, b'{"n":1}'), (3, b'{"n":3}')]
        assert origins(store.db.conn) == [("a.jsonl", 0, 1), ("a.jsonl", 10, 2), ("a.jsonl", 20, 3)]
        assert [e.type for e in store.read_all()][3:] == ["audit.migrate"]  # opening recorded the migration
        assert store.append([new_event("a", b"{}")]) == [5]
        assert [e.version for e in store.read_stream("a", 2)] == [2, 3]
        report = check(store)
        assert report.ok, report.problems
    with raw_connection(path) as conn, pytest.raises(apsw.ConstraintError, match="append-only"):
        conn.execute("DELETE FROM events WHERE position = 1")


def raw_connection(path: Path) -> apsw.Connection:
    return apsw.Connection(str(path))


def test_names_added_by_a_rolled_back_transaction_are_not_reused(store, tmp_path):
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.append([new_event("a", type="never.committed")])
        raise RuntimeError("the caller gives up")
    with Store(store.path) as other:  # another process now takes the number that name had
        other.append([new_event("b", type="other.type")])
    store.append([new_event("a", type="kept.type"), new_event("c", type="never.committed")])
    assert [(e.stream, e.type) for e in store.read_all()] == [
        ("b", "other.type"), ("a", "kept.type"), ("c", "never.committed")]
    rows = store.db.conn.execute("SELECT stream, type, op, entity, actor FROM event_log ORDER BY position").fetchall()
    assert rows == [("b", "other.type", "create", "thing", ""), ("a", "kept.type", "create", "thing", ""),
                    ("c", "never.committed", "create", "thing", "")]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()),
                 st.uuids().map(lambda u: str(u).replace("-", " "))))
def test_any_entity_id_is_stored_and_read_back_exactly(value):
    assert entity_ids.text(entity_ids.stored(value)) == value


def test_a_bulk_append_of_stored_copies_checks_every_one_against_its_stored_payload(store):
    events = [new_event(f"s{i % 3}", b'{"line": %d, "pad": "%s"}' % (i, b"x" * (i % 50))) for i in range(300)]
    positions = store.append(events)  # bulk: stored in shared blocks
    assert store.db.conn.execute("SELECT count(*) FROM events WHERE block_id IS NOT NULL").fetchall()[0][0] == 300
    extra = new_event("s0", b'{"line": "new"}')
    again = [events[i] for i in range(299, -1, -7)]  # copies out of order, from many frames
    assert store.append([*again, extra]) == [positions[i] for i in range(299, -1, -7)] + [301]
    clash = new_event(events[150].stream, events[150].data[:-1] + b"!", event_id=events[150].event_id)
    with pytest.raises(EventIdConflict) as info:
        store.append([events[10], clash, events[200], new_event("s1")])
    assert info.value.position == positions[150]
    assert store.head() == 301  # nothing of the failed append was kept


def test_uuid_entity_ids_are_stored_as_16_bytes_and_read_as_text(store):
    canonical = [str(uuid.uuid4()) for _ in range(40)]
    others = [canonical[0].upper(), "plain-id", "3577aef7ad4f59d267c71a5a19ef958e"]
    one = new_event("single", entity_id=canonical[0])
    positions = store.append([one])
    bulk = [new_event("bulk", b'{"n": %d}' % i, entity_id=e) for i, e in enumerate(canonical[1:] + others)]
    positions += store.append(bulk)
    conn = store.db.conn
    kinds = dict(conn.execute("SELECT position, typeof(entity_id) || ':' || length(entity_id) FROM events").fetchall())
    assert [kinds[p] for p in positions[:40]] == ["blob:16"] * 40
    assert [kinds[p] for p in positions[40:]] == ["text:36", "text:8", "text:32"]
    expected = canonical + others
    assert [e.entity_id for e in store.read_all()] == expected
    assert [c.entity_id for c in store.changes()] == expected
    assert [row[0] for row in conn.execute("SELECT entity_id FROM event_log ORDER BY position")] == expected
    # The same event again is a no-op; the same id naming another entity is a conflict.
    assert store.append([one]) == positions[:1]
    with pytest.raises(EventIdConflict):
        store.append([new_event("single", event_id=one.event_id, entity_id=str(uuid.uuid4()))])
