"""`eventstore backup`: an online, consistent copy taken while another process keeps writing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

from conftest import REPO, new_event, run_cli
from eventstore import Store
from eventstore.backup import backup

WRITER = """
import sys, time, uuid
sys.path.insert(0, {repo!r})
from eventstore import Store, NewEvent
with Store({db!r}) as s:
    i = 0
    deadline = time.time() + {seconds}
    while time.time() < deadline:
        # Two events per transaction, on two streams: a copy must never hold one without the other.
        s.append([NewEvent(event_id=uuid.uuid4().hex, stream=f"{{k}}", type="t", entity="e", entity_id=str(i),
                           op="create", data=(f"{{i}}:" + "x" * 2000).encode()) for k in ("left", "right")])
        i += 1
    print(i)
"""


def test_backup_while_another_process_writes_is_consistent_and_passes_check(tmp_path):
    db = tmp_path / "events.db"
    with Store(db) as store:  # a few MB first, so the copy takes many steps
        for start in range(0, 4000, 1000):
            store.append([new_event(f"seed-{i % 7}", os.urandom(1500).hex().encode()) for i in range(start, start + 1000)])
    writer = subprocess.Popen([sys.executable, "-c", WRITER.format(repo=str(REPO), db=str(db), seconds=6)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    copies = []
    try:
        time.sleep(0.5)
        with Store(db) as store:
            for n in range(3):
                dest = tmp_path / "backups" / f"copy-{n}.db"
                report = backup(store, dest, pages_per_step=64)
                assert report.steps > 1
                copies.append(dest)
    finally:
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err.decode()
    assert int(out) > 10  # the writer was not starved
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700
    for dest in copies:
        assert stat.S_IMODE(dest.stat().st_mode) == 0o600
        assert not os.path.exists(f"{dest}-wal")
        with Store(dest) as copy:
            left, right = copy.stream_version("left"), copy.stream_version("right")
            assert left == right  # never half a transaction
            assert copy.head() == 4000 + left + right
        report = json.loads(run_cli("check", "--json", db=dest).stdout)
        assert report["ok"], report["problems"]


def test_backup_command_refuses_to_overwrite_without_force(tmp_path):
    db = tmp_path / "events.db"
    with Store(db) as store:
        store.append([new_event()])
    dest = tmp_path / "copy.db"
    first = json.loads(run_cli("backup", str(dest), "--json", db=db).stdout)
    assert first["path"] == str(dest) and first["bytes"] == dest.stat().st_size
    again = run_cli("backup", str(dest), db=db, check=False)
    assert again.returncode == 1 and "--force" in again.stderr.decode() and "Traceback" not in again.stderr.decode()
    with Store(db) as store:
        store.append([new_event()])
    run_cli("backup", str(dest), "--force", db=db)
    with Store(dest) as copy:
        assert copy.head() == 2
    same = run_cli("backup", str(db), "--force", db=db, check=False)
    assert same.returncode == 1 and "the database itself" in same.stderr.decode()
