"""Rebuilds that read the log in helper processes (projections.facts) build exactly what an
in-process rebuild and an incremental catch-up build.

Everything here is real: a generated transcript tree ingested into a SQLite file, the runner's
own forked helpers. That helpers really did the reading is shown by a projection that records,
with each batch's facts, the id of the process that worked them out.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest

from conftest import load_generator
from eventstore import Store
from eventstore.ingest import Ingester
from eventstore.ingest.sources import transcript_files
from projection_helpers import Counter, counts, new_event
from projections import memories
from projections.facts import has_facts
from projections.fulltext import FulltextProjection
from projections.memories import MemoriesProjection
from projections.runner import Runner
from projections.sessions import SessionsProjection, key_holders, list_sessions
from projections.tasks import TasksProjection, list_tasks
from projections.usage import UsageProjection
from projections.usage_report import build_report
from projections.vectors import VectorsProjection

PARENT = os.getpid()
BATCH = 200  # a rebuild's ranges are a quarter of this: a few thousand events make dozens of ranges


class PidCounter:
    """Counts events per type, and which process worked out the facts of each batch."""

    version = "1"
    handles: frozenset[str] | None = None
    inline = False

    def __init__(self, name: str = "pids") -> None:
        self.name = name
        self.tables = (f"{name}_counts",)

    def create(self, tx, prefix: str) -> None:
        tx.execute(f"CREATE TABLE {prefix}{self.tables[0]} (pid INTEGER NOT NULL, type TEXT NOT NULL,"
                   " n INTEGER NOT NULL, PRIMARY KEY (pid, type))")

    def facts(self, events: Sequence) -> tuple[int, dict[str, int]]:
        found: dict[str, int] = {}
        for event in events:
            found[event.type] = found.get(event.type, 0) + 1
        return os.getpid(), found

    def apply_facts(self, tx, facts: tuple[int, dict[str, int]], prefix: str) -> None:
        pid, found = facts
        tx.executemany(f"INSERT INTO {prefix}{self.tables[0]} (pid, type, n) VALUES (?, ?, ?)"
                       " ON CONFLICT (pid, type) DO UPDATE SET n = n + excluded.n",
                       [(pid, type_, n) for type_, n in found.items()])

    def apply(self, tx, events: Sequence, prefix: str) -> None:
        self.apply_facts(tx, self.facts(events), prefix)


def pid_state(conn, table: str = "pids_counts") -> tuple[set[int], dict[str, int]]:
    """(the processes that worked out facts, events per type whoever worked them out)."""
    pids = {pid for (pid,) in conn.execute(f"SELECT DISTINCT pid FROM {table}").fetchall()}
    per_type = dict(conn.execute(f"SELECT type, sum(n) FROM {table} GROUP BY type").fetchall())
    return pids, per_type


class FactsCounter(Counter):
    """Counter split into facts and apply_facts; b"poison" fails in `facts` or in `apply_facts`."""

    def __init__(self, *, fails_in: str = "facts", helper_only: bool = False, **kw) -> None:
        super().__init__(**kw)
        self.fails_in, self.helper_only = fails_in, helper_only

    def facts(self, events: Sequence) -> list[tuple[int, str, bool]]:
        out = []
        for event in events:
            poison = event.data == b"poison"
            if self.helper_only and os.getpid() != PARENT:
                raise RuntimeError("helpers cannot work this out")
            if poison and self.fails_in == "facts":
                raise ValueError(f"cannot apply event {event.position}")
            out.append((event.position, event.type, poison))
        return out

    def apply_facts(self, tx, facts: list[tuple[int, str, bool]], prefix: str) -> None:
        table = prefix + self.tables[0]
        for position, type_, poison in facts:
            if poison:
                raise ValueError(f"cannot apply event {position}")
            tx.execute(f"INSERT INTO {table} (type, n) VALUES (?, 1) ON CONFLICT (type) DO UPDATE SET n = n + 1",
                       (type_,))

    def apply(self, tx, events: Sequence, prefix: str) -> None:
        self.batches += 1
        self.apply_facts(tx, self.facts(events), prefix)


def transcript_projections() -> list:
    return [SessionsProjection(), UsageProjection(), TasksProjection()]


def table_rows(conn, projections: Sequence) -> dict[str, list[tuple]]:
    """Every row of every table the projections own, in a total order (sessions' record keys as
    the sessions holding them: their rows follow the batches)."""
    out = {}
    for projection in projections:
        for table in projection.tables:
            if table == "session_key_runs":
                out[table] = sorted(key_holders(conn).items())
                continue
            width = len(conn.execute(f"PRAGMA table_info({table})").fetchall())
            order = ", ".join(str(i) for i in range(1, width + 1))
            out[table] = [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()]
    return out


def snapshot(store: Store, runner: Runner) -> dict:
    """The transcript projections' tables and query results, the errors and the checkpoints' positions."""
    with store.db.read() as conn:
        state = {
            "rows": table_rows(conn, transcript_projections()),
            "sessions": msgspec.to_builtins(list_sessions(conn)),
            "tasks": msgspec.to_builtins(list_tasks(conn)),
            "open": msgspec.to_builtins(list_tasks(conn, statuses=["completed"], negate=True)),
            "daily": msgspec.to_builtins(build_report(conn, "daily", None, None, "UTC")),
            "by_session": msgspec.to_builtins(build_report(conn, "session", None, None, "UTC")),
            "positions": dict(conn.execute("SELECT name, position FROM projection_checkpoints"
                                           " WHERE name IN ('sessions', 'usage', 'tasks')").fetchall()),
        }
    state["errors"] = sorted((e.name, e.position, e.reason) for e in runner.errors())
    return state


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A generated projects tree of a few thousand events, shared by the tests."""
    root = tmp_path_factory.mktemp("rebuild-helpers") / "projects"
    load_generator().generate(root, 8_000_000, seed=11)
    return root


