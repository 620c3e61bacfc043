"""The sessions projection and `eventstore sessions`, on real transcripts from the shared corpus."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from conftest import CORPUS, load_generator, run_cli
from eventstore import NewEvent, Store
from eventstore.cli import main
from eventstore.feed import iso
from eventstore.ingest import Ingester
from eventstore.ingest.lines import line_pieces, parse_timestamp
from projections.runner import Runner, discover
from projections.sessions import SessionsProjection, key, list_sessions, record_keys

SNIFFLY = "chiphuyen__sniffly/tests/mock-data/-Users-chip-dev-ai-music"
WORKTREES = "handgemacht-ai__claude-code-log/test/test_data/real_projects/-experiments-worktrees"
DEMO = "d-kimuson__claude-code-viewer/mock-global-claude-dir/projects/sample-project"
JSSOUND = "handgemacht-ai__claude-code-log/test/test_data/real_projects/-Users-dain-workspace-JSSoundRecorder"
SUBTREES = (SNIFFLY, WORKTREES, DEMO, JSSOUND)

SESSION_FIELDS = {
    "session_id", "project", "cwd", "git_branch", "title", "started_at", "ended_at", "messages", "models",
    "subagents", "inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens", "totalTokens",
    "totalCost",
}


@pytest.fixture(scope="module")
def corpus_db(tmp_path_factory) -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared transcript corpus is not at {CORPUS}")
    db = tmp_path_factory.mktemp("sessions") / "events.db"
    with Store(db) as store:
        Ingester(store).ingest([CORPUS / sub for sub in SUBTREES])
        Runner(store, [SessionsProjection()]).catch_up()
    return db


@pytest.fixture(scope="module")
def by_id(corpus_db) -> dict:
    with Store(corpus_db) as store:
        return {row.session_id: row for row in list_sessions(store.db.conn)}


def manifest() -> dict[str, dict[str, str]]:
    lines = (CORPUS / "MANIFEST.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return {row.split("\t")[0]: dict(zip(header, row.split("\t"))) for row in lines[1:]}


def test_known_files_are_in_the_manifest():
    if not CORPUS.is_dir():
        pytest.skip(f"the shared transcript corpus is not at {CORPUS}")
    files = manifest()
    assert files[f"{SNIFFLY}/ff71dbed-a4f2-4284-a4fc-fe2fb90de929.jsonl"]["notes"].startswith("summary-only")
    agents = [f for f in files if f.startswith(f"{WORKTREES}/ef958aa1-0e93-49f0-bb71-150f63befcd1/subagents/")
              and f.endswith(".jsonl")]
    assert len(agents) == 6


def test_titles_follow_summaries_to_the_session_holding_their_leaf(by_id):
    # fed8ce56's summary points into d3ad4cdc; d3ad4cdc's and ff71dbed's point into ba79134d,
    # where the later one (ff71dbed, read last) wins.
    assert by_id["d3ad4cdc-5657-435d-98fa-0035d53e383d"].title == "AI Music Generation: Diverse Embedding Mapping"
    assert by_id["ba79134d-b6e9-4867-af0c-6941038c9e4b"].title == "AI Music Generation from Word Embeddings"
    assert by_id["fed8ce56-bc79-401f-a83e-af084253362f"].title is None
    assert "ff71dbed-a4f2-4284-a4fc-fe2fb90de929" not in by_id  # summary only: nothing happened in it


def test_subagent_files_count_for_their_parent_session(by_id):
    session = by_id["ef958aa1-0e93-49f0-bb71-150f63befcd1"]
    assert session.subagents == 6
    assert session.git_branch == "master"
    assert session.models == ["claude-opus-4-7"]


def test_inline_sidechains_count_as_subagents(by_id):
    # 1.0.x: sidechains inline in the session file, without agentId; each root is one agent.
    assert by_id["5c0375b4-57a5-4f26-b12d-d022ee4e51b7"].subagents >= 1
    assert by_id["fe5e1c67-53e7-4862-81ae-d0e013e3270b"].subagents >= 1


def test_every_session_matches_an_independent_reading_of_the_files(by_id):
    expected = oracle([CORPUS / sub for sub in SUBTREES])
    assert set(by_id) == set(expected)
    for session_id, want in expected.items():
        got = by_id[session_id]
        assert (got.started_at, got.ended_at, got.messages, got.models, got.subagents, got.cwd) == (
            want["started_at"], want["ended_at"], want["messages"], want["models"], want["subagents"], want["cwd"]
        ), session_id


def oracle(roots: list[Path]) -> dict[str, dict]:
    """Session facts read straight from the files with json, in ingestion's file order."""
    sessions: dict[str, dict] = {}
    seen_lines: set[tuple[str, str]] = set()
    for root in roots:
        for directory, subdirs, files in os.walk(root):
            subdirs.sort()
            for name in sorted(f for f in files if f.endswith(".jsonl")):
                path = Path(directory) / name
                fallback = path.parts[path.parts.index("subagents") - 1] if "subagents" in path.parts else path.stem
                for record, raw in _records(path):
                    session_id = record.get("sessionId") or fallback
                    if (session_id, raw) in seen_lines:
                        continue  # the same line twice in one stream is one event
                    seen_lines.add((session_id, raw))
                    s = sessions.setdefault(session_id, {"times": [], "messages": 0, "models": set(), "last": None,
                                                         "agents": set(), "cwd_main": None, "cwd_side": None})
                    at = parse_timestamp(record.get("timestamp"))
                    if at is not None:
                        s["times"].append(at)
                    if record.get("type") not in ("user", "assistant"):
                        continue
                    side = record.get("isSidechain") is True
                    if record.get("cwd"):
                        key = "cwd_side" if side else "cwd_main"
                        s[key] = s[key] or record["cwd"]
                    if record.get("agentId"):
                        s["agents"].add(record["agentId"])
                    elif side and record.get("uuid") and record.get("parentUuid") is None:
                        s["agents"].add("root:" + record["uuid"])
                    message = record.get("message") or {}
                    if record["type"] == "assistant":
                        if message.get("model") and message["model"] != "<synthetic>":
                            s["models"].add(message["model"])
                        if not side and message.get("id") and message["id"] != s["last"]:
                            s["messages"] += 1  # a response: a run of lines with one message id
                            s["last"] = message["id"]
                    elif not side and record.get("isMeta") is not True and not _tool_result(message):
                        s["messages"] += 1
    return {
        session_id: {
            "started_at": iso(min(s["times"])), "ended_at": iso(max(s["times"])), "messages": s["messages"],
            "models": sorted(s["models"]), "subagents": len(s["agents"]), "cwd": s["cwd_main"] or s["cwd_side"],
        }
        for session_id, s in sessions.items() if s["times"]
    }


