"""Payload compression: any bytes come back exactly, with and without dictionaries, across changes."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from conftest import new_event
from eventstore import Store
from eventstore import codec as codec_module


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=2000), min_size=1, max_size=20))
def test_any_bytes_round_trip(tmp_path_factory, payloads):
    path = tmp_path_factory.mktemp("codec") / "e.db"
    with Store(path) as s:
        s.append([new_event("x", p) for p in payloads])
        assert [e.data for e in s.read_all()] == payloads


def test_round_trip_across_dictionary_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(codec_module, "FIRST_TRAINING_AT", 300)
    payloads = [
        b'{"type":"user","message":{"role":"user","content":"please fix bug %d in module %d"},"n":%d}' % (i, i % 7, i)
        for i in range(12000)
    ]
    with Store(tmp_path / "e.db") as s:
        for start in range(0, len(payloads), 250):
            s.append([new_event(f"s{start % 3}", p) for p in payloads[start:start + 250]])
            codec_module._training_thread().submit(int).result()  # dictionaries train in the background
        dicts = s.db.conn.execute("SELECT dict_id, trained_at FROM dictionaries ORDER BY dict_id").fetchall()
        assert len(dicts) >= 2, "a first and a later, retrained dictionary"
        used = {d for (d,) in s.db.conn.execute(
            "SELECT dict_id FROM events UNION SELECT dict_id FROM blocks")}
        assert {0, dicts[0][0], dicts[-1][0]} <= used
        assert [e.data for e in s.read_all()] == payloads
    with Store(tmp_path / "e.db") as s:  # a fresh process knows only what the file holds
        assert [e.data for e in s.read_all()] == payloads
        stored = s.db.conn.execute(
            "SELECT (SELECT sum(length(data)) FROM events) + (SELECT sum(length(data)) FROM blocks)").fetchall()[0][0]
        assert stored < sum(map(len, payloads)) / 2


def test_a_write_transaction_adopts_a_dictionary_another_store_added(tmp_path, monkeypatch):
    monkeypatch.setattr(codec_module, "FIRST_TRAINING_AT", 300)
    line = b'{"type":"assistant","message":{"role":"assistant","content":"step %d of the plan, module %d"}}'
    with Store(tmp_path / "e.db") as trainer, Store(tmp_path / "e.db") as other:
        other.append([new_event("b", line % (0, 0))])  # its codec has read the table: no dictionary yet
        for start in range(0, 1500, 250):
            trainer.append([new_event("a", line % (i, i % 5)) for i in range(start, start + 250)])
            codec_module._training_thread().submit(int).result()  # dictionaries train in the background
        trainer.append([new_event("a", line % (1500, 0))])  # stores the trained dictionary
        (newest,) = trainer.db.conn.execute("SELECT max(dict_id) FROM dictionaries").fetchall()[0]
        assert newest, "the trainer stored a dictionary"

        other.append([new_event("b", line % (1501, 1))])
        (dict_id,) = other.db.conn.execute("SELECT dict_id FROM events ORDER BY position DESC LIMIT 1").fetchall()[0]
        assert dict_id == newest
        assert [e.data for e in other.read_stream("b")] == [line % (0, 0), line % (1501, 1)]
