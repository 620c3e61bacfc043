"""store.BatchReader (a replay's reads, one batch ahead) gives exactly what read_all gives."""

from __future__ import annotations

import json

from eventstore import Store
from eventstore.redact import redact
from eventstore.store import BatchReader
from conftest import new_event


def _fill(store: Store, n: int, start: int = 0) -> None:
    # Bulk appends store runs of payloads as blocks; a large payload is stored alone.
    events = []
    for i in range(start, start + n):
        body = {"i": i, "name": f"e{i}", "text": "x" * (40_000 if i % 97 == 5 else 30 + i % 50)}
        events.append(new_event(stream=f"s{i % 3}", type=("a", "b", "c")[i % 3], data=json.dumps(body).encode()))
    store.append(events)


def _batches(reader: BatchReader) -> list:
    out, after = [], 0
    while events := reader.read(after):
        out.append(events)
        after = events[-1].position
    reader.close()
    return out


def _expected(store: Store, limit: int, **filters) -> list:
    out, after = [], 0
    while events := store.read_all(after, limit, **filters):
        out.append(events)
        after = events[-1].position
    return out


def test_batches_equal_read_all_with_and_without_filters(store):
    _fill(store, 700)
    for filters in ({}, {"types": ["a", "b"]}, {"types": ["a", "b", "c"], "payload_types": ["b"]}):
        for limit in (1, 64, 250, 10_000):
            assert _batches(BatchReader(store, limit, **filters)) == _expected(store, limit, **filters)


def test_a_batch_read_ahead_is_read_again_after_another_connection_commits(store, tmp_path):
    _fill(store, 300)
    reader = BatchReader(store, 100)
    first = reader.read(0)  # and the next batch is fetched and decompressing already
    with Store(tmp_path / "events.db") as other:  # a redaction by another connection rewrites it
        assert redact(other, "^e1[0-9][0-9]$").events == 100
    rest = []
    after = first[-1].position
    while events := reader.read(after):
        rest.append(events)
        after = events[-1].position
    reader.close()
    assert [first, *rest] == _expected(store, 100)
    assert all(b"[REDACTED]" in event.data for event in rest[0])
