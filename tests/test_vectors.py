"""The vector projection: offline embedder, asynchronous queue, rebuild on an embedder change."""

from __future__ import annotations

import json
import math
import uuid

from eventstore import NewEvent
from projections import memories
from projections.embedders import Embedder, HashedLexicalEmbedder
from projections.runner import Runner
from projections.search import reader, search
from projections.vectors import VectorsProjection, embed_pending, pending_count, quantize


def user_line(session: str, text: str) -> NewEvent:
    data = json.dumps({"type": "user", "sessionId": session, "cwd": "/w/proj", "uuid": uuid.uuid4().hex,
                       "timestamp": "2026-03-01T00:00:00.000Z", "message": {"role": "user", "content": text}})
    return NewEvent(event_id=uuid.uuid4().hex, stream=f"claude:session:{session}", type="claude.user",
                    entity="transcript_record", entity_id=session, op="create", data=data.encode())


def vec_tables(store) -> list[str]:
    return [r[0] for r in reader(store)(
        "SELECT name FROM sqlite_schema WHERE name GLOB 'vec_index_*' AND sql LIKE 'CREATE VIRTUAL%'")]


def test_hashed_lexical_embedder_is_deterministic_normalised_and_lexical():
    embedder = HashedLexicalEmbedder(dimension=128)
    assert isinstance(embedder, Embedder)
    a, b, c, empty = embedder.embed(["Database locking errors", "database lock error", "banana smoothie", "..."])
    assert len(a) == 128 and abs(math.sqrt(sum(x * x for x in a)) - 1) < 1e-9
    assert embedder.embed(["Database locking errors"])[0] == a
    cos = lambda x, y: sum(p * q for p, q in zip(x, y))  # noqa: E731
    assert cos(a, b) > cos(a, c) + 0.2
    assert not any(empty) and quantize(empty) == b""
    assert max(abs(v - 256 if v > 127 else v) for v in quantize(a)) == 127


def test_apply_only_enqueues_and_embed_pending_fills_the_index(store):
    embedder = HashedLexicalEmbedder(dimension=64)
    runner = Runner(store, [VectorsProjection(embedder)])
    store.append([user_line("s1", f"message number {i} about kangaroos") for i in range(10)])
    runner.catch_up()
    assert pending_count(store) == 10
    assert search(store, "kangaroos", mode="vector", embedder=embedder, embed_first=0) == []
    assert embed_pending(store, 4, embedder=embedder) == 4 and pending_count(store) == 6
    assert embed_pending(store, embedder=embedder) == 6 and pending_count(store) == 0
    hits = search(store, "kangaroos", mode="vector", embedder=embedder, embed_first=0, limit=20)
    assert len(hits) == 10 and all(h.session_id == "s1" and h.role == "user" for h in hits)
    runner.close()


def test_changing_the_embedder_rebuilds_the_index(store):
    small, large = HashedLexicalEmbedder(dimension=32), HashedLexicalEmbedder(dimension=96)
    runner = Runner(store, [VectorsProjection(small)])
    store.append([user_line("s1", "wombats dig burrows"), user_line("s2", "penguins cannot fly")])
    memory = memories.add(store, "wombat facts live here")
    runner.catch_up()
    embed_pending(store, embedder=small)
    (first_index,) = vec_tables(store)
    runner.close()

    runner = Runner(store, [VectorsProjection(large)])
    report = runner.catch_up()
    assert report.rebuilt == ["vectors"]
    state = dict(reader(store)("SELECT key, value FROM vec_state"))
    assert state["dimension"] == "96" and state["embedder"] == large.name
    assert search(store, "wombats", mode="vector", embedder=small, embed_first=0) == []  # the old model is gone
    embed_pending(store, embedder=large)
    assert vec_tables(store) == [state["index"]] != [first_index]  # the old vec0 table was dropped
    hits = search(store, "wombat burrows", mode="vector", embedder=large, embed_first=0)
    assert {h.kind for h in hits} == {"message", "memory"} and hits[0].session_id == "s1"
    memories.forget(store, memory.memory_id)
    runner.catch_up()
    hits = search(store, "wombat burrows", mode="vector", embedder=large, embed_first=0)
    assert {h.kind for h in hits} == {"message"}
    runner.close()


def other_line(session: str) -> NewEvent:
    """A transcript event no vector is made of (not a message type), between message events."""
    return NewEvent(event_id=uuid.uuid4().hex, stream=f"claude:session:{session}", type="claude.other",
                    entity="transcript_record", entity_id=session, op="create", data=b'{"type": "progress"}')


def test_the_queue_is_one_range_per_batch_and_counts_exactly(store):
    embedder = HashedLexicalEmbedder(dimension=64)
    runner = Runner(store, [VectorsProjection(embedder)])
    store.append([user_line("s1", f"first batch {i} about emus") for i in range(5)] + [other_line("s1")])
    runner.catch_up()
    memories.add(store, "emus cannot fly either")
    store.append([user_line("s2", f"second batch {i} about emus") for i in range(3)] + [other_line("s2")]
                 + [user_line("s2", f"second batch {i} about emus") for i in range(3, 5)])
    runner.catch_up()
    assert reader(store)("SELECT count(*) FROM vec_pending")[0][0] == 2
    assert pending_count(store) == 11  # ten messages and a memory; the other events are not counted
    assert embed_pending(store, 8, embedder=embedder) == 8 and pending_count(store) == 3
    assert reader(store)("SELECT count(*) FROM vec_pending")[0][0] == 1
    assert embed_pending(store, embedder=embedder) == 3 and pending_count(store) == 0
    assert reader(store)("SELECT count(*) FROM vec_pending")[0][0] == 0
    hits = search(store, "emus", mode="vector", embedder=embedder, embed_first=0, limit=20)
    assert sorted(h.kind for h in hits) == ["memory"] + ["message"] * 10
    assert len({h.event_position for h in hits}) == 11
    runner.close()
