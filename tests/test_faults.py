"""Faults: a full disk, unreadable files and directories, symlink loops, a transcript over 1 GB."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import load_generator, run_cli
from eventstore import StorageFull, Store
from eventstore.check import check
from eventstore.ingest import Ingester
from test_ingest import assert_every_line_kept

NOBODY = 65534


def line(session: str, uuid: str, text: str = "hello") -> bytes:
    return json.dumps({"type": "user", "sessionId": session, "uuid": uuid,
                       "timestamp": "2026-06-01T00:00:00.000Z", "message": {"role": "user", "content": text}}).encode() + b"\n"


# ---------------------------------------------------------------- disk full


def test_a_full_disk_stops_ingestion_with_storage_full_and_it_resumes_without_loss(tmp_path):
    tree = tmp_path / "projects"
    load_generator().generate(tree, 2_000_000, seed=21)
    files = sorted(tree.rglob("*.jsonl"))
    db = tmp_path / "events.db"
    with Store(db) as store:
        first = Ingester(store).ingest_files(files[: len(files) // 2])
        before = store.head()
        assert before == first.events_appended > 0
        pages = store.db.conn.execute("PRAGMA page_count").fetchall()[0][0]
        page_size = store.db.conn.execute("PRAGMA page_size").fetchall()[0][0]
        # SQLite's own size limit stands for a full disk (the same SQLITE_FULL error): 64 KB more.
        store.db.conn.execute(f"PRAGMA max_page_count = {pages + max(2, 65536 // page_size)}").fetchall()
        with pytest.raises(StorageFull, match="full"):
            Ingester(store).ingest([tree])
        stopped_at = store.head()
        assert stopped_at == before  # the batch that did not fit left nothing behind
        assert check(store).ok
        with pytest.raises(StorageFull):  # still full: a second try fails the same clean way
            Ingester(store).ingest([tree])
        assert store.head() == stopped_at
        store.db.conn.execute("PRAGMA max_page_count = 4294967294").fetchall()  # space freed
        report = Ingester(store).ingest([tree])
        assert report.events_appended > 0
        assert_every_line_kept(store, files)
        again = Ingester(store).ingest([tree])
        assert again.events_appended == 0 and again.lines == 0  # nothing left over, nothing read twice
        ids = [e.event_id for e in store.read_all()]
        assert len(ids) == len(set(ids))
        assert check(store).ok


# ---------------------------------------------------------------- permissions


def _ingest_as_nobody(db: Path, root: Path) -> dict:
    """Ingest in a forked child that has given up root (root reads files whatever their mode)."""
    import eventstore.codec

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no exec (the interpreter lives where nobody may not read)
        status = 1
        try:
            os.close(read_fd)
            eventstore.codec._worker = None  # the parent's compression thread does not exist here
            if os.getuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            with Store(db) as store:
                report = Ingester(store).ingest([root])
                result = {"warnings": report.warnings, "files": report.files, "events": report.events_appended,
                          "uid": os.getuid()}
            os.write(write_fd, json.dumps(result).encode())
            status = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write_fd, json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        output = pipe.read()
    _, status = os.waitpid(pid, 0)
    result = json.loads(output)
    assert os.waitstatus_to_exitcode(status) == 0, result
    return result


def test_unreadable_files_and_directories_are_skipped_with_a_warning():
    base = Path(tempfile.mkdtemp(prefix="eventstore-perm-"))
    try:
        os.chmod(base, 0o755)
        root = base / "projects"
        (root / "-ok").mkdir(parents=True)
        (root / "-ok" / "good.jsonl").write_bytes(line("good", "g1") + line("good", "g2"))
        secret_file = root / "-ok" / "unreadable.jsonl"
        secret_file.write_bytes(line("hidden", "h1"))
        locked = root / "-locked"
        locked.mkdir()
        (locked / "inside.jsonl").write_bytes(line("inside", "i1"))
        for d in (root, root / "-ok"):
            os.chmod(d, 0o755)
        os.chmod(root / "-ok" / "good.jsonl", 0o644)
        os.chmod(secret_file, 0o000)
        os.chmod(locked, 0o000)
        data = base / "data"
        data.mkdir(mode=0o700)
        if os.getuid() == 0:
            os.chown(data, NOBODY, NOBODY)
        result = _ingest_as_nobody(data / "events.db", root)
        assert result["uid"] != 0
        assert result["events"] == 2 and result["files"] == 1
        warnings = "\n".join(result["warnings"])
        assert f"skipping {secret_file}: Permission denied" in warnings
        assert f"skipping {locked}: Permission denied" in warnings
    finally:
        for path in (base / "projects" / "-locked", base / "projects" / "-ok" / "unreadable.jsonl"):
            if path.exists():
                os.chmod(path, 0o755)
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------- symlink loops


def test_symlink_loops_under_a_root_do_not_hang_ingest_or_tail(tmp_path):
    root = tmp_path / "projects"
    project = root / "-p"
    project.mkdir(parents=True)
    (project / "real.jsonl").write_bytes(line("real", "r1"))
    (project / "loop").symlink_to(project, target_is_directory=True)  # a directory that contains itself
    (project / "up").symlink_to(root, target_is_directory=True)
    (project / "self.jsonl").symlink_to(project / "self.jsonl")  # a file link to itself
    (project / "a.jsonl").symlink_to(project / "b.jsonl")  # two links to each other
    (project / "b.jsonl").symlink_to(project / "a.jsonl")
    db = tmp_path / "events.db"

    result = run_cli("ingest", str(root), "--json", db=db)  # run_cli has a timeout: a hang fails
    summary = json.loads(result.stdout)
    assert summary["events_appended"] == 1
    err = result.stderr.decode()
    assert "Traceback" not in err and "self.jsonl" in err and "Too many levels of symbolic links" in err

    tail = subprocess.Popen([sys.executable, "-m", "eventstore", "--db", str(db), "tail", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while "watching" not in (tail.stdout.readline() or "") and time.time() < deadline:
            pass
        with open(project / "real.jsonl", "ab") as out:
            out.write(line("real", "r2"))
        with Store(db) as store:
            deadline = time.time() + 20
            while store.head() < 2 and time.time() < deadline:
                time.sleep(0.05)
            assert store.head() == 2
    finally:
        tail.send_signal(signal.SIGTERM)
        out, err = tail.communicate(timeout=30)
    assert tail.returncode == 0 and "Traceback" not in err, err


# ---------------------------------------------------------------- a very large file

BIG_TESTS = os.environ.get("EVENTSTORE_BIG_TESTS") == "1"
GIANT_LINE_RSS_MB = 400
"""A line over the 64 MB limit is held once, copied once into quarantine and once through SQLite's
page cache: about 4 x 64 MB on top of the interpreter, whatever the file's size."""
REAL_LINES_RSS_MB = 600
"""Measured 520 MB for 1.1 GB of real lines: ~270 MB while the log is written (queued batches and
SQLite's 64 MB page cache), plus up to 256 MB of the database file mapped by mmap_size while the
projections catch up (file-backed, reclaimable pages that RSS counts)."""


