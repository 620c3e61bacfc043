"""The console script's click-free path for warm usage reports gives exactly the click command's output."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from eventstore.warm_usage import _parse


def run(db, args, fast: bool) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if not fast:
        env["EVENTSTORE_NO_FAST_PATH"] = "1"
    return subprocess.run([sys.executable, "-m", "eventstore", *args], capture_output=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    from conftest import CORPUS

    if not CORPUS.is_dir():
        pytest.skip(f"the shared transcript corpus is not at {CORPUS}")
    path = tmp_path_factory.mktemp("warm") / "e.db"
    subprocess.run([sys.executable, "-m", "eventstore", "--db", str(path), "ingest", str(CORPUS), "--json"],
                   check=True, capture_output=True)
    return path


@pytest.mark.parametrize("args", [
    ["usage", "daily", "--json"],
    ["usage", "weekly", "--json", "--timezone", "Asia/Kolkata"],
    ["usage", "monthly", "--json", "--since=20250101", "--until", "20261231"],
    ["usage", "session", "--json", "--since", "20250601"],
])
def test_fast_path_output_equals_the_click_command(db, args):
    for where in (["--db", str(db)], None):
        full = (where + args) if where else (args + ["--db", str(db)])
        fast, slow = run(db, full, fast=True), run(db, full, fast=False)
        assert fast.returncode == slow.returncode == 0, slow.stderr
        assert fast.stdout == slow.stdout and fast.stdout.startswith(b"{")
        assert fast.stderr == slow.stderr


def test_anything_else_is_left_to_click():
    assert _parse(["usage", "daily", "--json"]) == ("daily", {"--since": None, "--until": None, "--timezone": None, "--db": None})
    for argv in (["usage", "daily"], ["usage", "daily", "--json", "--help"], ["usage", "yearly", "--json"],
                 ["sessions", "--json"], ["usage", "daily", "--json", "--bogus", "1"], ["usage", "daily", "--json", "extra"],
                 ["usage", "--json", "daily"], ["--json", "usage", "daily"], ["usage", "--db", "x", "daily", "--json"],
                 ["--since", "20260101", "usage", "daily", "--json"]):
        assert _parse(argv) is None, argv  # click refuses all but the first four: so must the fast path


def test_the_fast_path_takes_what_click_takes(db):
    """`usage --json daily` was answered while the read model was warm and refused by click
    (no such option) once it was not: a script passed in testing and failed later."""
    for args in (["usage", "--json", "daily"], ["--json", "usage", "daily"], ["usage", "daily", "--json", "x"],
                 ["--db", str(db), "usage", "daily", "--json"], ["usage", "daily", "--json", "--db", str(db)]):
        env_db = [] if "--db" in args else ["--db", str(db)]
        fast, slow = run(db, env_db + args, fast=True), run(db, env_db + args, fast=False)
        assert fast.returncode == slow.returncode and fast.stdout == slow.stdout, args


def test_an_empty_eventstore_db_is_refused_as_an_empty_db_option_is(tmp_path):
    env = {**os.environ, "EVENTSTORE_DB": "", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    for args in (["usage", "daily", "--json"], ["sessions", "--json"]):
        result = subprocess.run([sys.executable, "-m", "eventstore", *args], capture_output=True, env=env, timeout=120)
        assert result.returncode == 2 and b"$EVENTSTORE_DB is set but empty" in result.stderr, result.stderr
    assert not (tmp_path / "data").exists()  # no default database was made


def test_bad_values_get_click_errors(tmp_path):
    result = run(tmp_path / "e.db", ["--db", str(tmp_path / "e.db"), "usage", "daily", "--json", "--since", "yesterday"], fast=True)
    assert result.returncode == 2 and b"YYYYMMDD" in result.stderr and b"Traceback" not in result.stderr


def test_a_database_from_a_newer_version_is_refused_not_read(tmp_path):
    """The fast path read a built usage model whatever the schema; every other command refuses."""
    import apsw

    from conftest import REPO
    from eventstore.storage import latest_schema_version
    from eventstore.warm_usage import schema_version

    assert schema_version() == latest_schema_version()
    db = tmp_path / "e.db"
    subprocess.run([sys.executable, "-m", "eventstore", "--db", str(db), "ingest", str(REPO / "examples" / "projects")],
                   check=True, capture_output=True)
    assert run(db, ["--db", str(db), "usage", "daily", "--json"], fast=True).returncode == 0
    with apsw.Connection(str(db)) as conn:
        conn.execute(f"PRAGMA user_version = {latest_schema_version() + 1}")
    result = run(db, ["--db", str(db), "usage", "daily", "--json"], fast=True)
    assert result.returncode == 1 and result.stdout == b""
    assert "upgrade eventstore" in result.stderr.decode()
