"""Several processes appending to one database: a gap-free log with nothing lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from eventstore import Store

WRITER = """
import sys, uuid
sys.path.insert(0, {repo!r})
from eventstore import Store, NewEvent
name, batches = sys.argv[1], int(sys.argv[2])
with Store({db!r}) as s:
    for i in range(batches):
        s.append([NewEvent(event_id=uuid.uuid4().hex, stream=f"{{name}}-{{i % 3}}", type="t", entity="e",
                           entity_id=str(i), op="create", data=f"{{name}}:{{i}}:{{j}}".encode()) for j in range(5)])
"""


def test_two_processes_append_concurrently(tmp_path):
    db = tmp_path / "events.db"
    Store(db).close()
    code = WRITER.format(repo=str(Path(__file__).resolve().parent.parent), db=str(db))
    procs = [subprocess.Popen([sys.executable, "-c", code, name, "150"], stderr=subprocess.PIPE)
             for name in ("p", "q")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    with Store(db) as s:
        events = s.read_all()
        assert [e.position for e in events] == list(range(1, 2 * 150 * 5 + 1))
        payloads = {e.data for e in events}
        assert payloads == {f"{n}:{i}:{j}".encode() for n in ("p", "q") for i in range(150) for j in range(5)}
        for name in ("p", "q"):
            for k in range(3):
                versions = [e.version for e in s.read_stream(f"{name}-{k}")]
                assert versions == list(range(1, len(versions) + 1))


HOLDER = """
import sys, apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("BEGIN IMMEDIATE")
conn.execute("CREATE TABLE held (x)")
print("holding", flush=True)
sys.stdin.read()  # until the test is done
"""


def test_queries_answer_while_another_process_holds_the_write_lock(tmp_path):
    """A replay's batch or the swap at its end, an ingest's commit, a compact's VACUUM: while any
    writer holds the lock, reading commands answer at once. Opening the store took the write
    lock (its client id, the auto_vacuum pragma), and so did a catch-up with nothing to do, so
    each failed after 5 s, or waited a minute."""
    from conftest import REPO, run_cli

    db = tmp_path / "events.db"
    run_cli("ingest", str(REPO / "examples" / "projects"), db=db)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"holding\n"
        for args in (["events", "--json", "--limit", "1"], ["sessions", "--json"], ["tasks", "--json"],
                     ["usage", "daily", "--json"], ["search", "test", "--json"], ["changes", "--json"],
                     ["memories", "list", "--json"], ["quarantine", "--json"], ["stats", "--json"]):
            result = subprocess.run([sys.executable, "-m", "eventstore", "--db", str(db), *args],
                                    capture_output=True, timeout=30)  # the writer retries for 60 s
            assert result.returncode == 0, (args, result.stderr.decode())
        assert holder.poll() is None  # the lock was held throughout
    finally:
        holder.communicate(b"", timeout=30)
