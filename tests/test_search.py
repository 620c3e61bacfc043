"""Full-text, vector and hybrid search against real SQLite: corpus phrases, odd queries, filters."""

from __future__ import annotations

import json
import random
from pathlib import Path

import apsw
import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eventstore import Store
from eventstore.ingest import Ingester
from projections import fulltext, memories, search_text
from projections.embedders import HashedLexicalEmbedder
from projections.fts_query import match_expression, snippet, spaced, tokens
from projections.memories import MemoriesProjection
from projections.runner import Runner
from projections.search import Filters, QuerySyntaxError, search
from projections.vectors import VectorsProjection, embed_pending, pending_count
from schemas.envelope import RecordedEvent
from schemas.transcript import decode_record
from schemas.transcript_events import session_of_stream

EMBEDDER = HashedLexicalEmbedder()


def projections():
    return [fulltext.FulltextProjection(), VectorsProjection(EMBEDDER), MemoriesProjection()]


def ready(store: Store) -> Runner:
    """Catch up the search projections and embed everything queued."""
    runner = Runner(store, projections())
    runner.catch_up()
    embed_pending(store, embedder=EMBEDDER)
    return runner


def find(store, query, **kw):
    kw.setdefault("embedder", EMBEDDER)
    kw.setdefault("embed_first", 0)
    return search(store, query, **kw)


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory):
    corpus = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
    if not corpus.is_dir():
        pytest.skip(f"the shared transcript corpus is not at {corpus}")
    with Store(tmp_path_factory.mktemp("corpus") / "events.db") as store:
        Ingester(store).ingest([corpus])
        runner = ready(store)
        yield store
        runner.close()


# ---------------------------------------------------------------- the corpus


def _indexed_texts(store: Store) -> list[tuple[int, str, str]]:
    """(position, session, text) of every indexed transcript event."""
    found = []
    for event in store.iter_all(types=search_text.MESSAGE_TYPES):
        text = search_text.extract(event)
        if text is not None:
            found.append((event.position, text.session_id, text.text))
    return found


def test_any_phrase_quoted_from_a_message_finds_it(corpus_store):
    texts = _indexed_texts(corpus_store)
    assert len(texts) > 1000
    rng = random.Random(5)
    checked = 0
    for position, session, text in rng.sample(texts, 300):
        toks = tokens(text)
        if len(toks) < 3:
            continue
        length = rng.randint(2, min(8, len(toks)))
        first = rng.randrange(len(toks) - length + 1)
        phrase = text.encode()[toks[first][0]:toks[first + length - 1][1]].decode()
        for query in (f'"{phrase}"', phrase):
            hits = find(corpus_store, query, filters=Filters(session=session), limit=1000)
            assert position in {h.event_position for h in hits}, (query, position)
        checked += 1
    assert checked > 200


def test_results_carry_the_contract_fields_and_a_highlighted_snippet(corpus_store):
    hits = find(corpus_store, "error handling", limit=5)
    assert hits
    for hit in hits:
        assert hit.kind == "message" and hit.session_id and hit.timestamp.endswith("Z")
        assert "**" in hit.snippet and hit.score > 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_substring_of_a_path_finds_the_tool_call(corpus_store):
    event = next(e for e in corpus_store.iter_all(types=["claude.assistant"])
                 if (x := search_text.extract(e)) is not None and "/" in x.code[:200] and len(x.code) > 40)
    found = search_text.extract(event)
    start = found.code.index("/") + 1
    needle = found.code[start:start + 9]
    hits = find(corpus_store, needle, filters=Filters(session=found.session_id), limit=200)
    assert event.position in {h.event_position for h in hits}, needle


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=40), mode=st.sampled_from(["fts", "vector", "hybrid"]))
@example(query='"', mode="fts")
@example(query='"a" OR b NOT', mode="hybrid")
@example(query="NEAR(a b, 2) body:x ^y *", mode="fts")
@example(query="src/eventstore/__init__.py", mode="fts")
@example(query="\x00 日本語 🦀 --) ''", mode="hybrid")
def test_any_typed_string_is_a_valid_query(corpus_store, query, mode):
    find(corpus_store, query, mode=mode, limit=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(alphabet=st.sampled_from(list('ab "*()^:+-ANDORNOTNEAR,')), max_size=20))
