"""The log commands as CONTRACT.md gives them: events, changes, export, import."""

from __future__ import annotations

import json

from conftest import new_event, run_cli
from eventstore import Store

EVENT_KEYS = {"position", "event_id", "stream", "version", "type", "schema_version", "entity", "entity_id",
              "op", "client_id", "actor", "occurred_at", "recorded_at", "data"}
CHANGE_KEYS = {"position", "event_id", "entity", "entity_id", "op", "version", "client_id", "recorded_at"}


def seed(path, n=5):
    with Store(path) as s:
        s.append([new_event(f"task:{i % 2}", f'{{"n":{i}}}'.encode(), op="create" if i < 2 else "update",
                            entity="task", entity_id=str(i % 2)) for i in range(n)])
        return s.client_id


def json_lines(result):
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def test_events_json_lines(tmp_path):
    db = tmp_path / "a.db"
    seed(db)
    lines = json_lines(run_cli("events", "--json", db=db))
    assert [line["position"] for line in lines] == [1, 2, 3, 4, 5]
    assert all(set(line) >= EVENT_KEYS for line in lines)
    assert lines[2]["data"] == '{"n":2}' and lines[2]["op"] == "update"
    assert [line["position"] for line in json_lines(run_cli("events", "--json", "--after", "2", "--limit", "2", db=db))] == [3, 4]
    stream = json_lines(run_cli("events", "--json", "--stream", "task:1", db=db))
    assert [(line["stream"], line["version"]) for line in stream] == [("task:1", 1), ("task:1", 2)]


def test_changes_feed_ends_with_the_cursor(tmp_path):
    db = tmp_path / "a.db"
    seed(db)
    lines = json_lines(run_cli("changes", "--since", "3", "--json", db=db))
    assert [line["position"] for line in lines[:-1]] == [4, 5]
    assert all(set(line) == CHANGE_KEYS for line in lines[:-1])
    assert lines[-1] == {"cursor": 5}
    assert json_lines(run_cli("changes", "--since", "5", "--json", db=db)) == [{"cursor": 5}]
    assert json_lines(run_cli("changes", "--since", "1", "--limit", "1", "--json", db=db))[-1] == {"cursor": 2}
    past = run_cli("changes", "--since", "99", "--json", db=db, check=False)  # a cursor from another database
    assert past.returncode == 2 and past.stdout == b"" and b"cursor 99 is past the end of this log (5)" in past.stderr


def test_the_feed_in_json_is_read_a_page_at_a_time_and_says_the_same(tmp_path, monkeypatch):
    import eventstore.cli.log
    from click.testing import CliRunner
    from eventstore.cli import main

    db = tmp_path / "a.db"
    seed(db, n=12)

    def feed(*args: str) -> list[dict]:
        result = CliRunner().invoke(main, ["--db", str(db), "changes", "--json", *args])
        return [json.loads(line) for line in result.stdout.splitlines()]

    whole = feed()
    monkeypatch.setattr(eventstore.cli.log, "CHANGES_PAGE", 5)  # twelve changes: three pages
    assert feed() == whole and [line.get("position") for line in whole] == [*range(1, 13), None]
    assert feed("--since", "3", "--limit", "7") == whole[3:10] + [{"cursor": 10}]  # a limit across pages
    assert feed("--since", "12") == [{"cursor": 12}]


def test_events_and_changes_tables_show_a_page_and_the_cursor_to_go_on_from(tmp_path, monkeypatch):
    import eventstore.cli.log
    from click.testing import CliRunner
    from eventstore.cli import main

    db = tmp_path / "a.db"
    seed(db, n=9)
    monkeypatch.setattr(eventstore.cli.log, "TABLE_ROWS", 4)  # a page, as the default 50 would be of more

    def table(*args: str) -> tuple[list[int], list[str]]:
        lines = CliRunner().invoke(main, ["--db", str(db), *args]).stdout.splitlines()
        return [int(line.split("│")[1]) for line in lines if line.startswith("│")], lines

    positions, lines = table("events", "--after", "2")
    assert positions == [3, 4, 5, 6] and lines[-1] == "events: the first 4 of 7; --limit N shows more, --json shows all"
    positions, lines = table("events", "--limit", "6")
    assert positions == [1, 2, 3, 4, 5, 6] and lines[-1].startswith("└")
    positions, lines = table("changes", "--since", "1")
    assert positions == [2, 3, 4, 5]
    assert lines[-2:] == ["changes: the first 4 of 8; --limit N shows more, --json shows all", "cursor: 5"]
    positions, lines = table("changes", "--since", "5", "--limit", "9")
    assert positions == [6, 7, 8, 9] and lines[-1] == "cursor: 9"


