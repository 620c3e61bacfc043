"""`eventstore redact`: a secret leaves every table, the dictionaries, the database file and its WAL."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import apsw
import pytest

from conftest import load_generator, new_event, run_cli
from eventstore import Store
from eventstore.redact import RedactError, redact

SECRET = b"sk-ant-api03-Zq8TopSecretKey4242xyzzy"
PATTERN = r"sk-ant-api03-[A-Za-z0-9]+"


def raw_bytes(db: Path) -> bytes:
    """The database file and its WAL, as bytes on disk."""
    wal = Path(f"{db}-wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def plant_secret(tree: Path) -> int:
    """Put the secret into every third message text of the tree, and into a line that is not JSON."""
    planted = 0
    for path in sorted(tree.rglob("*.jsonl")):
        lines = path.read_bytes().split(b"\n")
        for i in range(0, len(lines), 3):
            if b'"text":"' in lines[i]:
                lines[i] = lines[i].replace(b'"text":"', b'"text":"my key is ' + SECRET + b' ok ', 1)
                planted += 1
        path.write_bytes(b"\n".join(lines))
    broken = next(iter(sorted(tree.rglob("*.jsonl"))))
    with open(broken, "ab") as out:
        out.write(b"export ANTHROPIC_API_KEY=" + SECRET + b" {not json\n")
    return planted


@pytest.fixture(scope="module")
def secret_store(tmp_path_factory) -> tuple[Path, Path]:
    """A store built through the CLI from a generated tree with a secret in it (a dictionary is trained)."""
    base = tmp_path_factory.mktemp("redact")
    tree = base / "projects"
    load_generator().generate(tree, 7_000_000, seed=3)
    assert plant_secret(tree) > 100
    db = base / "events.db"
    run_cli("ingest", str(tree), "--json", db=db)
    run_cli("memories", "add", "the key " + SECRET.decode() + " goes in the vault", "--tag", "secrets", db=db)
    run_cli("tasks", "add", "rotate " + SECRET.decode(), db=db)
    run_cli("search", "vault", db=db)  # brings full-text and vectors up to date
    return tree, db


@pytest.fixture
def store_copy(secret_store, tmp_path) -> tuple[Path, Path]:
    tree, db = secret_store
    copy = tmp_path / "events.db"
    with apsw.Connection(str(db)) as source, apsw.Connection(str(copy)) as target:
        with target.backup("main", source, "main") as b:
            b.step(-1)
    return tree, copy


def test_redaction_removes_the_secret_from_the_file_wal_tables_and_dictionaries(store_copy):
    tree, db = store_copy
    with apsw.Connection(str(db)) as conn:
        dictionaries = [data for (data,) in conn.execute("SELECT data FROM dictionaries")]
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
    assert dictionaries and any(SECRET in d for d in dictionaries), "the test needs a dictionary trained on the secret"
    assert quarantined == 1
    assert SECRET in raw_bytes(db)

    dry = json.loads(run_cli("redact", PATTERN, "--dry-run", "--json", db=db).stdout)
    assert dry["dry_run"] and dry["events"] > 100 and dry["quarantined_lines"] == 1 and dry["dictionaries_replaced"] >= 1
    assert SECRET in raw_bytes(db)  # a dry run changes nothing

    result = run_cli("redact", "-", "--json", db=db, input=PATTERN.encode() + b"\n")
    report = json.loads(result.stdout)
    assert report["events"] == dry["events"] and report["matches"] == dry["matches"] >= report["events"]
    assert report["quarantined_lines"] == 1 and report["dictionaries_replaced"] >= 1
    assert report["vacuumed"] and report["wal_truncated"]
    assert {"fulltext", "memories", "sessions", "tasks", "vectors"} <= set(report["projections_rebuilt"])
    assert report["pattern_sha256"] == "sha256:" + hashlib.sha256(PATTERN.encode()).hexdigest()

    on_disk = raw_bytes(db)
    assert SECRET not in on_disk and PATTERN.encode() not in on_disk

    with Store(db) as store:
        datas = [e.data for e in store.iter_all()]
        assert not any(SECRET in d for d in datas)
        assert sum(b"[REDACTED]" in d for d in datas) == report["events"]
        with pytest.raises(apsw.ConstraintError):  # the append-only triggers are back
            store.db.conn.execute("UPDATE events SET type_no = 1 WHERE position = 1")
    check = json.loads(run_cli("check", "--deep", "--json", db=db).stdout)
    assert check["ok"], check["problems"]
    memories = json.loads(run_cli("memories", "list", "--json", db=db).stdout)["memories"]
    assert memories[0]["text"] == "the key [REDACTED] goes in the vault"
    assert json.loads(run_cli("search", "Zq8TopSecretKey4242xyzzy", "--json", db=db).stdout)["results"] == []
    titles = [t["title"] for t in json.loads(run_cli("tasks", "--json", db=db).stdout)["tasks"]]
    assert "rotate [REDACTED]" in titles and not any(SECRET.decode() in t for t in titles)

    audit = json.loads(run_cli("audit", "--json", db=db).stdout)["audit"]
    entry = [a for a in audit if a["operation"] == "redact"][-1]
    assert entry["position"] == report["audit_position"] and entry["actor"]
    assert entry["details"]["pattern_sha256"] == report["pattern_sha256"]
    assert entry["details"]["events"] == report["events"]
    assert PATTERN not in json.dumps(entry) and SECRET.decode() not in json.dumps(entry)


def test_the_original_lines_read_again_are_duplicates_not_conflicts(store_copy, tmp_path):
    tree, db = store_copy
    run_cli("redact", PATTERN, "--json", db=db)
    again = tmp_path / "again"
    shutil.copytree(tree, again)  # the same lines in new files: read from the start
    summary = json.loads(run_cli("ingest", str(again), "--json", db=db).stdout)
    assert summary["events_appended"] == 0 and summary["duplicates"] > 1000
    assert summary["quarantined"] == 1  # the non-JSON line is new input in a new file: quarantined again
    with Store(db) as store:
        assert not any(SECRET in e.data for e in store.iter_all())  # no original came back into the log


def test_bad_patterns_are_clean_errors(tmp_path):
    db = tmp_path / "e.db"
    with Store(db) as store:
        store.append([new_event(data=b'{"a": "b"}')])
        with pytest.raises(RedactError):
            redact(store, "(unclosed")
        with pytest.raises(RedactError):
            redact(store, "x*")
    result = run_cli("redact", "(unclosed", db=db, check=False)
    assert result.returncode == 1 and "not a regular expression" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


def test_redacting_nothing_still_records_the_operation(tmp_path):
    db = tmp_path / "e.db"
    with Store(db) as store:
        store.append([new_event(data=b'{"nothing": "to see here"}')])
        report = redact(store, "absent-[0-9]+")
        assert report.events == 0 and report.audit_position == store.head()
        assert store.read_all()[0].data == b'{"nothing": "to see here"}'


def test_a_pattern_every_dictionary_holds_leaves_every_payload_readable(store_copy, tmp_path):
    """Four digits are in every dictionary, the one trained to replace them too: its stand-in took
    the id of the new one, deleted, and this process went on compressing with the deleted one, so
    the redaction's own audit event could never be read again (check, events, export all failed)."""
    _, db = store_copy
    report = json.loads(run_cli("redact", r"\d{4}", "--json", db=db).stdout)
    assert report["events"] > 1000 and report["dictionaries_replaced"] >= 1
    check = json.loads(run_cli("check", "--json", db=db).stdout)
    assert check["ok"], check["problems"]
    run_cli("export", str(tmp_path / "log.jsonl"), db=db)
    assert json.loads(run_cli("audit", "--json", db=db).stdout)["audit"][-1]["operation"] == "redact"