def test_fts5_syntax_errors_are_named(corpus_store, query):
    try:
        find(corpus_store, query, syntax=True, limit=3)
    except QuerySyntaxError:
        pass


def test_queries_are_quoted_not_interpreted():
    assert match_expression('a AND b') == '"a" "and" "b"'
    assert match_expression('"exact phrase" NOT x') == '"exact phrase" "not" "x"'
    assert match_expression('foo.bar(') == '"foo bar"'
    assert match_expression('say "hi') == '"say" "hi"'
    assert match_expression('optim*') == '"optim"*'
    assert match_expression('--- ... ***') is None
    assert match_expression('a OR b', syntax=True) == 'a OR b'


def test_a_word_repeated_in_a_query_is_one_phrase():
    """A pasted word repeated thousands of times made as many phrases: FTS5's work grew with their square."""
    assert match_expression("test " * 5000) == '"test"'
    assert match_expression('Parser parser "the parser" optim* optim* parser') == '"parser" "the parser" "optim"*'


_BASE64_PIECES = st.one_of(
    st.integers(0, 260).map(lambda n: "QUJD+/9z" * (n // 8) + "QUJD+/9z"[:n % 8]),  # base64 runs around 200
    st.sampled_from(["data:image/png;base64,", "data:x;base64,", "=", "==", " ", "\n", ",", "é", "→", "\ud800",
                     "_-"]),
    st.text(max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_BASE64_PIECES, max_size=12).map("".join))
def test_base64_runs_are_stripped_exactly_as_the_regex_strips_them(text):
    expected = search_text._BASE64.sub(" ", text) if len(text) >= 200 else text
    assert search_text.strip_base64(text) == expected


def _extractions(event: RecordedEvent) -> tuple:
    """What extraction gives for an event, and what it gives from `decode_record`'s whole record."""
    options = search_text.TextOptions()
    lean = search_text.extract(event, options)
    try:
        record = decode_record(event.data)
    except msgspec.DecodeError:
        return lean, None
    role, text, code = search_text._record_text(record, options)
    whole = None if not text.strip() else search_text.SearchText(
        role=role, text=text, code=code,
        session_id=getattr(record, "session_id", None) or session_of_stream(event.stream),
        project=getattr(record, "cwd", None) or None, timestamp=event.occurred_at)
    return lean, whole


_ODD = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.text(max_size=5), st.just([]), st.just({}))
_BLOCK = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.one_of(st.text(max_size=30), _ODD)}),
    st.fixed_dictionaries({"type": st.just("tool_result"), "tool_use_id": st.text(max_size=4),
                           "content": st.one_of(st.text(max_size=30), _ODD,
                                                st.lists(st.fixed_dictionaries({"type": st.just("text"),
                                                                                "text": st.text(max_size=20)})))}),
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": st.text(max_size=4),
                           "name": st.one_of(st.text(max_size=8), _ODD),
                           "input": st.one_of(st.dictionaries(st.sampled_from(["command", "file_path", "description"]),
                                                              st.one_of(st.text(max_size=20), _ODD)), _ODD)}),
    st.fixed_dictionaries({"type": st.just("image"),
                           "source": st.one_of(_ODD, st.just({"type": "base64", "data": "QUJD"}))}),
    st.fixed_dictionaries({"type": st.sampled_from(["thinking", "document", "server_tool_use"]),
                           "thinking": st.one_of(st.text(max_size=10), _ODD)}),
    _ODD,
)


@settings(max_examples=400, deadline=None)
@example(kind="user", fields={"isMeta": 2, "message": {"content": "odd meta"}})
@example(kind="user", fields={"isCompactSummary": "yes", "message": {"content": "odd summary flag"}})
@example(kind="assistant", fields={"cwd": ["x"], "message": {"content": [{"type": "text", "text": "odd cwd"}]}})
@example(kind="assistant", fields={"sessionId": 7, "message": {"content": [{"type": "text", "text": "odd session"}]}})
@example(kind="user", fields={"toolUseResult": 3, "message": {"role": 1, "content": [
    {"type": "tool_result", "tool_use_id": "t", "content": "odd result"}, {"type": "text", "text": 5}]}})
