"""The projection runner: exactly-once catch-up, inline apply, version rebuilds, error isolation, swap."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading

import pytest

from conftest import run_cli
from eventstore import Store
from eventstore.cli.projections import ANNOUNCED
from projections.facts import fork_is_safe, helper_count
from projections.runner import INLINE_MAX, RebuildBusy, Runner, UnknownProjection, check_tables
from projection_helpers import Counter, counts, new_event


def append_types(store: Store, *types: str) -> None:
    store.append([new_event(type_=t) for t in types])


def checkpoint(store: Store, name: str = "counter") -> tuple:
    return store.db.conn.execute(
        "SELECT version, position, generation FROM projection_checkpoints WHERE name = ?", (name,)
    ).fetchall()[0]


class Crash(BaseException):
    """Stands for the process dying mid-transaction (not an Exception, so nothing isolates it)."""


class CrashingCounter(Counter):
    def __init__(self, crash_on_batch: int, **kw) -> None:
        super().__init__(**kw)
        self.crash_on_batch = crash_on_batch

    def apply(self, tx, events, prefix):
        super().apply(tx, events, prefix)
        if self.batches == self.crash_on_batch:
            raise Crash()


def test_catch_up_is_exactly_once_across_a_crash(store):
    append_types(store, *"abababa")
    runner = Runner(store, [CrashingCounter(crash_on_batch=2)], batch_size=3)
    with pytest.raises(Crash):
        runner.catch_up()
    assert counts(store.db.conn) == {"a": 2, "b": 1}  # the first batch only, with its checkpoint
    assert checkpoint(store)[1] == 3
    runner.close()
    runner = Runner(store, [Counter()], batch_size=3)
    runner.catch_up()
    runner.catch_up()
    assert counts(store.db.conn) == {"a": 4, "b": 3}
    assert checkpoint(store) == ("1", 7, 0)


def test_catch_up_asked_to_stop_ends_at_its_next_commit_and_the_next_goes_on(store):
    """Ctrl-C in ingest or tail asks a long catch-up to stop: it ends at its next commit, keeping
    what it applied, instead of running to the head."""
    import threading

    class StoppingCounter(Counter):
        def apply(self, tx, events, prefix):
            super().apply(tx, events, prefix)
            stop.set()  # as Ctrl-C would, during the first batch

    stop = threading.Event()
    append_types(store, *"abababa")
    runner = Runner(store, [StoppingCounter()], batch_size=3)
    runner.catch_up(stop=stop)
    assert counts(store.db.conn) == {"a": 2, "b": 1}  # the first batch only, with its checkpoint
    assert checkpoint(store)[1] == 3
    runner.catch_up()
    assert counts(store.db.conn) == {"a": 4, "b": 3}
    assert checkpoint(store)[1] == 7


def test_catch_up_reads_only_handled_types_and_checkpoints_past_the_rest(store):
    append_types(store, "a", "b", "c", "a")
    runner = Runner(store, [Counter(handles=frozenset({"a"}))], batch_size=1)
    runner.catch_up()
    assert counts(store.db.conn) == {"a": 2}
    assert checkpoint(store)[1] == store.head()


def test_inline_projection_applies_in_the_append_transaction(store):
    runner = Runner(store, [Counter(inline=True)])
    runner.catch_up()
    append_types(store, "a", "a")
    assert counts(store.db.conn) == {"a": 2}
    assert checkpoint(store)[1] == store.head()


def test_inline_projection_behind_is_left_to_catch_up(store, tmp_path):
    runner = Runner(store, [Counter(inline=True)])
    runner.catch_up()
    with Store(tmp_path / "events.db") as other:  # another process, no runner attached
        append_types(other, "b")
    append_types(store, "a")  # checkpoint is not at this batch's start: not applied inline
    assert counts(store.db.conn) == {}
    runner.catch_up()
    assert counts(store.db.conn) == {"a": 1, "b": 1}


def test_an_append_of_inline_max_events_is_left_to_catch_up(store):
    runner = Runner(store, [Counter(inline=True)])
    runner.catch_up()
    append_types(store, *"a" * (INLINE_MAX - 1))  # a tail's append: applied inline
    assert counts(store.db.conn) == {"a": INLINE_MAX - 1}
    append_types(store, *"b" * INLINE_MAX)  # a bulk ingest's batch: left to catch_up
    append_types(store, "c")  # behind now, so this one too
    assert counts(store.db.conn) == {"a": INLINE_MAX - 1}
    assert checkpoint(store)[1] == INLINE_MAX - 1
    runner.catch_up()
    assert counts(store.db.conn) == {"a": INLINE_MAX - 1, "b": INLINE_MAX, "c": 1}
    assert checkpoint(store)[1] == store.head()


def test_a_failing_inline_projection_never_fails_the_append(store):
    class Broken(Counter):
        def apply(self, tx, events, prefix):
            tx.execute("INSERT INTO no_such_table VALUES (1)")

    runner = Runner(store, [Broken(inline=True)])
    runner.catch_up()
    append_types(store, "a")
    assert store.head() == 1
    runner.catch_up()  # isolates the event as an error instead
    assert [e.position for e in runner.errors()] == [1]


def test_changed_version_rebuilds_from_zero(store):
    append_types(store, "a", "b")
    Runner(store, [Counter(version="1")]).catch_up()
    store.db.conn.execute("UPDATE counts SET n = 99")  # stale rows the rebuild must not keep
    runner = Runner(store, [Counter(version="2")])
    report = runner.catch_up()
    assert report.rebuilt == ["counter"]
    assert counts(store.db.conn) == {"a": 1, "b": 1}
    version, position, generation = checkpoint(store)
    assert (version, position) == ("2", 2) and generation > 0


def test_failing_event_is_recorded_and_skipped_without_stopping_others(store):
    store.append([new_event(type_="a"), new_event(type_="a", data=b"poison"), new_event(type_="b")])
    runner = Runner(store, [Counter(), Counter(name="other", table="others")], batch_size=10)
    report = runner.catch_up()
    assert report.errors == 2
    assert counts(store.db.conn) == {"a": 1, "b": 1}
    assert counts(store.db.conn, "others") == {"a": 1, "b": 1}
    errors = runner.errors("counter")
    assert [(e.position, e.reason) for e in errors] == [(2, "ValueError: cannot apply event 2")]
    assert {s.name: (s.position, s.errors) for s in runner.status()} == {"counter": (3, 1), "other": (3, 1)}


def test_errors_of_an_old_generation_go_with_a_rebuild(store):
    store.append([new_event(type_="a", data=b"poison")])
    Runner(store, [Counter()]).catch_up()

    class Fixed(Counter):
        def apply(self, tx, events, prefix):
            super().apply(tx, [e for e in events if e.data != b"poison"], prefix)

    runner = Runner(store, [Fixed(version="2")])
    runner.catch_up()
    assert runner.errors() == []


def test_rebuild_swaps_at_the_end_and_readers_see_old_rows_until_then(store, tmp_path):
    append_types(store, *"aaaaaa")
    runner = Runner(store, [Counter()], batch_size=2)
    runner.catch_up()
    seen = []

    def during(position: int, head: int) -> None:
        with Store(tmp_path / "events.db") as reader:
            seen.append(counts(reader.db.conn))
            if len(seen) == 1:
                append_types(reader, "b")  # a writer is not blocked; the rebuild picks it up

    report = runner.rebuild()
    runner.rebuild(progress=during)
    assert report.events == 6 and report.projections == ["counter"]
    assert seen[0] == {"a": 6}  # the old table, whole, while r<g>_counts was half built
    assert all(s in ({"a": 6}, {"a": 6, "b": 1}) for s in seen)
    assert counts(store.db.conn) == {"a": 6, "b": 1}
    assert checkpoint(store)[1] == store.head() == 7
    tables = {n for (n,) in store.db.conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert not {t for t in tables if t.startswith("r") and t.endswith("_counts")}


def test_abandoned_rebuild_is_cleaned_up_before_the_next(store):
    append_types(store, *"abcabc")
    Runner(store, [Counter()]).catch_up()
    runner = Runner(store, [CrashingCounter(crash_on_batch=2)], batch_size=2)
    with pytest.raises(Crash):
        runner.rebuild()
    runner.close()
    tables = {n for (n,) in store.db.conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    leftovers = {t for t in tables if t.endswith("_counts") and t != "counts"}
    assert leftovers  # the crash left a half-built generation behind
    assert counts(store.db.conn) == {"a": 2, "b": 2, "c": 2}  # live rows untouched
    runner = Runner(store, [Counter()], batch_size=2)
    runner.rebuild()
    tables = {n for (n,) in store.db.conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert not tables & leftovers
    assert store.db.conn.execute("SELECT count(*) FROM projection_rebuilds").fetchall()[0][0] == 0
    assert counts(store.db.conn) == {"a": 2, "b": 2, "c": 2}


class StoppingCounter(Counter):
    """Sets `stop` (as Ctrl-C would) while it applies its `stop_on_batch`th batch."""

    def __init__(self, stop: threading.Event, stop_on_batch: int, **kw) -> None:
        super().__init__(**kw)
        self.stop, self.stop_on_batch = stop, stop_on_batch

    def apply(self, tx, events, prefix):
        super().apply(tx, events, prefix)
        if self.batches == self.stop_on_batch:
            self.stop.set()


class PositionsCounter(Counter):
    """Counter that also remembers the positions it applied."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.applied: list[int] = []

    def apply(self, tx, events, prefix):
        super().apply(tx, events, prefix)
        self.applied += [e.position for e in events]


