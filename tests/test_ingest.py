"""Ingestion of real and generated transcript trees: every line kept, exactly once, whatever happens."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from conftest import REPO, load_generator, run_cli
from eventstore import Store
from eventstore.ingest import Ingester
from eventstore.ingest.quarantine import listing
from eventstore.ingest.sources import RUN_EVENTS, origins


def file_pieces(store: Store) -> dict[str, dict[int, bytes]]:
    """For every source file: offset -> the bytes stored for the object read there."""
    pieces: dict[str, dict[int, bytes]] = {}
    for path, offset, position in origins(store.db.conn):
        pieces.setdefault(path, {})[offset] = store.get(position).data
    for q in store.db.conn.execute(
        "SELECT s.path, q.offset, q.line FROM quarantine q JOIN sources s USING (source_id)"
    ).fetchall():
        pieces.setdefault(q[0], {})[q[1]] = q[2]
    return pieces


def assert_every_line_kept(store: Store, files: list[Path]) -> None:
    """Each complete, non-blank line of each file is exactly the concatenation of what was stored for it."""
    pieces = file_pieces(store)
    for path in files:
        content = path.read_bytes()
        complete = content[: content.rfind(b"\n") + 1]
        got = pieces.get(str(path), {})
        offset = 0
        for line in complete.split(b"\n")[:-1]:
            if line.strip():
                parts = sorted((o, d) for o, d in got.items() if offset <= o < offset + len(line))
                assert parts and parts[0][0] == offset, f"{path}:{offset} was not kept"
                assert b"".join(d for _, d in parts) == line, f"{path}:{offset} differs"
            offset += len(line) + 1


def log_of(store: Store) -> tuple:
    """What must not depend on how ingestion was split: events, provenance, quarantine, checkpoints."""
    events = {(e.event_id, e.stream, e.type, e.data) for e in store.read_all()}
    ids = {e.position: e.event_id for e in store.read_all()}
    provenance = {(path, offset, ids[position]) for path, offset, position in origins(store.db.conn)}
    quarantined = {(q.file, q.offset, q.reason) for q in listing(store.db.conn)}
    offsets = set(store.db.conn.execute("SELECT path, offset FROM sources").fetchall())
    streams = {}
    for e in store.read_all():
        streams.setdefault(e.stream, []).append(e.version)
    assert all(v == list(range(1, len(v) + 1)) for v in streams.values())
    return events, provenance, quarantined, offsets


def test_every_corpus_file_ingests_and_every_line_is_kept(corpus, tmp_path):
    files = sorted(corpus.rglob("*.jsonl"))
    with Store(tmp_path / "e.db") as store:
        report = Ingester(store).ingest([corpus])
        assert report.files == len(files) and report.warnings == []
        assert report.events_appended > 4000 and report.quarantined == 0
        assert_every_line_kept(store, files)
        again = Ingester(store).ingest([corpus])
        assert (again.files, again.events_appended, again.lines) == (0, 0, 0)


def test_concatenated_objects_torn_lines_and_garbage(tmp_path):
    root = tmp_path / "projects" / "-home-me-proj"
    root.mkdir(parents=True)
    session = root / "5b4e0a56-0000-4000-8000-000000000001.jsonl"
    user = b'{"type":"user","sessionId":"s1","uuid":"u1","timestamp":"2026-05-01T10:00:00.000Z","message":{"role":"user","content":"hi"}}'
    summary = b'{"type":"summary","summary":"Greeting","leafUuid":"u1"}'
    session.write_bytes(
        user + summary + b"\n"           # two objects on one line
        + b"not json at all\n"
        + b"\xff\xfe broken utf8\n"
        + b"\n"                          # blank: nothing to keep
        + b'{"type":"assistant","sessionId":"s1"}{"oops"\n'  # an object, then garbage
        + b'{"type":"user","sessionId":"s1","uuid":"u2"'     # torn: no newline yet
    )
    db = tmp_path / "e.db"
    with Store(db) as store:
        report = Ingester(store).ingest([tmp_path / "projects"])
        assert report.events_appended == 3 and report.quarantined == 3
        events = store.read_all()
        assert [e.data for e in events] == [user, summary, b'{"type":"assistant","sessionId":"s1"}']
        assert [e.type for e in events] == ["claude.user", "claude.summary", "claude.assistant"]
        # A line naming no session (the summary) belongs to the session the file is named after.
        assert [e.stream for e in events] == [
            "claude:session:s1", "claude:session:5b4e0a56-0000-4000-8000-000000000001", "claude:session:s1"]
        assert events[0].occurred_at == 1777629600000
        # Objects that shared a line are tied together (ccusage skips such lines; usage follows it).
        assert events[0].correlation_id == events[1].correlation_id and events[0].correlation_id.startswith("line:")
        assert events[2].correlation_id not in (None, events[0].correlation_id)
        reasons = sorted(q.reason.split(":")[0] for q in listing(store.db.conn))
        assert reasons == ["not JSON", "not JSON", "not UTF-8 (invalid start byte at byte 0)"]
        assert_every_line_kept(store, [session])
        with open(session, "ab") as f:      # the torn line completes
            f.write(b',"timestamp":"2026-05-01T10:00:05.000Z"}\n')
        report = Ingester(store).ingest([tmp_path / "projects"])
        assert report.events_appended == 1 and store.read_all()[-1].entity_id == "u2"
    out = json.loads(run_cli("quarantine", "--json", db=db).stdout)
    assert len(out["quarantine"]) == 3 and set(out["quarantine"][0]) == {"file", "offset", "bytes", "reason", "recorded_at"}
    assert out["quarantine"][0]["recorded_at"].endswith("Z")  # ISO-8601, as events and audit give times


def test_a_quarantine_reason_says_what_and_where(tmp_path):
    transcript = tmp_path / "s.jsonl"
    transcript.write_bytes(b'{"type":"user","message":{"content":"a\x00b"}}\n{"type":"user",\n')
    with Store(tmp_path / "e.db") as store:
        Ingester(store).ingest([transcript])
        reasons = [q.reason for q in listing(store.db.conn)]
    assert reasons == ["not JSON: Invalid control character at character 38",
                       "not JSON: Expecting property name enclosed in double quotes at character 15"]


def test_rewritten_shrunk_and_deleted_files(tmp_path):
    root = tmp_path / "p" / "proj"
    root.mkdir(parents=True)
    f = root / "abc.jsonl"
    lines = [b'{"type":"user","sessionId":"abc","uuid":"u%d"}' % i for i in range(5)]
    f.write_bytes(b"\n".join(lines) + b"\n")
    with Store(tmp_path / "e.db") as store:
        assert Ingester(store).ingest([tmp_path / "p"]).events_appended == 5
        f.write_bytes(b"\n".join(lines[:3]) + b"\n")          # shrank: re-read, all duplicates
        report = Ingester(store).ingest([tmp_path / "p"])
        assert (report.events_appended, report.duplicates) == (0, 3)
        f.write_bytes(b'{"type":"user","sessionId":"abc","uuid":"new"}\n' + b"\n".join(lines) + b"\n")
        report = Ingester(store).ingest([tmp_path / "p"])     # head changed: re-read
        assert (report.events_appended, report.duplicates) == (1, 5)
        f.unlink()
        report = Ingester(store).ingest([tmp_path / "p"])
        assert report.files_seen == 0 and store.head() == 6   # a deleted file keeps its events


def test_a_file_rewritten_in_place_past_its_head_is_read_again(tmp_path):
    """A line changed beyond the first 4 KiB, the file no shorter: the head alone looks the same, and
    reading on from the old offset would miss the change. Plain appends still resume."""
    root = tmp_path / "p" / "proj"
    root.mkdir(parents=True)
    f = root / "abc.jsonl"
    head = b'{"type":"summary","summary":"%s"}\n' % (b"x" * 5000)  # longer than the hashed head
    lines = [b'{"type":"user","sessionId":"abc","uuid":"u%d","message":{"content":"hello %d"}}\n' % (i, i)
             for i in range(5)]
    f.write_bytes(head + b"".join(lines))
    with Store(tmp_path / "e.db") as store:
        assert Ingester(store).ingest([tmp_path / "p"]).events_appended == 6
        with f.open("ab") as out:
            out.write(lines[0].replace(b'"u0"', b'"u5"'))
        report = Ingester(store).ingest([tmp_path / "p"])
        assert (report.events_appended, report.duplicates, report.bytes) == (1, 0, len(lines[0]))
        changed = lines[2].replace(b"hello 2", b"HELLO 2")
        f.write_bytes(head + b"".join(lines[:2]) + changed + b"".join(lines[3:]) + lines[0].replace(b'"u0"', b'"u5"')
                      + lines[1].replace(b'"u1"', b'"u6"'))
        report = Ingester(store).ingest([tmp_path / "p"])
        assert (report.events_appended, report.duplicates, report.quarantined) == (2, 6, 0)
        stored = {store.get(position).data for position in range(1, store.head() + 1)}
        assert changed.rstrip(b"\n") in stored and lines[2].rstrip(b"\n") in stored


def test_same_lines_in_several_files_are_stored_once(tmp_path):
    session = b'{"type":"user","sessionId":"s9","uuid":"u1","message":{"content":"x"}}\n'
    for project in ("a", "b", "c"):
        (tmp_path / "p" / project).mkdir(parents=True)
        (tmp_path / "p" / project / "s9.jsonl").write_bytes(session * 1 + b'{"type":"summary","summary":"t"}\n')
    with Store(tmp_path / "e.db") as store:
        report = Ingester(store).ingest([tmp_path / "p"])
        assert (report.events_appended, report.duplicates) == (2, 4)
        assert len(origins(store.db.conn)) == 6  # provenance keeps every place a line was seen


def test_a_long_file_keeps_every_line_in_runs_of_bounded_length(tmp_path):
    lines = [b'{"type":"user","sessionId":"s1","uuid":"u%d","message":{"content":"%s"}}\n'
             % (i, b"x" * (70_000 if i == 300 else i % 97)) for i in range(600)]  # one step needs 4 bytes
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "s1.jsonl").write_bytes(b"".join(lines))
    with Store(tmp_path / "e.db") as store:
        Ingester(store).ingest([tmp_path / "p"])
        assert_every_line_kept(store, [tmp_path / "p" / "s1.jsonl"])
        runs = store.db.conn.execute("SELECT last_position - first_position + 1 FROM line_runs").fetchall()
        assert sorted(n for (n,) in runs) == [120, RUN_EVENTS, RUN_EVENTS]


def test_subagent_layouts_go_to_the_parent_session(tmp_path):
    proj = tmp_path / "p" / "-x"
    (proj / "sess1" / "subagents").mkdir(parents=True)
    (proj / "sess1.jsonl").write_bytes(b'{"type":"user","sessionId":"sess1","uuid":"a"}\n')
    (proj / "sess1" / "subagents" / "agent-a1.jsonl").write_bytes(
        b'{"type":"user","sessionId":"sess1","isSidechain":true,"agentId":"a1","uuid":"b"}\n'
        b'{"type":"summary","summary":"no session id here"}\n')
    (proj / "agent-0c78cdae.jsonl").write_bytes(b'{"type":"user","sessionId":"sess1","isSidechain":true,"uuid":"c"}\n')
    (proj / "empty.jsonl").write_bytes(b"")
    with Store(tmp_path / "e.db") as store:
        report = Ingester(store).ingest([tmp_path / "p"])
        assert report.files == 4 and report.events_appended == 4
        assert {e.stream for e in store.read_all()} == {"claude:session:sess1"}


@st.composite
def tree_and_cuts(draw):
    records = draw(st.lists(st.one_of(
        st.builds(lambda s, n, t: json.dumps({"type": t, "sessionId": s, "uuid": f"u{n}", "n": n}).encode(),
                  st.sampled_from(["s1", "s2"]), st.integers(0, 10**6), st.sampled_from(["user", "assistant", "x"])),
        st.just(b'{"type":"summary","summary":"s"}{"type":"user","sessionId":"s1"}'),
        st.binary(max_size=20).filter(lambda b: b"\n" not in b),
    ), min_size=1, max_size=25))
    files = draw(st.lists(st.integers(0, 2), min_size=len(records), max_size=len(records)))
    content: dict[int, bytes] = {}
    for record, index in zip(records, files):
        content[index] = content.get(index, b"") + record + b"\n"
    cuts = {i: sorted(draw(st.lists(st.integers(0, len(c)), max_size=4))) for i, c in content.items()}
    return content, cuts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree_and_cuts())
def test_any_split_of_the_input_gives_the_same_log(tmp_path_factory, drawn):
    content, cuts = drawn
    base = tmp_path_factory.mktemp("split")
    whole_root, split_root = base / "whole" / "proj", base / "split" / "proj"
    whole_root.mkdir(parents=True)
    split_root.mkdir(parents=True)
    for i, data in content.items():
        (whole_root / f"f{i}.jsonl").write_bytes(data)
        (split_root / f"f{i}.jsonl").write_bytes(b"")
    with Store(base / "whole.db") as whole:
        read_whole = Ingester(whole).ingest([whole_root.parent]).bytes
        expected = log_of(whole)
    with Store(base / "split.db") as split:
        written = {i: 0 for i in content}
        read_split = 0
        steps = sorted({(cut, i) for i, cs in cuts.items() for cut in cs})
        for cut, i in steps + [(len(c), i) for i, c in content.items()]:
            if cut > written[i]:
                with open(split_root / f"f{i}.jsonl", "ab") as f:
                    f.write(content[i][written[i]:cut])
                written[i] = cut
            read_split += Ingester(split).ingest([split_root.parent]).bytes
        got = log_of(split)
    assert read_split == read_whole  # each append resumed where the last read ended: nothing read twice
    rebase = lambda rows: {tuple(str(v).replace("/split/", "/whole/") for v in row) for row in rows}
    assert got[0] == expected[0]
    assert rebase(got[1]) == rebase(expected[1])
    assert rebase(got[2]) == rebase(expected[2])
    assert rebase(got[3]) == rebase(expected[3])


def test_killed_ingest_resumes_without_loss_or_duplicates(tmp_path):
    gen = load_generator()
    tree = tmp_path / "projects"
    gen.generate(tree, 40 * 1024 * 1024, seed=3)
    with Store(tmp_path / "reference.db") as ref:
        started = time.perf_counter()
        Ingester(ref).ingest([tree])
        duration = time.perf_counter() - started
        expected = log_of(ref)
    db = tmp_path / "crashed.db"
    rng = random.Random(5)
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-m", "eventstore", "--db", str(db), "ingest", str(tree), "--json"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 0.3 + duration / 3))  # start-up, then somewhere in the first third
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    run_cli("ingest", str(tree), "--json", db=db)
    assert kills >= 1, "the tree was too small to interrupt the ingest"
    with Store(db) as store:
        got = log_of(store)
    norm = lambda rows: {tuple(str(v) for v in row) for row in rows}
    assert got[0] == expected[0]
    assert norm(got[1]) == norm(expected[1])
    assert norm(got[2]) == norm(expected[2])
    assert norm(got[3]) == norm(expected[3])


def wait_for_head(store: Store, head: int, seconds: float) -> None:
    """Wait until the log reaches `head` (another thread or process appending), or `seconds` pass."""
    deadline = time.time() + seconds
    while store.head() < head and time.time() < deadline:
        time.sleep(0.05)


def head_of(db: Path) -> int:
    """The log's head as another process sees it; 0 while the database is still being made."""
    try:
        with Store(db, read_only=True) as store:
            return store.head()
    except Exception:  # noqa: BLE001 - not there yet, or not yet an eventstore database
        return 0


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_ingest_with_128_plus_its_number_after_reporting_what_was_committed(tmp_path, signum, status):
    """Ctrl-C ended ingest with click's "Aborted!" and status 1, reporting nothing, and SIGTERM (a
    service manager stopping it) killed it at once; scripts expect 128 + the signal's number, and
    the report of what is in the log."""
    gen = load_generator()
    tree = tmp_path / "projects"
    gen.generate(tree, 40 * 1024 * 1024, seed=3)
    db = tmp_path / "e.db"
    proc = subprocess.Popen([sys.executable, "-m", "eventstore", "--db", str(db), "ingest", str(tree), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not head_of(db) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signum)  # the first batch is in the log; the rest is being read or built on
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert "Traceback" not in err and "interrupted" in err
    first = json.loads(out)
    assert first["events_appended"] == head_of(db) > 0
    assert json.loads(run_cli("check", "--json", db=db).stdout)["ok"]
    second = json.loads(run_cli("ingest", str(tree), "--json", db=db).stdout)
    assert first["events_appended"] + second["events_appended"] == head_of(db)
    assert json.loads(run_cli("check", "--json", db=db).stdout)["ok"]


def test_tail_ingests_appended_lines_and_stops_cleanly(tmp_path):
    root = tmp_path / "projects" / "-proj"
    root.mkdir(parents=True)
    f = root / "s1.jsonl"
    f.write_bytes(b'{"type":"user","sessionId":"s1","uuid":"first"}\n')
    db = tmp_path / "e.db"
    Store(db).close()
    proc = subprocess.Popen([sys.executable, "-m", "eventstore", "--db", str(db), "tail", str(tmp_path / "projects")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Store(db) as store:
            wait_for_head(store, 1, 30)
            assert store.head() == 1
            for i in range(3):
                head = store.head()
                with open(f, "ab") as out:
                    out.write(b'{"type":"assistant","sessionId":"s1","uuid":"n%d"}\n' % i)
                seen = None
                for event in store.subscribe(after=head, idle_seconds=10):
                    seen = event
                    break
                if seen is None:
                    proc.send_signal(signal.SIGTERM)
                    print(proc.communicate(timeout=30))
                assert seen is not None and seen.entity_id == f"n{i}"
            (root / "new-session.jsonl").write_bytes(b'{"type":"user","sessionId":"s2","uuid":"z"}\n')
            wait_for_head(store, 5, 10)
            assert store.head() == 5
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "watching" in out and "Traceback" not in err
    batches = [line for line in out.split("watching")[1].splitlines() if line.startswith("+")]
    assert batches and all("(0 duplicates" in line for line in batches), out  # nothing re-read


def test_tail_reads_new_directories_whole_and_watches_a_root_made_again(tmp_path):
    """A directory moved in (or made with a file written at once) sent no event for its files,
    and a root deleted and made again was watched no more: tail ran on, ingesting nothing."""
    root, staging = tmp_path / "projects", tmp_path / "staging"
    (root / "-proj").mkdir(parents=True)
    (root / "-proj" / "s1.jsonl").write_bytes(b'{"type":"user","sessionId":"s1","uuid":"a"}\n')
    db = tmp_path / "e.db"
    proc = subprocess.Popen([sys.executable, "-m", "eventstore", "--db", str(db), "tail", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def reaches(head: int) -> bool:
        deadline = time.time() + 20
        while time.time() < deadline:
            if db.exists():
                with Store(db) as store:
                    if store.head() >= head:
                        return store.head() == head
            time.sleep(0.1)
        return False

    try:
        assert reaches(1)
        time.sleep(0.5)  # the watcher is up
        (staging / "-moved").mkdir(parents=True)
        (staging / "-moved" / "s2.jsonl").write_bytes(b'{"type":"user","sessionId":"s2","uuid":"b"}\n')
        (staging / "-moved").rename(root / "-moved")
        assert reaches(2)
        shutil.rmtree(root)
        time.sleep(0.5)
        (root / "-again").mkdir(parents=True)
        (root / "-again" / "s3.jsonl").write_bytes(b'{"type":"user","sessionId":"s3","uuid":"c"}\n')
        assert reaches(3)
        time.sleep(0.5)
        with open(root / "-again" / "s3.jsonl", "ab") as out:
            out.write(b'{"type":"user","sessionId":"s3","uuid":"d"}\n')
        assert reaches(4)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_tail_waits_out_a_database_held_by_another_writer(tmp_path, monkeypatch):
    """Another process holding the write lock past the retry limit ended tail with an error."""
    import threading

    from eventstore import storage
    from eventstore.ingest.tail import tail

    monkeypatch.setattr(storage, "WRITE_RETRY_SECONDS", 0.3)
    root = tmp_path / "projects" / "-proj"
    root.mkdir(parents=True)
    transcript = root / "s1.jsonl"
    transcript.write_bytes(b'{"type":"user","sessionId":"s1","uuid":"a"}\n')
    busy, stop = [], threading.Event()
    with Store(tmp_path / "e.db") as tailing, Store(tmp_path / "e.db") as store:
        follower = threading.Thread(target=tail, args=(Ingester(tailing, stop=stop), [tmp_path / "projects"],
                                                       lambda report: None, stop), kwargs={"on_busy": busy.append})
        follower.start()
        try:
            wait_for_head(store, 1, 20)
            time.sleep(0.5)  # the watcher is up
            holder = subprocess.Popen(  # another process: locks are per process
                [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
                 " c.execute('BEGIN IMMEDIATE'); print('held', flush=True); sys.stdin.readline()",
                 str(tmp_path / "e.db")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert holder.stdout.readline() == "held\n"
            with open(transcript, "ab") as out:
                out.write(b'{"type":"user","sessionId":"s1","uuid":"b"}\n')
            deadline = time.time() + 20
            while not busy and time.time() < deadline:
                time.sleep(0.05)
            holder.communicate("\n", timeout=30)
            wait_for_head(store, 2, 20)
            assert follower.is_alive() and store.head() == 2
            assert busy and "write lock" in busy[0]
        finally:
            stop.set()
            follower.join(timeout=30)


def test_ctrl_c_while_tail_builds_its_projections_stops_the_build_and_says_so(tmp_path):
    """Ctrl-C while tail built its projections before watching waited for the whole build (5 to
    7 s on a 200 MB tree), then printed a summary that looked complete and began watching."""
    from projections.runner import Runner

    gen = load_generator()
    tree = tmp_path / "projects"
    gen.generate(tree, 40 * 1024 * 1024, seed=3)
    db = tmp_path / "e.db"
    with Store(db) as store:
        Ingester(store).ingest([tree])  # the log alone: tail builds every projection first

    def building() -> bool:
        try:
            with Store(db, read_only=True) as store:
                return bool(store.db.conn.execute("SELECT count(*) FROM projection_checkpoints").fetchall()[0][0])
        except Exception:  # noqa: BLE001 - the runner has not made its tables yet
            return False

    proc = subprocess.Popen([sys.executable, "-m", "eventstore", "--db", str(db), "tail", str(tree)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not building() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert out.startswith("interrupted after ") and "watching" not in out and out.endswith("stopped\n"), out
    with Store(db) as store:
        runner = Runner.for_store(store)
        assert max(runner.behind().values()) > 0  # stopped part of the way
        runner.catch_up()  # and the next catch-up goes on from there
        assert not any(runner.behind().values())
    assert json.loads(run_cli("check", "--json", db=db).stdout)["ok"]


def test_a_long_tail_keeps_a_bounded_number_of_warnings(tmp_path):
    """tail's running total kept every warning it was told, and a file that cannot be read warns
    each time it changes: a tail left running for weeks grew without bound."""
    import os
    import threading

    from eventstore.ingest.ingester import KEPT_WARNINGS
    from eventstore.ingest.tail import tail

    root, staging = tmp_path / "projects", tmp_path / "staging"
    (root / "-proj").mkdir(parents=True)
    (root / "-proj" / "s1.jsonl").write_bytes(b'{"type":"user","sessionId":"s1","uuid":"a"}\n')
    told, totals, stop = [], [], threading.Event()
    with Store(tmp_path / "e.db") as store:
        follower = threading.Thread(target=lambda: totals.append(
            tail(Ingester(store, stop=stop), [root], lambda report: told.extend(report.warnings), stop)))
        follower.start()
        try:
            wait_for_head(store, 1, 20)
            time.sleep(0.5)  # the watcher is up
            for i in range(KEPT_WARNINGS + 50):  # each a directory moved in, holding a pipe: a warning each
                (staging / f"-p{i}").mkdir(parents=True)
                os.mkfifo(staging / f"-p{i}" / "s.jsonl")
                (staging / f"-p{i}").rename(root / f"-p{i}")
            deadline = time.time() + 30
            while len(told) < KEPT_WARNINGS + 50 and time.time() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            follower.join(timeout=30)
    assert len(told) >= KEPT_WARNINGS + 50 and all("not a regular file" in message for message in told)
    total = totals[0]
    assert total.warnings == told[-KEPT_WARNINGS:]
    assert total.warnings_dropped == len(told) - KEPT_WARNINGS


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=__import__("datetime").datetime(1971, 1, 1), max_value=__import__("datetime").datetime(2100, 1, 1)),
       st.text(alphabet="0123456789:.TZ-+x ", max_size=26))
def test_timestamp_fast_path_agrees_with_the_standard_parser(moment, junk):
    from datetime import datetime, timezone

    from eventstore.ingest.lines import parse_timestamp

    def reference(value):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return None if parsed.tzinfo is None else round(parsed.timestamp() * 1000)

    text = moment.replace(tzinfo=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for value in (text, junk, text[:11] + junk[:13] + "Z"):
        assert parse_timestamp(value) == reference(value), value


REPO_EXAMPLES = REPO / "examples" / "projects"


def test_tail_embeds_queued_messages_while_idle(tmp_path):
    from projections.vectors import pending_count

    tree = tmp_path / "projects"
    shutil.copytree(REPO_EXAMPLES, tree)
    db = tmp_path / "e.db"
    run_cli("ingest", str(tree), "--json", db=db)
    with Store(db) as store:
        before = pending_count(store)
    assert before > 100, "the sample tree queues messages for embedding"
    proc = subprocess.Popen([sys.executable, "-m", "eventstore", "--db", str(db), "tail", str(tree)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        with Store(db) as store:
            while pending_count(store) and time.time() < deadline:
                time.sleep(0.2)
            assert pending_count(store) == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_a_file_reached_under_another_name_is_read_once(tmp_path):
    """A tree reached through two roots (one a symlink to the other, as `~/.config/claude/projects`
    and `~/.claude/projects` can be) or a hard link: a name without a checkpoint was read again
    from its start, and each append was then read once per name (the audit found it with tail,
    whose watcher reports a change under every root)."""
    real = tmp_path / "a" / "projects"
    shutil.copytree(REPO / "examples" / "projects", real)
    alias = tmp_path / "b"
    alias.symlink_to(real)
    transcript = sorted(real.rglob("*.jsonl"))[0]
    linked = tmp_path / "hard.jsonl"
    linked.hardlink_to(transcript)
    with Store(tmp_path / "e.db") as store:
        first = Ingester(store).ingest([real])
        assert first.events_appended > 0 and store.head() == first.events_appended
        again = Ingester(store).ingest([alias, linked])
        assert (again.files, again.lines, again.events_appended, again.duplicates) == (0, 0, 0, 0)
        with open(transcript, "ab") as out:
            out.write(b'{"type":"user","sessionId":"s9","uuid":"appended"}\n')
        under_both = [alias / transcript.relative_to(real), transcript, linked]
        report = Ingester(store).ingest_files(under_both)
        assert (report.files, report.lines, report.events_appended, report.duplicates) == (1, 1, 1, 0)
        names = {path for (path,) in store.db.conn.execute("SELECT path FROM sources")}
        assert str(transcript) in names and not any(str(tmp_path / "b") in name or "hard" in name for name in names)