@given(kind=st.sampled_from(["user", "assistant"]),
       fields=st.fixed_dictionaries({}, optional={
           "message": st.one_of(_ODD, st.fixed_dictionaries({}, optional={
               "role": st.one_of(st.just("user"), _ODD),
               "content": st.one_of(st.text(max_size=30), _ODD, st.lists(_BLOCK, max_size=3)),
               "usage": st.one_of(_ODD, st.just({"input_tokens": 1, "output_tokens": 2}))})),
           "sessionId": st.one_of(st.just("s-1"), _ODD), "cwd": st.one_of(st.just("/home/me/alpha"), _ODD),
           "isMeta": _ODD, "isCompactSummary": _ODD, "toolUseResult": st.one_of(_ODD, st.just({"stdout": "x" * 40})),
           "gitBranch": _ODD, "version": _ODD, "uuid": _ODD}))
def test_extraction_reads_a_line_as_the_whole_record_does(kind, fields):
    data = msgspec.json.encode({"type": kind, **fields})
    event = RecordedEvent(1, "0" * 32, "claude:session:s-1", 1, f"claude.{kind}", 1, "claude.line", "u", "create",
                          "c", "", 5, 5, None, None, data)
    lean, whole = _extractions(event)
    assert lean == whole


def test_extraction_reads_every_corpus_line_as_the_whole_record_does(corpus):
    compared = 0
    for path in sorted(corpus.rglob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                kind = msgspec.json.decode(line).get("type")
            except (msgspec.DecodeError, AttributeError):
                continue
            if kind not in ("user", "assistant", "summary", "system"):
                continue
            event = RecordedEvent(1, "0" * 32, "claude:session:s-1", 1, f"claude.{kind}", 1, "claude.line", "u",
                                  "create", "c", "", 5, 5, None, None, line)
            lean, whole = _extractions(event)
            assert lean == whole, (path.name, line[:200])
            compared += lean is not None
    assert compared > 1000


def test_snippet_marks_the_words_near_each_other():
    text = "x " * 200 + "the Café was closed, said the café owner " + "y " * 200
    got = snippet(text, "cafe owner")
    assert "**Café**" in got and "**owner**" in got and got.startswith("…") and got.endswith("…")


# ---------------------------------------------------------------- a small tree with known content


def _line(kind, session, cwd, ts, content, uuid):
    if kind == "user":
        message = {"role": "user", "content": content}
    elif kind == "tool":
        message = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t" + uuid, "content": content}]}
        kind = "user"
    else:
        message = {"role": "assistant", "id": "m" + uuid, "model": "claude-x", "type": "message",
                   "content": [{"type": "text", "text": content}]}
    return json.dumps({"type": kind, "sessionId": session, "cwd": cwd, "uuid": uuid,
                       "timestamp": ts, "message": message}) + "\n"


@pytest.fixture
def small_store(tmp_path):
    root = tmp_path / "projects"
    rows = [
        ("s-alpha", "/home/me/alpha", [
            ("user", "2026-01-05T10:00:00.000Z", "please fix the flaky zebra test"),
            ("assistant", "2026-01-05T10:00:05.000Z", "The zebra test is flaky because of a race"),
            ("tool", "2026-01-05T10:00:09.000Z",
             "FAILED tests/test_zebra.py::test_stripes " + "lorem ipsum " * 400 + "unicornmarker"),
            ("user", "2026-01-05T10:01:00.000Z", "see data:image/png;base64," + "QUJD" * 100 + " okapi"),
        ]),
        ("s-beta", "/home/me/beta-service", [
            ("user", "2026-02-10T08:00:00.000Z", "the zebra crossing endpoint returns 500"),
            ("assistant", "2026-02-10T08:00:03.000Z", "I will look at the zebra crossing handler"),
            ("tool", "2026-02-10T08:00:04.000Z", [{"type": "text", "text": "zebra handler source"},
                                                   {"type": "image", "source": {"type": "base64", "data": "QUJD" * 400}}]),
        ]),
    ]
    for session, cwd, lines in rows:
        folder = root / cwd.replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{session}.jsonl", "w") as f:
            for i, (kind, ts, content) in enumerate(lines):
                f.write(_line(kind, session, cwd, ts, content, f"{session}-{i}"))
    with Store(tmp_path / "events.db") as store:
        Ingester(store).ingest([root])
        runner = ready(store)
        yield store
        runner.close()


def _day(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text).timestamp() * 1000)