def rebuild_tables(store: Store) -> set[str]:
    return {n for (n,) in store.db.conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
            if n.startswith("r") and n.endswith("_counts")}


def test_a_stopped_rebuild_for_a_new_version_is_resumed_by_the_next_catch_up(store):
    """Ctrl-C during the rebuild an upgrade starts used to be ignored until the whole log was
    read again; now it stops at the next commit, leaves the live tables as they were, and the next
    catch-up goes on from where it stopped."""
    append_types(store, *"abcabcabca")
    Runner(store, [Counter(version="1")]).catch_up()
    store.db.conn.execute("UPDATE counts SET n = n + 100")  # marks the live rows
    stop = threading.Event()
    stopping = Runner(store, [StoppingCounter(stop, 2, version="2")], rebuild_batch_size=3, helpers=0)
    report = stopping.catch_up(stop=stop)
    assert report.rebuilt == [] and report.events == 6  # two batches of three, then it stopped
    assert counts(store.db.conn) == {"a": 104, "b": 103, "c": 103}  # the live rows, untouched
    assert checkpoint(store)[:2] == ("1", 10)
    assert [s.stored_version for s in stopping.status()] == ["1"]
    assert store.db.conn.execute("SELECT position, version FROM projection_rebuilds").fetchall() == [(6, "2")]
    half_built = rebuild_tables(store)
    assert len(half_built) == 1

    append_types(store, "b")  # the log grows meanwhile: the resumed rebuild reads that too
    resumed = PositionsCounter(version="2")
    report = Runner(store, [resumed], rebuild_batch_size=3, helpers=0).catch_up()
    assert report.rebuilt == ["counter"] and report.events == 5
    assert resumed.applied == [7, 8, 9, 10, 11]  # from where the first one stopped
    assert counts(store.db.conn) == {"a": 4, "b": 4, "c": 3}
    assert checkpoint(store)[:2] == ("2", 11)
    assert rebuild_tables(store) == set()
    assert store.db.conn.execute("SELECT count(*) FROM projection_rebuilds").fetchall()[0][0] == 0