def _one_line_store(tmp_path: Path, content: str) -> Path:
    tree = tmp_path / "projects" / "proj"
    tree.mkdir(parents=True)
    line = {"type": "user", "sessionId": "s1", "uuid": "u1", "parentUuid": None, "cwd": "/tmp/p",
            "timestamp": "2025-06-01T10:00:00.000Z", "message": {"role": "user", "content": content}}
    (tree / "s1.jsonl").write_bytes(json.dumps(line).encode() + b"\n")
    db = tmp_path / "events.db"
    run_cli("ingest", str(tree.parent), db=db)
    return db


def test_a_redacted_line_stays_json_and_keeps_its_place_in_the_session(tmp_path):
    """Matched on the raw bytes, an address after a newline took the `n` of its `\\n` escape with it,
    leaving `\\[REDACTED]`: the line was no longer JSON, its session lost the message, and check
    failed for good."""
    db = _one_line_store(tmp_path, "contact:\nalice@example.com please")
    report = json.loads(run_cli("redact", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[a-z]{2,}", "--json", db=db).stdout)
    assert (report["events"], report["matches"]) == (1, 1)
    with Store(db) as store:
        line = json.loads(store.get(1).data)
    assert line["message"]["content"] == "contact:\n[REDACTED] please"
    assert json.loads(run_cli("sessions", "--json", db=db).stdout)["sessions"][0]["messages"] == 1
    check = json.loads(run_cli("check", "--json", db=db).stdout)
    assert check["ok"], check["problems"]


@pytest.mark.parametrize("secret, pattern", [('hunter"2x', 'hunter"2x'), ("C:\\Users\\bob\\secret", r"Users\\bob\\secret")])
def test_a_secret_is_found_as_it_reads_quotes_and_backslashes_included(tmp_path, secret, pattern):
    """In the stored JSON a quote or a backslash is escaped: matched on the raw bytes, a pattern
    written as the secret reads found nothing, and the secret stayed."""
    db = _one_line_store(tmp_path, f"my password is {secret} ok")
    dry = json.loads(run_cli("redact", pattern, "--dry-run", "--json", db=db).stdout)
    assert (dry["events"], dry["matches"]) == (1, 1)
    assert json.loads(run_cli("redact", pattern, "--json", db=db).stdout)["events"] == 1
    with Store(db) as store:
        content = json.loads(store.get(1).data)["message"]["content"]
    assert secret not in content and content.endswith("[REDACTED] ok")