def ingest_peak(db: Path, root: Path) -> tuple[dict, float, float]:
    """Run `eventstore ingest` in a child; return (its summary, its own peak RSS in MB, seconds)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "eventstore", "--db", str(db), "ingest", str(root), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (ru_maxrss in KiB on Linux)
    assert os.waitstatus_to_exitcode(status) == 0, err.decode()
    return json.loads(out), usage.ru_maxrss / 1024, time.perf_counter() - started


def sparse_transcript(path: Path, hole: int) -> None:
    """Real lines, then a sparse hole of `hole` NUL bytes ending in a newline (one over-long line), then more."""
    path.parent.mkdir(parents=True)
    with open(path, "wb") as out:
        for i in range(1000):
            out.write(line("big", f"before-{i}", "x" * 200))
        out.seek(out.tell() + hole)
        out.write(b"\n")
        for i in range(1000):
            out.write(line("big", f"after-{i}", "y" * 200))


def test_a_transcript_over_1_gb_is_streamed_in_memory_that_does_not_grow_with_it(tmp_path):
    peaks = {}
    for name, hole in (("small", 128 << 20), ("big", (1 << 30) + 12345)):
        root = tmp_path / name / "projects"
        big = root / "-big" / "big.jsonl"
        sparse_transcript(big, hole)
        summary, peaks[name], seconds = ingest_peak(tmp_path / name / "events.db", root)
        print(f"{big.stat().st_size / 2**20:.0f} MiB file: {seconds:.1f} s, peak RSS {peaks[name]:.0f} MB")
        assert summary["events_appended"] == 2000 and summary["quarantined"] == 1
        assert summary["bytes"] == big.stat().st_size
        with Store(tmp_path / name / "events.db") as store:
            (reason,) = store.db.conn.execute("SELECT reason FROM quarantine").fetchall()[0]
            assert reason == f"line longer than the {64 << 20}-byte limit: only its first {64 << 20} bytes are kept"
    assert (1 << 30) < (tmp_path / "big" / "projects" / "-big" / "big.jsonl").stat().st_size
    assert peaks["big"] < GIANT_LINE_RSS_MB, peaks
    assert peaks["big"] < peaks["small"] + 48, peaks  # 8 times the bytes, not more memory


@pytest.mark.skipif(not BIG_TESTS, reason="about 90 s: set EVENTSTORE_BIG_TESTS=1 to run it")
def test_a_transcript_of_over_1_gb_of_real_lines_is_ingested_in_bounded_memory(tmp_path):
    tree = tmp_path / "tree"
    load_generator().generate(tree, 64 << 20, seed=5, workers=2)
    data = b"".join(p.read_bytes() for p in sorted(tree.rglob("*.jsonl"))).replace(b"\n\n", b"\n")
    data += b"" if data.endswith(b"\n") else b"\n"
    root = tmp_path / "projects"
    big = root / "-p" / "huge.jsonl"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as out:
        copy = 0
        while out.tell() <= 1 << 30:  # each copy in sessions of its own, so its lines are new events
            out.write(data.replace(b'"sessionId":"', b'"sessionId":"copy%d-' % copy))
            copy += 1
    summary, peak, seconds = ingest_peak(tmp_path / "events.db", root)
    print(f"{big.stat().st_size / 2**20:.0f} MiB of real lines: {seconds:.1f} s, peak RSS {peak:.0f} MB")
    assert summary["bytes"] == big.stat().st_size and summary["events_appended"] > 400_000
    assert peak < REAL_LINES_RSS_MB
