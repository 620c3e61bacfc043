"""Compressing a database written without compression (resumable), and `stats`."""

from __future__ import annotations

import json

from conftest import new_event, run_cli
from eventstore import Store
from eventstore import space


def transcript_like(i: int) -> bytes:
    return (b'{"type":"assistant","sessionId":"s%d","message":{"model":"claude-sonnet-4-5","content":'
            b'[{"type":"text","text":"%s"}],"usage":{"input_tokens":%d}}}' % (i % 9, b"step %d of the plan " % i * 12, i))


def test_database_written_without_compression_is_compressed_resumably(tmp_path):
    path = tmp_path / "old.db"
    payloads = [transcript_like(i) for i in range(9000)]
    with Store(path, compress=False) as old:
        old.append([new_event(f"s{i % 5}", p) for i, p in enumerate(payloads)])
        assert old.db.conn.execute("SELECT count(*) FROM events WHERE dict_id IS NOT NULL").fetchall()[0][0] == 0
        space.schedule_compression(old)
    with Store(path, compress=False) as store:  # compression off: the pending run waits
        assert space.compression_pending(store)
        store.codec.compress = True
        partial = space.compress_payloads(store, max_batches=2)  # interrupted after two batches
        assert partial.events == 2 * space.BATCH and not partial.done
    with Store(path) as store:  # opening resumes and finishes it
        assert not space.compression_pending(store)
        raw_rows = store.db.conn.execute(
            "SELECT count(*) FROM events WHERE dict_id IS NULL AND length(data) >= 24").fetchall()[0][0]
        assert raw_rows == 0
        assert [e.data for e in store.read_all()] == payloads
        found = space.stats(store)
        assert found.events == 9000 and found.raw_bytes == sum(map(len, payloads))
        assert found.compression_ratio > 3 and found.dictionaries >= 1
        with_trigger = store.db.conn.execute(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'events_append_only_%'").fetchall()
        assert with_trigger[0][0] == 2


def test_stats_json_shape(tmp_path):
    db = tmp_path / "e.db"
    with Store(db) as store:
        store.append([new_event("a", transcript_like(i)) for i in range(50)])
    doc = json.loads(run_cli("stats", "--json", db=db).stdout)
    assert set(doc) >= {"events", "raw_bytes", "stored_bytes", "compression_ratio", "database_bytes", "tables"}
    assert doc["events"] == 50 and doc["raw_bytes"] == sum(len(transcript_like(i)) for i in range(50))
    names = {t["name"] for t in doc["tables"]}
    assert "events" in names and all(t["bytes"] > 0 for t in doc["tables"] if t["name"] == "events")


def test_free_pages_go_back_to_the_file_system(tmp_path):
    db = tmp_path / "e.db"
    with Store(db) as store:
        assert store.db.conn.execute("PRAGMA auto_vacuum").fetchall() == [(2,)]  # incremental, from creation
        with store.db.write() as conn:  # a read model's scratch table: filled, then emptied
            conn.execute("CREATE TABLE scratch (x BLOB)")
            conn.executemany("INSERT INTO scratch VALUES (?)", [(bytes(3000),) for _ in range(500)])
        with store.db.write() as conn:
            conn.execute("DROP TABLE scratch")
        free = store.db.conn.execute("PRAGMA freelist_count").fetchall()[0][0]
        assert free > 300
        pages = store.db.conn.execute("PRAGMA page_count").fetchall()[0][0]
        assert store.db.release_free_pages() == free
        assert store.db.conn.execute("PRAGMA freelist_count").fetchall()[0][0] == 0
        assert store.db.conn.execute("PRAGMA page_count").fetchall()[0][0] == pages - free


def test_compact_gives_an_older_database_incremental_vacuum(tmp_path, monkeypatch):
    from eventstore import storage

    db = tmp_path / "old.db"
    with monkeypatch.context() as m:  # a database from before the setting existed
        m.setattr(storage, "SETTINGS", tuple(s for s in storage.SETTINGS if s is not storage.use_incremental_vacuum))
        with Store(db) as store:
            store.append([new_event("a", transcript_like(i)) for i in range(50)])
    with Store(db) as store:  # the setting alone cannot change an existing file
        assert store.db.conn.execute("PRAGMA auto_vacuum").fetchall() == [(0,)]
        assert store.db.release_free_pages() == 0
    run_cli("compact", db=db)
    with Store(db) as store:
        assert store.db.conn.execute("PRAGMA auto_vacuum").fetchall() == [(2,)]
        assert [e.data for e in store.read_all()] == [transcript_like(i) for i in range(50)]


def test_replay_gives_the_replaced_tables_pages_back(tmp_path):
    import apsw

    root = tmp_path / "projects" / "-p"
    root.mkdir(parents=True)
    lines = [b'{"type":"user","sessionId":"s1","uuid":"u%d","timestamp":"2026-01-01T00:00:%02d.000Z",'
             b'"message":{"role":"user","content":"the %d-th request about %s"}}\n' % (i, i % 60, i, b"x" * 300)
             for i in range(400)]
    (root / "s1.jsonl").write_bytes(b"".join(lines))
    db = tmp_path / "e.db"
    run_cli("ingest", str(tmp_path / "projects"), db=db)
    run_cli("replay", db=db)
    conn = apsw.Connection(str(db))
    assert conn.execute("PRAGMA freelist_count").fetchall() == [(0,)]
    assert json.loads(run_cli("sessions", "--json", db=db).stdout)["sessions"][0]["messages"] == 400


def test_releasing_free_pages_gives_way_to_another_writer(tmp_path, monkeypatch):
    import apsw

    from eventstore import storage

    db = tmp_path / "e.db"
    with Store(db) as store:
        store.append([new_event("a", transcript_like(i)) for i in range(50)])
        monkeypatch.setattr(storage, "WRITE_RETRY_SECONDS", 0.2)
        store.db.conn.set_busy_timeout(10)
        other = apsw.Connection(str(db))
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            assert store.db.release_free_pages() == 0  # the pages stay for reuse; no error
        finally:
            other.execute("ROLLBACK")
            other.close()