def test_a_stopped_rebuild_is_started_again_for_another_version_or_a_replay(store):
    append_types(store, *"abcabcabca")
    Runner(store, [Counter(version="1")]).catch_up()
    stop = threading.Event()
    Runner(store, [StoppingCounter(stop, 1, version="2")], rebuild_batch_size=3, helpers=0).catch_up(stop=stop)
    first = rebuild_tables(store)
    other = PositionsCounter(version="3")  # not the version the half-built tables hold
    assert Runner(store, [other], rebuild_batch_size=3, helpers=0).catch_up().rebuilt == ["counter"]
    assert other.applied == list(range(1, 11))
    assert counts(store.db.conn) == {"a": 4, "b": 3, "c": 3}

    stop.clear()
    Runner(store, [StoppingCounter(stop, 1, version="4")], rebuild_batch_size=3, helpers=0).catch_up(stop=stop)
    assert rebuild_tables(store) and rebuild_tables(store) != first
    replayed = PositionsCounter(version="4")
    Runner(store, [replayed], rebuild_batch_size=3, helpers=0).rebuild()  # replay reads the whole log again
    assert replayed.applied == list(range(1, 11))
    assert checkpoint(store)[:2] == ("4", 10) and rebuild_tables(store) == set()


def test_one_rebuild_at_a_time(store):
    append_types(store, "a")
    first = Runner(store, [Counter()])
    first.catch_up()
    second = Runner(store, [Counter(version="2")])
    with first._rebuild_lock():
        with pytest.raises(RebuildBusy):
            second.rebuild()
        assert second.catch_up().skipped == ["counter"]
    assert second.catch_up().rebuilt == ["counter"]


def test_unknown_projection_name(store):
    with pytest.raises(UnknownProjection, match="known: counter"):
        Runner(store, [Counter()]).rebuild(["nope"])


