"""What the command line does when the system says no: a missing directory, a full disk, a closed
or abandoned output, a number too large, a file that is not a transcript. One line on stderr and
a non-zero status, never a traceback; a reader leaving the pipe early is not an error."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli

SAMPLE = REPO / "examples" / "projects" / "-home-dana-src-bench"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "events.db"
    run_cli("ingest", str(SAMPLE), db=path)
    return path


def _failed_cleanly(result: subprocess.CompletedProcess, status: int = 1) -> str:
    stderr = result.stderr.decode()
    assert result.returncode == status, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    return stderr


def test_a_missing_directory_is_named(db, tmp_path):
    stderr = _failed_cleanly(run_cli("export", str(tmp_path / "no" / "such" / "x.jsonl"), db=db, check=False))
    assert f"Error: {tmp_path / 'no' / 'such' / 'x.jsonl'}: No such file or directory" in stderr
    inside_a_file = tmp_path / "notes.txt"
    inside_a_file.write_text("notes")
    stderr = _failed_cleanly(run_cli("tasks", "--json", db=inside_a_file / "x.db", check=False))
    assert "Not a directory" in stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
@pytest.mark.parametrize("args", [("tasks", "--json"), ("usage", "daily", "--json"), ("sessions",)],
                         ids=["json", "fast usage report", "table"])
def test_a_full_disk_under_the_output_is_an_error(db, args):
    with open("/dev/full", "wb") as full:
        result = subprocess.run([sys.executable, "-m", "eventstore", "--db", str(db), *args], stdout=full,
                                stderr=subprocess.PIPE, timeout=120)
    assert "Error: No space left on device" in _failed_cleanly(result)


def test_a_closed_output_is_an_error(db):
    result = subprocess.run([sys.executable, "-m", "eventstore", "--db", str(db), "tasks", "--json"],
                            stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1), timeout=120)
    assert "standard output is closed" in _failed_cleanly(result)


@pytest.mark.parametrize("args", [("stats",), ("events", "--json"), ("sessions",)])
def test_a_reader_leaving_the_pipe_ends_the_command_quietly(db, args):
    process = subprocess.Popen([sys.executable, "-m", "eventstore", "--db", str(db), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the command has written anything: its first write fails
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, stderr
    assert stderr == ""


@pytest.mark.parametrize("args", [("events", "--json", "--limit", "99999999999999999999"),
                                  ("events", "--after", "99999999999999999999"),
                                  ("changes", "--since", "99999999999999999999"),
                                  ("export", "-", "--since", "99999999999999999999")])
def test_a_number_too_large_for_the_database_is_a_usage_error(db, args):
    stderr = _failed_cleanly(run_cli(*args, db=db, check=False), status=2)
    assert "is not in the range 0<=x<=9223372036854775807" in stderr


def test_a_pipe_or_a_stray_file_among_the_roots_is_skipped_with_a_warning(tmp_path):
    root = tmp_path / "projects" / "-p"
    root.mkdir(parents=True)
    shutil.copy(SAMPLE / "agent-29bc318c.jsonl", root)
    os.mkfifo(root / "pipe.jsonl")  # opening it would wait for a writer forever
    stray = tmp_path / "notes.txt"
    stray.write_text("not a transcript")
    result = run_cli("ingest", str(tmp_path / "projects"), str(stray), "--json", db=tmp_path / "e.db")
    assert f"skipping {root / 'pipe.jsonl'}: not a regular file" in result.stderr.decode()
    assert f"skipping {stray}: not a transcript" in result.stderr.decode()
    assert b'"files":1,' in result.stdout


def test_each_claude_config_dir_entry_is_read_under_its_projects(tmp_path):
    config = tmp_path / "projects"  # an entry that is itself named projects gets /projects too
    (config / "projects" / "-p").mkdir(parents=True)
    shutil.copy(SAMPLE / "agent-29bc318c.jsonl", config / "projects" / "-p")
    shutil.copy(SAMPLE / "agent-3574c9de.jsonl", config)  # not under projects/: not a transcript root
    result = run_cli("ingest", "--json", db=tmp_path / "e.db", env={"CLAUDE_CONFIG_DIR": str(config)})
    assert b'"files":1,' in result.stdout


def test_a_backup_makes_every_missing_directory_private(db, tmp_path):
    run_cli("backup", str(tmp_path / "copies" / "nested" / "b.db"), db=db)
    for directory in (tmp_path / "copies", tmp_path / "copies" / "nested"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


@pytest.mark.parametrize("args", [("--db", "", "tasks", "--json"), ("tasks", "--db", "", "add", "x"),
                                  ("--db", "", "usage", "daily", "--json")])
def test_an_empty_database_path_is_refused_not_taken_for_the_default(tmp_path, args):
    """`--db "$UNSET"` in a script went to the default database: the user's real history."""
    home = tmp_path / "home"
    result = subprocess.run([sys.executable, "-m", "eventstore", *args], capture_output=True, timeout=120,
                            env={**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data")})
    assert "the database path is empty" in _failed_cleanly(result, status=2)
    assert not home.exists()


def test_a_relative_xdg_data_home_is_ignored(tmp_path):
    """The XDG spec says to ignore a relative `$XDG_DATA_HOME`; taken as it was, it put a new
    database under whatever directory the command ran in."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-m", "eventstore", "stats", "--json"], capture_output=True, timeout=120,
                            cwd=elsewhere, env={**os.environ, "HOME": str(home), "XDG_DATA_HOME": "data"})
    assert result.returncode == 0, result.stderr.decode()
    assert (home / ".local" / "share" / "eventstore" / "events.db").is_file()
    assert list(elsewhere.iterdir()) == []


def test_the_first_and_last_dates_are_open_ends_not_errors(db):
    """--until 99991231 has no next day, and midnight of 0001-01-01 east of UTC falls in year 0:
    both gave tracebacks, and `usage session --until 99991231` an empty report."""
    tokyo = {"TZ": "Asia/Tokyo"}

    def doc(*args: str) -> dict:
        import json

        result = run_cli(*args, "--json", db=db, env=tokyo, check=False)
        _failed_cleanly(result, 0)
        return json.loads(result.stdout)

    everything = doc("usage", "session")["totals"]["totalTokens"]
    assert everything > 0
    for zone in ((), ("--timezone", "Asia/Tokyo")):
        assert doc("usage", "session", "--since", "00010101", "--until", "99991231", *zone)["totals"]["totalTokens"] \
            == everything
    assert doc("usage", "daily", "--until", "99991231")["totals"]["totalTokens"] == everything
    sessions = doc("sessions")["sessions"]
    assert doc("sessions", "--since", "00010101", "--until", "99991231")["sessions"] == sessions
    assert doc("search", "the", "--since", "00010101", "--until", "99991231") == doc("search", "the")
    assert doc("tasks", "--as-of", "0001-01-01") == {"tasks": []}
    assert doc("tasks", "--as-of", "9999-12-31T23:59:59") == doc("tasks")
    stderr = _failed_cleanly(run_cli("usage", "session", "--since", "00000101", db=db, check=False), 2)
    assert "'00000101' is not a date YYYYMMDD" in stderr


@pytest.mark.parametrize("args", [("tasks", "add", b"bad\xffbyte"), ("memories", "add", b"bad\xffbyte"),
                                  ("sessions", "--project", b"bad\xff"), ("tasks", "--status", b"bad\xff"),
                                  ("memories", "list", "--tag", b"\xfe")])
def test_text_that_is_not_utf8_is_a_usage_error(db, args):
    """A shell passes any bytes: such text could be neither stored nor shown (it gave tracebacks)."""
    result = subprocess.run([sys.executable.encode(), b"-m", b"eventstore", b"--db", bytes(db),
                             *(a if isinstance(a, bytes) else a.encode() for a in args)],
                            capture_output=True, timeout=120)
    assert "is not UTF-8 text" in _failed_cleanly(result, 2)


def test_ctrl_c_ends_any_command_with_status_130_and_no_message(db):
    """Ctrl-C ended every command but ingest with click's "Aborted!" and status 1; a shell's scripts
    take 130 (128 + SIGINT) for an interrupted command. Here `tasks add` waits for the write lock
    another process holds when the signal comes."""
    import signal
    import time

    holder = subprocess.Popen(  # another process: SQLite's locks are per process
        [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
         " c.execute('BEGIN IMMEDIATE'); print('held', flush=True); sys.stdin.readline()", str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        waiting = subprocess.Popen([sys.executable, "-m", "eventstore", "--db", str(db), "tasks", "add", "write it"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)  # started, and waiting for the lock
        assert waiting.poll() is None
        waiting.send_signal(signal.SIGINT)
        out, err = waiting.communicate(timeout=30)
    finally:
        holder.communicate("\n", timeout=30)
    assert waiting.returncode == 130, err
    assert "Traceback" not in err and "Aborted" not in err, err
    tasks = json.loads(run_cli("tasks", "--json", db=db).stdout)["tasks"]
    assert tasks and "write it" not in [task["title"] for task in tasks]
