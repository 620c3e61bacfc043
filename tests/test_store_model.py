"""A hypothesis state machine: random appends, reads and reopenings agree with an in-memory model."""

from __future__ import annotations

import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from conftest import new_event
from eventstore import EventIdConflict, ExpectedVersion, Store, WrongExpectedVersion

STREAMS = ["a", "b", "c"]
expected_versions = st.one_of(
    st.just(ExpectedVersion.ANY), st.just(ExpectedVersion.NO_STREAM), st.just(ExpectedVersion.EXISTS),
    st.integers(min_value=1, max_value=6),
)
payloads = st.binary(max_size=300) | st.text(max_size=200).map(str.encode)


class LogModel(RuleBasedStateMachine):
    """The model: a list of (event_id, stream, data) in log order."""

    appended = Bundle("appended")

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "events.db"
        self.store = Store(self.path)
        self.log: list[tuple[str, str, bytes]] = []

    def teardown(self) -> None:
        self.store.close()
        self.dir.cleanup()

    def version(self, stream: str) -> int:
        return sum(1 for _, s, _ in self.log if s == stream)

    def holds(self, expected: int, stream: str) -> bool:
        actual = self.version(stream)
        if expected == ExpectedVersion.ANY:
            return True
        if expected == ExpectedVersion.EXISTS:
            return actual > 0
        return actual == expected

    @rule(target=appended, stream=st.sampled_from(STREAMS), datas=st.lists(payloads, min_size=1, max_size=4),
          expected=expected_versions)
    def append_new(self, stream, datas, expected):
        events = [new_event(stream, d) for d in datas]
        if self.holds(expected, stream):
            positions = self.store.append(events, expected)
            assert positions == list(range(len(self.log) + 1, len(self.log) + 1 + len(events)))
            self.log.extend((e.event_id, stream, e.data) for e in events)
        else:
            try:
                self.store.append(events, expected)
            except WrongExpectedVersion as exc:
                assert exc.actual == self.version(stream)
            else:
                raise AssertionError("a wrong expected version was accepted")
        return events[0]

    @rule(target=appended, items=st.lists(st.tuples(st.sampled_from(STREAMS), payloads), min_size=1, max_size=40),
          repeat_from=st.integers(min_value=0, max_value=40))
    def append_mixed(self, items, repeat_from):
        """A batch of interleaved streams (bulk from 32 events: blocks across streams), which may
        end with copies of events already stored."""
        events = [new_event(stream, d) for stream, d in items]
        copies = [new_event(stream, d, event_id=eid) for eid, stream, d in self.log[repeat_from:repeat_from + 3]]
        positions = self.store.append(events + copies)
        first = len(self.log) + 1
        assert positions == list(range(first, first + len(events))) + [
            repeat_from + 1 + i for i in range(len(copies))]
        self.log.extend((e.event_id, e.stream, e.data) for e in events)
        return events[-1]

    @rule(event=appended)
    def append_again(self, event):
        """Re-appending a stored id with the same content returns its position and adds nothing."""
        stored = [i for i, (eid, _, _) in enumerate(self.log) if eid == event.event_id]
        positions = self.store.append([event])
        if stored:
            assert positions == [stored[0] + 1]
        else:  # it was rejected earlier, so now it is simply new
            self.log.append((event.event_id, event.stream, event.data))

    @rule(event=appended, data=payloads)
    def append_conflicting(self, event, data):
        stored = any(eid == event.event_id for eid, _, _ in self.log)
        clash = new_event(event.stream, event.data + b"!" + data, event_id=event.event_id)
        if stored:
            try:
                self.store.append([clash])
            except EventIdConflict:
                pass
            else:
                raise AssertionError("a conflicting event id was accepted")

    @rule()
    def reopen(self):
        self.store.close()
        self.store = Store(self.path)

    @precondition(lambda self: self.log)
    @rule(after=st.integers(min_value=0, max_value=30), limit=st.integers(min_value=1, max_value=10))
    def read_page(self, after, limit):
        page = self.store.read_all(after, limit)
        assert [(e.event_id, e.stream, e.data) for e in page] == self.log[after:after + limit]

    @invariant()
    def streams_agree(self):
        for stream in STREAMS:
            events = self.store.read_stream(stream)
            assert [(e.event_id, e.data) for e in events] == [(eid, d) for eid, s, d in self.log if s == stream]
            assert [e.version for e in events] == list(range(1, len(events) + 1))
            assert self.store.stream_version(stream) == len(events)

    @precondition(lambda self: self.log)
    @rule(stream=st.sampled_from(STREAMS), from_version=st.integers(min_value=1, max_value=60))
    def read_stream_from(self, stream, from_version):
        expected = [(eid, d) for eid, s, d in self.log if s == stream][from_version - 1:]
        assert [(e.event_id, e.data) for e in self.store.read_stream(stream, from_version)] == expected

    @invariant()
    def head_agrees(self):
        assert self.store.head() == len(self.log)


LogModel.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestLogModel = LogModel.TestCase