def test_for_store_returns_one_runner_per_store(store):
    runner = Runner.for_store(store)
    assert Runner.for_store(store) is runner
    assert store.after_append.count(runner._after_append) == 1




@pytest.mark.parametrize("table", ["events", "EVENTS", "streams", "sources", "migrations", "projection_checkpoints",
                                   "sqlite_stat1", "r3_counts"])
def test_a_projection_cannot_own_the_logs_tables(store, table):
    append_types(store, "a")
    with pytest.raises(ValueError, match="may not own"):
        Runner(store, [Counter(table=table)])
    assert store.head() == 1  # and nothing was dropped


def test_two_projections_cannot_share_a_table():
    with pytest.raises(ValueError, match="both own"):
        check_tables([Counter(), Counter(name="other")])


# The replay command


def test_replay_json_shape(tmp_path):
    import json

    from click.testing import CliRunner

    from eventstore.cli import main

    db = tmp_path / "events.db"
    with Store(db) as s:
        s.append([new_event(stream="claude:session:x", type_="claude.system",
                            data=b'{"type":"system","sessionId":"x"}', occurred_at=1)])
    result = CliRunner().invoke(main, ["--db", str(db), "replay", "--projection", "sessions",
                                       "--projection", "tasks", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"events", "seconds", "events_per_second", "projections"}
    assert report["projections"] == ["sessions", "tasks"] and report["events"] == 1
    unknown = CliRunner().invoke(main, ["--db", str(db), "replay", "--projection", "nope"])
    assert unknown.exit_code == 1 and "no projection named nope" in unknown.output


def _at_a_terminal(args: list[str], *, stdout_too: bool = True) -> tuple[subprocess.CompletedProcess, str]:
    """Run the real command with stderr (and stdout, unless not `stdout_too`: then it is captured)
    a pseudo-terminal: (the process, what the terminal showed)."""
    leader, follower = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "eventstore", *args], stderr=follower, timeout=120,
                                stdout=follower if stdout_too else subprocess.PIPE)
    finally:
        os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal's other end is closed: all of it has been read
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return result, shown.decode(errors="replace")


@pytest.mark.skipif(helper_count() < 2, reason="helper processes need two cores or more")
def test_replay_at_a_terminal_draws_progress_and_still_reads_with_helpers(tmp_path):
    db = tmp_path / "events.db"
    with Store(db) as store:
        store.append([new_event(type_="t.x") for _ in range(6_000)])  # long enough for helpers (sessions reads none)
    result, shown = _at_a_terminal(["--db", str(db), "replay", "--projection", "sessions"])
    assert result.returncode == 0
    assert "replaying" in shown  # the progress bar was drawn
    assert "replayed " in shown and f"read by {helper_count()} helper processes)" in shown


def test_a_long_catch_up_is_announced_to_people_at_a_terminal_and_to_no_one_else(tmp_path):
    events = [new_event(type_="t.x") for _ in range(ANNOUNCED)]
    piped, at_terminal = tmp_path / "piped.db", tmp_path / "terminal.db"
    for db in (piped, at_terminal):
        with Store(db) as store:
            store.append(events)  # sessions and usage never built: each has the whole log to read

    result = run_cli("sessions", "--json", db=piped)
    assert json.loads(result.stdout) == {"sessions": []} and result.stderr == b""

    result, told = _at_a_terminal(["--db", str(at_terminal), "sessions", "--json"], stdout_too=False)
    assert result.returncode == 0 and json.loads(result.stdout) == {"sessions": []}
    lines = told.splitlines()
    assert lines[0] == f"updating sessions, usage from {ANNOUNCED:,} events of the log..."
    assert lines[1].startswith("updated in ") and lines[1].endswith(" s")


def test_ingest_with_its_progress_bar_starts_no_thread_that_would_keep_the_helpers_away(tmp_path, monkeypatch):
    import threading

    from conftest import load_generator
    from eventstore.cli.ingest import _ingest_with_progress
    from eventstore.ingest import Ingester

    root = tmp_path / "projects"
    load_generator().generate(root, 300_000, seed=5)
    during: list[set[str]] = []
    ingest = Ingester.ingest

    def watched(self, roots):  # the real ingest, noting which threads run beside it
        during.append({t.name for t in threading.enumerate()})
        return ingest(self, roots)

    monkeypatch.setattr(Ingester, "ingest", watched)
    with Store(tmp_path / "events.db") as store:
        report = _ingest_with_progress(store, [root])
        assert report.events_appended > 0
        assert during and all(name == "MainThread" or name.startswith("eventstore-") for name in during[0])
        assert fork_is_safe()  # the projections are built next, by forked helpers