def test_an_export_is_readable_by_its_owner_alone(tmp_path):
    import stat

    db = tmp_path / "a.db"
    seed(db)
    fresh, replaced = tmp_path / "fresh.jsonl", tmp_path / "replaced.jsonl"
    replaced.write_text("old")
    replaced.chmod(0o644)
    for file in (fresh, replaced):
        run_cli("export", str(file), db=db)
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert len(file.read_bytes().splitlines()) == 5


def test_export_import_preserves_ids_versions_and_clients_idempotently(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    client = seed(a)
    dump = tmp_path / "dump.jsonl"
    run_cli("export", str(dump), db=a)
    assert len(dump.read_bytes().splitlines()) == 5
    first = json.loads(run_cli("import", str(dump), "--json", db=b).stdout)
    assert first == {"events": 5, "appended": 5, "duplicates": 0, "conflicts": []}
    again = json.loads(run_cli("import", str(dump), "--json", db=b).stdout)
    assert again == {"events": 5, "appended": 0, "duplicates": 5, "conflicts": []}
    with Store(a) as sa, Store(b) as sb:
        mine, theirs = sa.read_all(), [e for e in sb.read_all() if e.stream != "audit"]  # b also records its imports
        assert [(e.event_id, e.stream, e.version, e.client_id, e.recorded_at, e.data) for e in mine] == \
               [(e.event_id, e.stream, e.version, e.client_id, e.recorded_at, e.data) for e in theirs]
        assert all(e.client_id == client for e in theirs) and sb.client_id != client
    since = tmp_path / "since.jsonl"
    run_cli("export", "--since", "3", str(since), db=a)
    assert [json.loads(x)["position"] for x in since.read_bytes().splitlines()] == [4, 5]


def test_an_event_twice_in_one_import_is_counted_once(tmp_path):
    """Overlapping exports joined into one file: the second copy was counted as appended too, in
    the report and in the audit record."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    seed(a)
    dump = tmp_path / "dump.jsonl"
    run_cli("export", str(dump), db=a)
    lines = dump.read_bytes().splitlines(keepends=True)
    joined = tmp_path / "joined.jsonl"
    joined.write_bytes(b"".join(lines[:3] + lines[:3]))
    report = json.loads(run_cli("import", str(joined), "--json", db=b).stdout)
    assert report == {"events": 6, "appended": 3, "duplicates": 3, "conflicts": []}
    details = json.loads(run_cli("audit", "--json", db=b).stdout)["audit"][-1]["details"]
    assert (details["appended"], details["duplicates"]) == (3, 3)


def test_import_reports_a_conflicting_stream_instead_of_merging(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    seed(a)
    dump = tmp_path / "dump.jsonl"
    run_cli("export", str(dump), db=a)
    with Store(b) as s:  # b already has its own history on task:0
        s.append([new_event("task:0", b'{"mine":true}', entity="task", entity_id="0")])
    result = run_cli("import", str(dump), "--json", db=b, check=False)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [c["stream"] for c in report["conflicts"]] == ["task:0"]
    assert report["appended"] == 2  # task:1 imported whole
    assert "conflict: stream 'task:0'" in result.stderr.decode()
    assert "its version 1 is held here by another event (the stream is at 1)" in result.stderr.decode()
    with Store(b) as s:
        assert [e.data for e in s.read_stream("task:0")] == [b'{"mine":true}']


def test_binary_payloads_round_trip_through_export(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with Store(a) as s:
        s.append([new_event("bin", bytes(range(256)))])
    dump = tmp_path / "d.jsonl"
    run_cli("export", str(dump), db=a)
    assert json.loads(dump.read_bytes())["data_encoding"] == "base64"
    run_cli("import", str(dump), db=b)
    with Store(b) as s:
        assert s.read_all()[0].data == bytes(range(256))


def test_import_of_a_malformed_file_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"position": 1}\n')
    result = run_cli("import", str(bad), db=tmp_path / "x.db", check=False)
    assert result.returncode == 1 and "line 1" in result.stderr.decode() and "Traceback" not in result.stderr.decode()