@pytest.mark.parametrize("mode", ["fts", "vector", "hybrid"])
def test_filters(small_store, mode):
    def sessions(**kw):
        return sorted({(h.session_id, h.role) for h in find(small_store, "zebra", mode=mode, filters=Filters(**kw))})

    everything = sessions()
    assert {s for s, _ in everything} == {"s-alpha", "s-beta"}
    assert {s for s, _ in sessions(project="BETA")} == {"s-beta"}
    assert {s for s, _ in sessions(session="s-alpha")} == {"s-alpha"}
    assert sessions(project="nowhere") == [] and sessions(session="nope") == []
    assert {r for _, r in sessions(roles=("user",))} == {"user"}
    roles = {r for _, r in sessions(roles=("assistant", "tool"))}
    assert roles <= {"assistant", "tool"} and "assistant" in roles
    assert {s for s, _ in sessions(since=_day("2026-02-01T00:00:00+00:00"))} == {"s-beta"}
    assert {s for s, _ in sessions(until=_day("2026-02-01T00:00:00+00:00"))} == {"s-alpha"}


def test_tool_results_are_truncated_and_images_never_indexed(small_store):
    assert [h.role for h in find(small_store, "zebra handler source")] == ["tool"]
    assert [h.role for h in find(small_store, "test_stripes lorem")] == ["tool"]
    assert find(small_store, "unicornmarker") == []  # past the first 4 KB of the tool result
    assert [h.role for h in find(small_store, "okapi")] == ["user"]
    assert find(small_store, "QUJDQUJD") == [] and find(small_store, "base64") == []


def test_phrases_and_near_are_checked_against_the_text(small_store):
    """Phrases, NEAR and ^ need the word index's positions."""
    def found(query, **kw):
        return sorted((h.session_id, h.role) for h in find(small_store, query, **kw))

    alpha = [("s-alpha", "assistant"), ("s-alpha", "user")]
    assert found('"zebra test"') == alpha
    assert found('"test zebra"') == [("s-alpha", "tool")]  # tests/test_zebra.py
    assert found("test_zebra") == [("s-alpha", "tool")]  # one token pair, as a phrase
    assert found('"flaky zebra"') == [("s-alpha", "user")]
    assert found("zebra crossing") == found('"zebra crossing"') == [("s-beta", "assistant"), ("s-beta", "user")]
    assert found('"crossing zebra"') == []
    assert found('zebra_cross*') == found('"zebra crossing"')  # a prefix phrase
    assert found("NEAR(zebra race, 3)", syntax=True) == []
    assert found("NEAR(zebra race, 8)", syntax=True) == [("s-alpha", "assistant")]
    assert found("^please zebra", syntax=True) == [("s-alpha", "user")]
    assert found('body:okapi OR "crossing handler"', syntax=True) == [("s-alpha", "user"), ("s-beta", "assistant")]
    assert found('zebra NOT "zebra crossing"', syntax=True) == [("s-alpha", "assistant"), ("s-alpha", "tool"),
                                                                ("s-alpha", "user"), ("s-beta", "tool")]
    memory = memories.add(small_store, "zebra crossings need the stripes service", project="beta")
    Runner(small_store, projections()).catch_up()
    assert [h.kind for h in find(small_store, '"stripes service"')] == ["memory"]
    assert find(small_store, '"service stripes"') == []
    memories.forget(small_store, memory.memory_id)


def test_bm25_ranks_a_long_document_with_one_mention_last(small_store):
    hits = find(small_store, "zebra", limit=10)
    assert len(hits) == 6 and hits[0].score > hits[-1].score
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[-1].role == "tool" and "test_stripes" in hits[-1].snippet  # the 4 KB tool result


def test_memories_are_searchable_until_forgotten(small_store):
    memory = memories.add(small_store, "zebra crossings need the stripes service", tags=["infra"], project="beta")
    Runner(small_store, projections()).catch_up()
    for mode in ("fts", "vector", "hybrid"):
        hits = find(small_store, "zebra stripes service", mode=mode, embed_first=100)
        assert "memory" in {h.kind for h in hits}, mode
        assert {h.role for h in hits if h.kind == "memory"} == {"memory"}
    memories.forget(small_store, memory.memory_id)
    Runner(small_store, projections()).catch_up()
    for mode in ("fts", "vector", "hybrid"):
        hits = find(small_store, "zebra stripes service", mode=mode, embed_first=100)
        assert "memory" not in {h.kind for h in hits}, mode
    stream = small_store.read_stream(f"memory:{memory.memory_id}")
    assert [e.type for e in stream] == ["memory.added", "memory.forgotten"]
    assert [e.op for e in stream] == ["create", "delete"]


