"""Everything at once: `tail` ingesting a growing tree while other processes add tasks and memories,
search, list sessions and replay, for a bounded time. No error reaches a user, nothing is lost,
and a reader never sees half a transaction."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import load_generator, run_cli
from eventstore import Store
from eventstore.ingest.lines import complete_lines, line_pieces
from eventstore.ingest.sources import fallback_session, origins
from test_ingest import assert_every_line_kept

RUN_SECONDS = float(os.environ.get("EVENTSTORE_CONCURRENCY_SECONDS", "15"))
BAD_OUTPUT = ("locked", "Traceback", "busy", "Error")


def cli(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "eventstore", "--db", str(db), *args]


class Loop(threading.Thread):
    """Run one command again and again until stopped; keep every failure and what it printed."""

    def __init__(self, db: Path, make_args, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.db, self.make_args, self.stop = db, make_args, stop
        self.runs: list[list[str]] = []
        self.failures: list[str] = []

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            args = self.make_args(i)
            result = subprocess.run(cli(self.db, *args), capture_output=True, timeout=120)
            err = result.stderr.decode()
            if result.returncode != 0 or any(word in err for word in BAD_OUTPUT):
                self.failures.append(f"{' '.join(args)} -> {result.returncode}: {err[-1500:]}")
            self.runs.append(args)
            i += 1


class Feeder(threading.Thread):
    """Append the lines of staged transcripts into new files under the watched root, a few at a time."""

    def __init__(self, staged: Path, root: Path, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.staged, self.root, self.stop = staged, root, stop
        self.written: list[Path] = []

    def run(self) -> None:
        for source in sorted(self.staged.rglob("*.jsonl")):
            target = self.root / "-fed" / source.relative_to(self.staged).as_posix().replace("/", "_")
            target.parent.mkdir(parents=True, exist_ok=True)
            self.written.append(target)
            data = source.read_bytes()
            step = max(len(data) // 8, 1)
            for start in range(0, len(data), step):  # torn mid-line on purpose: tail must wait for the rest
                if self.stop.is_set():
                    return
                with open(target, "ab") as out:
                    out.write(data[start:start + step])
                time.sleep(0.05)


def expected_offsets(path: Path, upto: int) -> set[int]:
    """Offsets of every object and quarantined line in the first `upto` bytes of a file."""
    with open(path, "rb") as f:
        data = f.read(upto)
    lines, _ = complete_lines(data, 0)
    session = fallback_session(path)
    return {piece.offset for offset, line in lines for piece in line_pieces(offset, line, session)}


class AtomicityReader(threading.Thread):
    """In each snapshot, every file's checkpoint must cover exactly the events and quarantine rows stored
    for it: a checkpoint without its events (or events without their checkpoint) is half a transaction."""

    def __init__(self, db: Path, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.db, self.stop = db, stop
        self.snapshots = 0
        self.violations: list[str] = []
        self.errors: list[str] = []
        self._cache: dict[tuple[str, int], set[int]] = {}

    def run(self) -> None:
        with Store(self.db) as store:
            while not self.stop.is_set():
                try:
                    with store.db.read() as conn:
                        sources = conn.execute("SELECT source_id, path, offset FROM sources").fetchall()
                        stored: dict[int, set[int]] = {}
                        paths = {path: source_id for source_id, path, _ in sources}
                        for path, offset, _ in origins(conn):
                            stored.setdefault(paths[path], set()).add(offset)
                        for source_id, offset in conn.execute("SELECT source_id, offset FROM quarantine").fetchall():
                            stored.setdefault(source_id, set()).add(offset)
                        memory_events = conn.execute(
                            "SELECT count(*) FROM event_log WHERE type = 'memory.added'").fetchall()[0][0]
                        memory_rows = conn.execute("SELECT count(*) FROM memories").fetchall()[0][0]
                        inline = conn.execute("SELECT position FROM projection_checkpoints WHERE name = 'memories'"
                                              ).fetchall()
                        head = conn.execute("SELECT max(position) FROM events").fetchall()[0][0]
                except Exception as exc:  # noqa: BLE001 - any error here is a finding
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                for source_id, path, offset in sources:
                    key = (path, offset)
                    if key not in self._cache:
                        self._cache[key] = expected_offsets(Path(path), offset)
                    if stored.get(source_id, set()) != self._cache[key]:
                        self.violations.append(f"{path} checkpoint {offset}: stored objects do not match")
                if inline and inline[0][0] == head and memory_rows != memory_events:
                    self.violations.append(f"memories at the head but {memory_rows} rows for {memory_events} events")
                self.snapshots += 1
                time.sleep(0.02)


def test_tail_with_writers_readers_and_replay_at_once(tmp_path):
    generator = load_generator()
    root = tmp_path / "projects"
    generator.generate(root, 3_000_000, seed=11)
    staged = tmp_path / "staged"
    generator.generate(staged, 600_000, seed=12)
    db = tmp_path / "events.db"
    Store(db).close()

    tail = subprocess.Popen(cli(db, "tail", str(root)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()
    loops = [
        Loop(db, lambda i: ["tasks", "add", f"concurrent task {i}", "--json"], stop),
        Loop(db, lambda i: ["memories", "add", f"concurrent memory {i}", "--tag", "load", "--json"], stop),
        Loop(db, lambda i: ["search", ("function", "session", "memory")[i % 3], "--json"], stop),
        Loop(db, lambda i: ["sessions", "--json", "--limit", "5"], stop),
        Loop(db, lambda i: ["replay", "--json"], stop),
    ]
    feeder = Feeder(staged, root, stop)
    reader = AtomicityReader(db, stop)
    try:
        deadline = time.time() + 60
        while "watching" not in (tail.stdout.readline() or "") and time.time() < deadline:
            pass
        for thread in (*loops, feeder, reader):
            thread.start()
        time.sleep(RUN_SECONDS)
    finally:
        stop.set()
        for thread in (*loops, feeder, reader):
            thread.join(timeout=120)
    try:
        files = sorted(root.rglob("*.jsonl"))
        sizes = {str(f): f.stat().st_size for f in files}
        with Store(db) as store:  # let tail finish what was written last
            deadline = time.time() + 30
            while time.time() < deadline:
                done = dict(store.db.conn.execute("SELECT path, size FROM sources").fetchall())
                if all(done.get(path) == size for path, size in sizes.items()):
                    break
                time.sleep(0.1)
    finally:
        tail.send_signal(signal.SIGTERM)
        out, err = tail.communicate(timeout=60)

    assert tail.returncode == 0, err
    assert not any(word in err for word in BAD_OUTPUT), err
    failures = [f for loop in loops for f in loop.failures]
    assert not failures, "\n".join(failures)
    assert all(len(loop.runs) >= 2 for loop in loops), [len(loop.runs) for loop in loops]
    assert reader.snapshots > 20 and not reader.errors, reader.errors[:5]
    assert not reader.violations, reader.violations[:5]

    tasks = {t["title"] for t in json.loads(run_cli("tasks", "--json", db=db).stdout)["tasks"]}
    added_tasks = {f"concurrent task {i}" for i in range(len(loops[0].runs))}
    assert added_tasks <= tasks
    memories = {m["text"] for m in json.loads(run_cli("memories", "list", "--json", db=db).stdout)["memories"]}
    assert {f"concurrent memory {i}" for i in range(len(loops[1].runs))} <= memories
    with Store(db) as store:
        assert_every_line_kept(store, files)
    assert json.loads(run_cli("check", "--json", db=db).stdout)["ok"]