def _records(path: Path):
    decoder = json.JSONDecoder()
    for line in path.read_text(errors="surrogateescape").split("\n"):
        index = 0
        while index < len(line.rstrip()):
            try:
                record, end = decoder.raw_decode(line, index)
            except json.JSONDecodeError:
                break
            if isinstance(record, dict):
                yield record, line[index:end]
            index = end


def _tool_result(message: dict) -> bool:
    content = message.get("content")
    return isinstance(content, list) and bool(content) and all(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content)


# The command


def cli(db: Path, *args: str):
    result = CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)
    return result


def test_sessions_json_shape_and_order(corpus_db):
    result = cli(corpus_db, "sessions", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"sessions"}
    rows = document["sessions"]
    assert rows and all(set(row) == SESSION_FIELDS for row in rows)
    starts = [row["started_at"] for row in rows]
    assert starts == sorted(starts, reverse=True)
    row = next(r for r in rows if r["session_id"] == "d3ad4cdc-5657-435d-98fa-0035d53e383d")
    assert row["project"] == "ai-music" and row["cwd"] == "/Users/chip/dev/ai-music"
    assert isinstance(row["models"], list) and isinstance(row["totalCost"], float)


def test_sessions_filters(corpus_db, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        music = json.loads(cli(corpus_db, "sessions", "--project", "MUSIC", "--json").stdout)["sessions"]
        assert {r["session_id"][:8] for r in music} == {"ba79134d", "d3ad4cdc", "fed8ce56"}
        day = json.loads(cli(corpus_db, "sessions", "--project", "music", "--since", "20250608",
                             "--until", "20250608", "--json").stdout)["sessions"]
        assert {r["session_id"][:8] for r in day} == {"ba79134d", "d3ad4cdc"}
        limited = json.loads(cli(corpus_db, "sessions", "--limit", "2", "--json").stdout)["sessions"]
        everything = json.loads(cli(corpus_db, "sessions", "--json").stdout)["sessions"]
        assert limited == everything[:2]
    finally:
        monkeypatch.undo()
        time.tzset()


def test_piped_tables_keep_each_row_on_one_line_and_every_cell_whole(tmp_path):
    root = tmp_path / "projects"
    load_generator().generate(root, 400_000, seed=3)
    db = tmp_path / "events.db"
    run_cli("ingest", str(root), db=db)
    sessions = json.loads(run_cli("sessions", "--json", db=db).stdout)["sessions"]
    table = run_cli("sessions", db=db, env={"COLUMNS": "80"}).stdout.decode().splitlines()  # piped: not a terminal
    body = [line for line in table if line.startswith("│")]
    assert len(sessions) > 3 and len(body) == len(sessions)
    assert [line.split("│")[-2].strip() for line in body] == [row["session_id"][:8] for row in sessions]
    assert max(map(len, table)) > 80  # wider than the terminal it would have had
    import eventstore.cli.sessions

    original, eventstore.cli.sessions.TABLE_ROWS = eventstore.cli.sessions.TABLE_ROWS, 2
    try:  # a page, as the default 50 would be of more sessions
        paged = CliRunner().invoke(main, ["--db", str(db), "sessions"]).stdout.splitlines()
    finally:
        eventstore.cli.sessions.TABLE_ROWS = original
    assert [line.split("│")[-2].strip() for line in paged if line.startswith("│")] == [
        row["session_id"][:8] for row in sessions[:2]]
    assert paged[-1] == f"sessions: the newest 2 of {len(sessions)}; --limit N shows more, --json shows all"
    daily = json.loads(run_cli("usage", "daily", "--json", db=db).stdout)["daily"]
    lines = run_cli("usage", "daily", db=db, env={"COLUMNS": "80"}).stdout.decode().splitlines()
    assert [line.split("│")[1].strip() for line in lines if line.startswith("│ 2")] == [d["period"] for d in daily]


def test_sessions_rejects_a_bad_date(corpus_db):
    result = CliRunner().invoke(main, ["--db", str(corpus_db), "sessions", "--since", "2025-06-08"])
    assert result.exit_code == 2 and "YYYYMMDD" in result.output


def test_sessions_and_tasks_are_registered_projections():
    names = {p.name for p in discover()}
    assert {"sessions", "tasks"} <= names


def test_session_row_is_the_json_shape():
    assert set(msgspec.structs.asdict(_empty_row())) == SESSION_FIELDS


def _empty_row():
    from projections.sessions import SessionRow

    return SessionRow(session_id="s", project=None, cwd=None, git_branch=None, title=None, started_at=None,
                      ended_at=None, messages=0, models=[], subagents=0)


_UUIDS = st.builds(lambda n: str(uuid.UUID(int=n)), st.integers(0, 2**128 - 1))
_ODD_UUIDS = st.one_of(
    _UUIDS.map(str.upper),
    _UUIDS.map(lambda u: u[:35]),  # a character short
    _UUIDS.map(lambda u: u + "0"),
    _UUIDS.map(lambda u: u[:10] + "g" + u[11:]),  # not hex
    _UUIDS.map(lambda u: u[:9] + " " + u[10:]),
    st.text(max_size=40),
)


@given(st.lists(st.one_of(_UUIDS, _ODD_UUIDS), max_size=12), st.lists(_UUIDS, max_size=12))
def test_record_keys_in_bulk_are_the_keys_one_by_one(odd, canonical):
    for uuids in (canonical, odd, canonical + odd, [u.replace("-", "", 1) + "-" for u in canonical]):
        assert list(record_keys(uuids)) == [key(u) for u in uuids]


def test_a_uuid_key_is_its_first_eight_bytes():
    assert key("00000000-0000-0001-8000-000000000000") == 1 << 56
    assert key("ffffffff-ffff-ffff-0000-000000000000") == -1
    assert key("not-a-uuid") == key("not-a-uuid") != key("not-a-uuid2")


def _line(session: str, **record) -> NewEvent:
    (piece,) = list(line_pieces(0, json.dumps({"sessionId": session, **record}).encode(), session))
    return piece.event


def _user(session: str, uuid_: str, minute: int) -> NewEvent:
    return _line(session, type="user", uuid=uuid_, timestamp=f"2026-05-01T10:{minute:02d}:00.000Z",
                 message={"role": "user", "content": f"prompt {minute}"})


def _summary(session: str, leaf: str, title: str) -> NewEvent:
    return _line(session, type="summary", summary=title, leafUuid=leaf)


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_summaries_land_on_the_first_session_holding_their_leaf_in_any_order(tmp_path, batch_size):
    leaf = [str(uuid.UUID(int=n << 100 | n)) for n in range(1, 5)]
    steps = [
        [_user("s-a", leaf[0], 1), _user("s-e", leaf[2], 2)],
        [_summary("s-b", leaf[0], "B names A's leaf")],  # the leaf came first
        [_summary("s-c", leaf[1], "C names D's leaf"), _user("s-c", "c-own", 3)],  # the leaf comes later
        [_user("s-f", leaf[2], 4), _summary("s-f", leaf[2], "F names a leaf E holds first")],
        [_summary("s-g", leaf[3], "G names a leaf nobody holds"), _user("s-g", "g-own", 5)],
        [_user("s-d", leaf[1], 6), _user("s-b", "b-own", 7)],
    ]
    with Store(tmp_path / "events.db") as store:
        runner = Runner(store, [SessionsProjection()], batch_size=batch_size)
        for step in steps:
            store.append(step)
            runner.catch_up()
        titles = {row.session_id: row.title for row in list_sessions(store.db.conn)}
        assert titles == {"s-a": "B names A's leaf", "s-b": None, "s-c": None, "s-d": "C names D's leaf",
                          "s-e": "F names a leaf E holds first", "s-f": None, "s-g": "G names a leaf nobody holds"}
        runner.rebuild()
        assert {row.session_id: row.title for row in list_sessions(store.db.conn)} == titles