@pytest.fixture
def ingested(tmp_path: Path, tree: Path):
    with Store(tmp_path / "events.db") as store:
        Ingester(store).ingest([tree])
        assert store.head() > 40 * (BATCH // 4)  # dozens of ranges, many groups
        yield store


def rebuilt(store: Store, projections: list, *, helpers: int) -> Runner:
    runner = Runner(store, projections, rebuild_batch_size=BATCH, helpers=helpers)
    report = runner.rebuild()
    assert report.events > 0
    return runner


def test_rebuild_with_helpers_equals_in_process_rebuild_and_catch_up(ingested):
    store = ingested
    head = store.head()

    runner = Runner(store, [*transcript_projections(), PidCounter()], batch_size=97, helpers=0)
    runner.catch_up()  # built in place, batch by batch
    incremental = snapshot(store, runner)
    with store.db.read() as conn:
        _, incremental_types = pid_state(conn)
    runner.close()
    assert incremental["positions"] == {"sessions": head, "usage": head, "tasks": head}
    assert incremental["sessions"] and incremental["tasks"] and incremental["rows"]["usage_entries"]
    assert sum(incremental_types.values()) == head

    in_process = rebuilt(store, [*transcript_projections(), PidCounter()], helpers=0)
    assert snapshot(store, in_process) == incremental
    with store.db.read() as conn:
        assert pid_state(conn) == ({PARENT}, incremental_types)
    in_process.close()

    progress: list[tuple[int, int]] = []
    helped = Runner(store, [*transcript_projections(), PidCounter()], rebuild_batch_size=BATCH, helpers=2)
    report = helped.rebuild(progress=lambda at, of: progress.append((at, of)))
    assert report.events == head and report.projections == ["sessions", "usage", "tasks", "pids"]
    assert snapshot(store, helped) == incremental
    with store.db.read() as conn:
        pids, per_type = pid_state(conn)
    assert per_type == incremental_types  # every event applied once, whoever read it
    assert PARENT not in pids and 1 <= len(pids) <= 2  # all of it worked out by the two helpers
    # applied in several commits, in log order, up to the head
    positions = [at for at, _ in progress]
    assert len(positions) > 3 and positions == sorted(positions) and positions[-1] == head
    tables = {n for (n,) in store.db.conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert not {t for t in tables if t[:1] == "r" and t.split("_", 1)[0][1:].isdigit()}  # swapped in, none left
    helped.close()


def test_facts_built_a_chunk_at_a_time_equal_facts_of_whole_batches(ingested, monkeypatch):
    """Helpers hand each range to the projections in chunks (`facts.CHUNK` events): every chunk
    boundary must leave the facts as they would be for the whole range. Small odd chunks put
    boundaries everywhere: inside responses, runs of a session, tool calls and their results."""
    from projections import facts

    store = ingested
    runner = Runner(store, transcript_projections(), batch_size=BATCH // 4, helpers=0)
    runner.catch_up()
    whole = snapshot(store, runner)
    runner.close()
    for chunk in (1, 37):
        monkeypatch.setattr(facts, "CHUNK", chunk)
        helped = rebuilt(store, transcript_projections(), helpers=2)
        assert snapshot(store, helped) == whole
        helped.close()


class StoppingPidCounter(PidCounter):
    """PidCounter that sets `stop` (as Ctrl-C would) once the runner has applied `ranges` ranges' facts."""

    def __init__(self, stop: threading.Event, ranges: int) -> None:
        super().__init__()
        self.stop, self.left = stop, ranges

    def apply_facts(self, tx, facts, prefix: str) -> None:
        super().apply_facts(tx, facts, prefix)
        self.left -= 1
        if not self.left:
            self.stop.set()


def test_a_helped_rebuild_for_a_new_version_stops_and_resumes_where_it_stopped(ingested):
    store = ingested
    head = store.head()
    reference = rebuilt(store, [*transcript_projections(), PidCounter()], helpers=0)
    expected = snapshot(store, reference)
    reference.close()
    store.db.conn.execute("UPDATE projection_checkpoints SET version = 'old'")  # as after an upgrade

    stop = threading.Event()
    first = Runner(store, [*transcript_projections(), StoppingPidCounter(stop, 6)], rebuild_batch_size=BATCH,
                   helpers=2)
    report = first.catch_up(stop=stop)
    first.close()
    (stopped_at,), = set(store.db.conn.execute("SELECT position FROM projection_rebuilds").fetchall())
    assert report.rebuilt == [] and report.events == stopped_at and 0 < stopped_at < head
    assert set(store.db.conn.execute("SELECT version FROM projection_checkpoints")) == {("old",)}

    second = Runner(store, [*transcript_projections(), PidCounter()], rebuild_batch_size=BATCH, helpers=2)
    report = second.catch_up()
    assert report.rebuilt == ["sessions", "usage", "tasks", "pids"] and report.events == head - stopped_at
    with store.db.read() as conn:
        pids, per_type = pid_state(conn)
    assert PARENT not in pids and 2 <= len(pids) <= 4  # both parts read by helpers, of two runners
    assert sum(per_type.values()) == head  # every event applied once
    assert snapshot(store, second) == expected
    second.close()


def test_catch_up_builds_a_never_built_projection_with_helpers_on_a_long_log(ingested):
    store = ingested
    head = store.head()
    runner = Runner(store, [*transcript_projections(), PidCounter()], rebuild_batch_size=BATCH, helpers=2)
    report = runner.catch_up()
    assert report.events == head and report.rebuilt == []  # built, not rebuilt for a new version
    built = snapshot(store, runner)
    with store.db.read() as conn:
        pids, per_type = pid_state(conn)
    assert PARENT not in pids and 1 <= len(pids) <= 2  # the helpers read the log
    assert sum(per_type.values()) == head
    assert built["positions"] == {"sessions": head, "usage": head, "tasks": head}
    runner.close()

    in_process = rebuilt(store, [*transcript_projections(), PidCounter()], helpers=0)
    assert snapshot(store, in_process) == built
    in_process.close()


def test_catch_up_far_behind_applies_the_gap_with_helpers_in_place(tmp_path, tree):
    files = sorted(transcript_files([tree], print))
    with Store(tmp_path / "events.db") as store:
        Ingester(store).ingest_files(files[:len(files) // 4])
        built_on = store.head()
        first = Runner(store, [*transcript_projections(), PidCounter()], rebuild_batch_size=BATCH, helpers=0)
        first.catch_up()  # built in place, by this process
        first.close()  # no inline hook: the rest is all left to the next catch-up
        Ingester(store).ingest_files(files[len(files) // 4:])
        head = store.head()
        assert head - built_on > 10 * (BATCH // 4)

        runner = Runner(store, [*transcript_projections(), PidCounter()], rebuild_batch_size=BATCH, helpers=2)
        before = snapshot(store, runner)
        # Ranges that do not start where the checkpoints stand (another process moved them) are not applied.
        assert runner._catch_up_helped(list(runner.projections.values()), built_on - 1, threading.Event()) == (0, 0)
        assert snapshot(store, runner) == before
        with store.db.read() as conn:
            pids, per_type = pid_state(conn)
        assert pids == {PARENT} and sum(per_type.values()) == built_on  # the first part, built here
        report = runner.catch_up()
        assert report.events == head - built_on and report.rebuilt == []
        caught_up = snapshot(store, runner)
        with store.db.read() as conn:
            pids, per_type = pid_state(conn)
            generations = {g for (g,) in conn.execute("SELECT generation FROM projection_checkpoints")}
        assert PARENT in pids and 2 <= len(pids) <= 3  # the gap was worked out by the helpers
        assert sum(per_type.values()) == head  # every event applied once
        assert caught_up["positions"] == {"sessions": head, "usage": head, "tasks": head}
        assert generations == {0}  # in place, not rebuilt
        runner.close()

        in_process = rebuilt(store, [*transcript_projections(), PidCounter()], helpers=0)
        assert snapshot(store, in_process) == caught_up
        in_process.close()


def test_rebuild_of_some_projections_with_helpers_leaves_the_others(ingested):
    store = ingested
    runner = Runner(store, [*transcript_projections(), PidCounter(), Counter()], rebuild_batch_size=BATCH, helpers=2)
    runner.catch_up()
    before = snapshot(store, runner)
    with store.db.read() as conn:
        counted = counts(conn)
    runner.rebuild(["sessions", "tasks", "pids"])  # Counter has no facts, but is not chosen
    assert snapshot(store, runner) == before
    with store.db.read() as conn:
        pids, per_type = pid_state(conn)
        assert counts(conn) == counted
    assert PARENT not in pids and sum(per_type.values()) == store.head()
    runner.close()


@pytest.mark.parametrize("fails_in", ["facts", "apply_facts"])
def test_a_failing_event_in_a_helper_is_recorded_like_in_process(tmp_path, fails_in):
    with Store(tmp_path / "events.db") as store:
        types = "abc"
        store.append([new_event(type_=types[i % 3], data=b"poison" if i == 536 else b"{}") for i in range(1_000)])
        assert store.head() == 1_000

        def projections():
            return [FactsCounter(fails_in=fails_in), PidCounter()]

        without = rebuilt(store, projections(), helpers=0)
        with store.db.read() as conn:
            expected = counts(conn)
            assert pid_state(conn)[0] == {PARENT}
        expected_errors = [(e.name, e.position, e.reason) for e in without.errors()]
        without.close()
        assert expected == {"a": 334, "b": 333, "c": 332}  # every event but position 537 (a "c")
        assert expected_errors == [("counter", 537, "ValueError: cannot apply event 537")]

        helped = rebuilt(store, projections(), helpers=2)
        with store.db.read() as conn:
            assert counts(conn) == expected
            pids, per_type = pid_state(conn)
        assert PARENT not in pids and per_type == {"a": 334, "b": 333, "c": 333}
        assert [(e.name, e.position, e.reason) for e in helped.errors()] == expected_errors
        status = {s.name: (s.position, s.errors) for s in helped.status()}
        assert status == {"counter": (1_000, 1), "pids": (1_000, 0)}
        helped.close()


def test_facts_a_helper_cannot_work_out_are_worked_out_in_process_without_errors(tmp_path):
    with Store(tmp_path / "events.db") as store:
        store.append([new_event(type_="ab"[i % 2]) for i in range(600)])
        runner = rebuilt(store, [FactsCounter(helper_only=True), PidCounter()], helpers=2)
        with store.db.read() as conn:
            assert counts(conn) == {"a": 300, "b": 300}
            assert PARENT not in pid_state(conn)[0]  # the helpers did run
        assert runner.errors() == []
        runner.close()


class DyingCounter(FactsCounter):
    """A FactsCounter whose helper process dies on the range holding position 100."""

    def facts(self, events: Sequence) -> list[tuple[int, str, bool]]:
        if os.getpid() != PARENT and any(event.position == 100 for event in events):
            os._exit(1)
        return super().facts(events)


class UnpicklableCounter(FactsCounter):
    """A FactsCounter whose facts cannot leave a helper process (a lambda does not pickle)."""

    def facts(self, events: Sequence):
        found = super().facts(events)
        return found if os.getpid() == PARENT else [*found, lambda: None]


@pytest.mark.parametrize("counter", [DyingCounter, UnpicklableCounter])
def test_a_range_no_helper_can_give_is_read_in_process(tmp_path, counter):
    with Store(tmp_path / "events.db") as store:
        store.append([new_event(type_="ab"[i % 2]) for i in range(600)])
        runner = rebuilt(store, [counter(), PidCounter()], helpers=2)
        with store.db.read() as conn:
            assert counts(conn) == {"a": 300, "b": 300}
            pids, per_type = pid_state(conn)
        assert per_type == {"a": 300, "b": 300}  # every event counted once, by a helper or here
        assert PARENT in pids  # some ranges were read here
        assert runner.errors() == []
        runner.close()


def test_the_replay_report_says_how_many_helpers_read_the_log(tmp_path):
    with Store(tmp_path / "events.db") as store:
        store.append([new_event(type_="ab"[i % 2]) for i in range(600)])
        for helpers, expected in ((2, 2), (0, 0), (1, 0)):
            runner = Runner(store, [FactsCounter()], rebuild_batch_size=BATCH, helpers=helpers)
            assert runner.helpers_for() == expected
            assert runner.rebuild().helpers == expected
            runner.close()
        mixed = Runner(store, [PidCounter(), Counter()], rebuild_batch_size=BATCH, helpers=2)
        assert mixed.helpers_for() == 0 and mixed.helpers_for(["pids"]) == 2
        assert mixed.rebuild().helpers == 0  # a projection without facts: read in process
        assert mixed.rebuild(["pids"]).helpers == 2
        mixed.close()


def test_a_rebuild_off_the_main_thread_runs_in_process(tmp_path):
    with Store(tmp_path / "events.db") as store:
        store.append([new_event(type_="ab"[i % 2]) for i in range(600)])
        done: list[Runner] = []
        worker = threading.Thread(target=lambda: done.append(rebuilt(store, [FactsCounter(), PidCounter()], helpers=2)))
        worker.start()
        worker.join()
        with store.db.read() as conn:
            assert counts(conn) == {"a": 300, "b": 300}
            assert pid_state(conn) == ({PARENT}, {"a": 300, "b": 300})  # nothing forked from a thread
        done[0].close()


def test_a_projection_without_facts_makes_the_rebuild_run_in_process(ingested):
    store = ingested
    head = store.head()
    plain = Counter()
    assert not has_facts(plain) and all(has_facts(p) for p in transcript_projections())

    reference = Runner(store, [*transcript_projections(), PidCounter(), Counter()], batch_size=250)
    reference.catch_up()
    expected = snapshot(store, reference)
    with store.db.read() as conn:
        expected_counts = counts(conn)
    reference.close()

    runner = rebuilt(store, [*transcript_projections(), PidCounter(), plain], helpers=2)
    assert plain.batches >= head // BATCH  # applied here, batch by batch
    assert snapshot(store, runner) == expected
    with store.db.read() as conn:
        pids, per_type = pid_state(conn)
        assert counts(conn) == expected_counts
    assert pids == {PARENT}  # no helper worked anything out
    assert sum(per_type.values()) == head
    runner.close()


def _halve(tree: Path, into: Path) -> list[tuple[Path, bytes]]:
    """Copy the tree with each file cut after half its lines; returns (copy, full contents)."""
    rest = []
    for path in sorted(tree.rglob("*.jsonl")):
        data = path.read_bytes()
        lines = data.split(b"\n")
        cut = b"\n".join(lines[: len(lines) // 2]) + b"\n" if len(lines) > 2 else b""
        target = into / path.relative_to(tree)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(cut)
        rest.append((target, data))
    return rest


def test_catch_up_after_a_helped_rebuild_equals_a_fresh_rebuild(tmp_path, tree):
    copy = tmp_path / "projects"
    rest = _halve(tree, copy)
    with Store(tmp_path / "events.db") as store:
        Ingester(store).ingest([copy])
        first_head = store.head()
        runner = rebuilt(store, [*transcript_projections(), PidCounter()], helpers=2)
        with store.db.read() as conn:
            assert PARENT not in pid_state(conn)[0]
        for target, data in rest:  # the sessions go on: the rest of each file is appended
            target.write_bytes(data)
        Ingester(store).ingest([copy])  # usage and tasks apply inline, in the append transaction
        assert store.head() > first_head + 500
        runner.catch_up()
        caught_up = snapshot(store, runner)
        assert caught_up["positions"] == {"sessions": store.head(), "usage": store.head(), "tasks": store.head()}
        runner.close()

        for helpers in (0, 2):
            fresh = rebuilt(store, transcript_projections(), helpers=helpers)
            assert snapshot(store, fresh) == caught_up
            fresh.close()


def test_events_appended_during_a_helped_rebuild_are_in_its_result(tmp_path, tree):
    copy = tmp_path / "projects"
    rest = _halve(tree, copy)
    db = tmp_path / "events.db"
    with Store(db) as store:
        Ingester(store).ingest([copy])
        first_head = store.head()
        appended = []

        def during(position: int, head: int) -> None:
            if not appended:  # the helpers are at work: another writer appends the rest
                for target, data in rest:
                    target.write_bytes(data)
                with Store(db) as other:
                    appended.append(Ingester(other).ingest([copy]))

        runner = Runner(store, [*transcript_projections(), PidCounter()], rebuild_batch_size=BATCH, helpers=2)
        report = runner.rebuild(progress=during)
        assert appended and store.head() > first_head + 500
        assert report.events == store.head()
        during_rebuild = snapshot(store, runner)
        assert during_rebuild["positions"] == {"sessions": store.head(), "usage": store.head(),
                                               "tasks": store.head()}
        with store.db.read() as conn:
            pids, per_type = pid_state(conn)
        assert PARENT in pids and len(pids) > 1  # the first part in helpers, what arrived meanwhile here
        assert sum(per_type.values()) == store.head()
        runner.close()

        fresh = rebuilt(store, transcript_projections(), helpers=0)
        assert snapshot(store, fresh) == during_rebuild
        fresh.close()


def search_state(store: Store) -> dict:
    """The full-text, vector-queue and memories tables, and the full-text index's answers."""
    with store.db.read() as conn:
        rows = {table: sorted(map(tuple, conn.execute(f"SELECT * FROM {table}").fetchall())) for table in
                ("fts_projects", "fts_sessions", "fts_docs", "fts_memories", "vec_memories", "memories",
                 "memory_tags", "memory_links")}
        rows["vec_pending"] = conn.execute("SELECT min(first), max(last), sum(count) FROM vec_pending").fetchall()
        for term in ("the", "error", "test", "zebra", "function", "file"):
            rows[f"text:{term}"] = [r for (r,) in conn.execute(
                "SELECT rowid FROM fts_text WHERE fts_text MATCH ? ORDER BY rowid", (term,))]
        for term in ("def", "src", ".py"):  # one trigram each (the index keeps no positions)
            rows[f"code:{term}"] = [r for (r,) in conn.execute(
                "SELECT rowid FROM fts_code WHERE fts_code MATCH ? ORDER BY rowid", (f'"{term}"',))]
    return rows


def test_search_projections_rebuilt_with_helpers_equal_an_in_process_rebuild(ingested):
    store = ingested
    kept = memories.add(store, "zebra notes on the flaky test", tags=["ci"], project="alpha").memory_id
    gone = memories.add(store, "a note to forget", project="beta").memory_id
    memories.update(store, kept, text="zebra notes, the flaky test fixed", tags=["ci", "done"])
    memories.forget(store, gone)

    def search_projections() -> list:
        return [FulltextProjection(), VectorsProjection(), MemoriesProjection()]

    in_process = Runner(store, search_projections(), rebuild_batch_size=BATCH, helpers=0)
    assert in_process.rebuild().helpers == 0
    alone = search_state(store)
    in_process.close()
    assert alone["fts_docs"] and alone["text:the"] and alone["code:.py"] and alone["memories"]

    helped = Runner(store, search_projections(), rebuild_batch_size=BATCH, helpers=2)
    assert helped.rebuild().helpers == 2
    assert search_state(store) == alone
    helped.close()


KILLED_REPLAY = """
import sys, time
from eventstore import Store
from projections.runner import Runner
from projections.sessions import SessionsProjection

runner = Runner(Store(sys.argv[1]), [SessionsProjection()], helpers=2, rebuild_batch_size=200)

def stalled(done, head):
    print("helped", flush=True)  # the helpers are at work: the first range is applied
    time.sleep(600)

runner.rebuild(progress=stalled)
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:  # gone meanwhile
                continue
            if f"\nPPid:\t{pid}\n" in status:
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Whether a process is alive: not gone, and not a zombie waiting for an init to reap it."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the process table in /proc (Linux)")
def test_helpers_die_with_a_killed_replay_and_leave_no_lock_behind(ingested):
    """kill -9 of a replay (or a closed terminal, or the OOM killer) takes its helpers with it:
    orphans waited forever, holding the rebuild lock they share with it, so every later replay
    was refused as busy."""
    import signal
    import subprocess
    import sys
    import time

    replay = subprocess.Popen([sys.executable, "-c", KILLED_REPLAY, str(ingested.path)], stdout=subprocess.PIPE)
    try:
        assert replay.stdout.readline() == b"helped\n"
        helpers = _children(replay.pid)
        assert len(helpers) == 2
    finally:
        replay.send_signal(signal.SIGKILL)
        replay.wait()
    deadline = time.monotonic() + 10
    while (alive := [pid for pid in helpers if _running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive == []
    report = Runner(ingested, [SessionsProjection()], helpers=0).rebuild()  # not refused as busy
    assert report.events > 0