def test_vector_search_waits_for_nothing_and_embeds_on_demand(small_store):
    memory = memories.add(small_store, "giraffe necks are long", project="zoo")
    Runner(small_store, projections()).catch_up()
    assert pending_count(small_store) == 1
    assert "memory" not in {h.kind for h in find(small_store, "giraffe necks", mode="vector")}  # not embedded yet
    hits = find(small_store, "giraffe necks", mode="vector", embed_first=10)
    assert hits[0].kind == "memory" and pending_count(small_store) == 0
    memories.update(small_store, memory.memory_id, text="elephant trunks are long")
    Runner(small_store, projections()).catch_up()
    hits = find(small_store, "elephant trunks", mode="vector", embed_first=10)
    assert hits[0].kind == "memory" and "elephant" in hits[0].snippet
    assert find(small_store, "elephant trunks")[0].kind == "memory"
    assert find(small_store, "giraffe") == []


def test_filters_apply_before_the_rank_window(small_store, monkeypatch):
    monkeypatch.setattr(fulltext, "RANK_WINDOW", 1)
    hits = find(small_store, "zebra", filters=Filters(session="s-alpha"))
    assert hits and {h.session_id for h in hits} == {"s-alpha"}


def test_search_command_json_shape(small_store, tmp_path):
    from click.testing import CliRunner

    from eventstore.cli import main

    db = str(small_store.path)
    memories.add(small_store, "zebra memo", project="alpha")
    keys = {"kind", "session_id", "event_position", "role", "timestamp", "score", "snippet"}
    for mode in ("fts", "vector", "hybrid"):
        result = CliRunner().invoke(main, ["--db", db, "search", "zebra", "--mode", mode, "--json", "--limit", "3"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        document = json.loads(result.stdout)
        assert list(document) == ["results"] and 0 < len(document["results"]) <= 3
        for hit in document["results"]:
            assert set(hit) == keys and hit["kind"] in ("message", "memory")
    result = CliRunner().invoke(main, ["--db", db, "search", "zebra", "--role", "user", "--session", "s-beta",
                                       "--project", "beta", "--since", "20260101", "--until", "20261231", "--json"])
    assert result.exit_code == 0, result.stderr
    assert {(h["role"], h["session_id"]) for h in json.loads(result.stdout)["results"]} == {("user", "s-beta")}
    bad = CliRunner().invoke(main, ["--db", db, "search", "zebra AND (", "--syntax"])
    assert bad.exit_code == 1 and "FTS5" in bad.stderr and "Traceback" not in bad.output
    people = CliRunner().invoke(main, ["--db", db, "search", "[zebra]", "--limit", "2"])
    assert people.exit_code == 0 and "zebra" in people.stdout


def test_replay_swaps_in_equal_indexes(small_store):
    memories.add(small_store, "zebra notes", project="alpha")
    runner = Runner(small_store, projections())
    runner.catch_up()
    embed_pending(small_store, embedder=EMBEDDER)
    before = {mode: find(small_store, "zebra", mode=mode) for mode in ("fts", "vector", "hybrid")}
    runner.rebuild(["fulltext", "vectors"])
    embed_pending(small_store, embedder=EMBEDDER)
    with small_store.transaction() as tx:
        fulltext.integrity_check(tx)
    for mode, hits in before.items():
        assert find(small_store, "zebra", mode=mode) == hits, mode
    leftovers = small_store.db.conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB 'r[0-9]*_*'").fetchall()
    assert leftovers == []
    assert len(small_store.db.conn.execute(
        "SELECT name FROM sqlite_schema WHERE name GLOB 'vec_index_*' AND sql LIKE 'CREATE VIRTUAL%'").fetchall()) == 1
    runner.close()


def test_read_line_numbers_are_not_indexed():
    numbered = "     1→import os\n    12→x = 1 → 2\n  1234→done"
    assert search_text.strip_line_numbers(numbered) == "import os\nx = 1 → 2\ndone"
    assert search_text.strip_line_numbers("no arrows 12") == "no arrows 12"


def test_tool_input_prose_is_found_by_words_and_code_by_substrings(tmp_path):
    root = tmp_path / "projects" / "-srv"
    root.mkdir(parents=True)
    tools = [{"type": "tool_use", "id": "t1", "name": "Bash",
              "input": {"command": "ls -la /srv/quokkadata", "description": "List the wombat folder"}},
             {"type": "tool_use", "id": "t2", "name": "Task",
              "input": {"description": "Audit", "prompt": "Audit every numbat handler for races"}}]
    with open(root / "s1.jsonl", "w") as f:
        for i, block in enumerate(tools):
            f.write(json.dumps({"type": "assistant", "sessionId": "s1", "cwd": "/srv", "uuid": f"u{i}",
                                "timestamp": "2026-03-01T10:00:00.000Z",
                                "message": {"role": "assistant", "id": f"m{i}", "model": "claude-x",
                                            "content": [block]}}) + "\n")
    with Store(tmp_path / "events.db") as store:
        Ingester(store).ingest([tmp_path / "projects"])
        runner = ready(store)
        found = [search_text.extract(e) for e in store.read_all()]
        assert "ls -la /srv/quokkadata" in found[0].code and "wombat" not in found[0].code
        assert found[1].code == "" and "numbat" in found[1].text
        assert [h.event_position for h in find(store, "wombat folder")] == [1]
        assert [h.event_position for h in find(store, "numbat handler")] == [2]
        assert [h.event_position for h in find(store, "srv/quokkad")] == [1]  # a substring: the code index
        runner.close()


# ---------------------------------------------------------------- scripts written without spaces


def test_chinese_japanese_and_korean_words_are_found_inside_sentences(tmp_path):
    """unicode61 alone makes a whole sentence of them one token, which no word of it matched."""
    root = tmp_path / "projects" / "-srv"
    root.mkdir(parents=True)
    lines = [("user", "東京タワーに行きました。Python入門も読んだ"), ("assistant", "数据库迁移已经完成了"),
             ("user", "내일 서울에서 만나요"), ("assistant", "the zebra is fine")]
    with open(root / "s1.jsonl", "w") as f:
        for i, (kind, text) in enumerate(lines):
            f.write(_line(kind, "s1", "/srv", f"2026-03-01T10:00:0{i}.000Z", text, f"u{i}"))
    with Store(tmp_path / "events.db") as store:
        Ingester(store).ingest([tmp_path / "projects"])
        runner = ready(store)

        def positions(query, **kw):
            return sorted(h.event_position for h in find(store, query, **kw))

        assert positions("タワー") == positions("入門") == positions("python") == [1]
        assert positions("迁移") == [2] and positions("서울") == [3]
        assert positions("ワタ") == []  # the characters of a word, out of order
        assert positions("タワー 迁移") == []  # each word is required
        assert positions("タワー OR 서울", syntax=True) == [1, 3]
        assert positions('"完成" NOT zebra', syntax=True) == [2]
        [hit] = find(store, "タワー")
        assert "東京**タワー**に" in hit.snippet  # one mark for the word, not one per character
        memories.add(store, "週末のデプロイは禁止", project="srv")
        Runner(store, projections()).catch_up()
        assert [h.kind for h in find(store, "デプロイ")] == ["memory"]
        runner.close()


_UNICODE61 = apsw.Connection(":memory:").fts5_tokenizer("unicode61", ["remove_diacritics", "2"])


@settings(max_examples=400, deadline=None)
@example(text="東京タワー々。Python入門 서울에서 café")
@given(text=st.lists(st.sampled_from(["東京", "タワー", "ｶﾀｶﾅ", "서울", "ー", "々", "。", "・", " ", "a", "Café", "x1",
                                      "e\u0301", "😀", "\ud800", "\n", "𠮷"]) | st.text(max_size=4),
                     max_size=12).map("".join))
def test_tokens_are_the_words_the_index_is_given(text):
    """What a query and a snippet see as words is what FTS5 makes of the text the index is given,
    and each token's offsets hold that token."""
    found = tokens(text)
    spaced_text = spaced(text).encode("utf-8", "surrogatepass")
    assert [t[2] for t in found] == [t[2] for t in _UNICODE61(spaced_text, apsw.FTS5_TOKENIZE_DOCUMENT, None,
                                                              include_colocated=False)]
    data = text.encode("utf-8", "surrogatepass")
    for start, end, token in found:
        assert tokens(data[start:end].decode("utf-8", "surrogatepass")) == [(0, end - start, token)]
