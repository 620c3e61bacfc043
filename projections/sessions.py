"""The sessions read model: one row per Claude Code session, with what a listing needs.

Per session (the stream `claude:session:<id>`, which also holds its subagents' lines):

* `cwd` and `project` (the cwd's last component): the first cwd of the main conversation,
  else of a subagent (a subagent's cwd may be a worktree).
* `git_branch`: the latest non-empty branch of the main conversation, else of a subagent.
* `title`: the latest (in log order) of `summary`, `ai-title` and `custom-title` records. A
  summary names its session by `leafUuid`: it titles the session holding that uuid when one
  is known (the first to hold it), else the session whose stream it was read in. A summary
  read before its leaf lands on the right session once the leaf arrives.
* `started_at`/`ended_at`: the earliest and latest record time.
* `messages`: prompts and responses of the main conversation: user records that are neither
  tool results nor meta, plus assistant responses, one per run of consecutive lines sharing a
  `message.id` (Claude Code writes one line per content block, one after the other).
* `models`: distinct assistant models (subagents' included, `<synthetic>` left out).
* `subagents`: distinct `agentId`s, plus sidechain roots without one (1.0.x inline sidechains).

Tokens and cost come from the usage projection at query time (`session_totals`), so the two
never disagree. Owns the tables listed in `SessionsProjection.tables`.
"""

from __future__ import annotations

import importlib
import re
import sys
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from hashlib import blake2b
from typing import Any

import msgspec

from eventstore.feed import iso
from schemas import lean
from schemas.envelope import RecordedEvent
from schemas.transcript import AssistantRecord, UserRecord, decode_record
from schemas.transcript_events import OTHER, RECORD_TYPES, SESSION_STREAM_PREFIX

__all__ = ["SessionRow", "SessionsProjection", "key", "key_holders", "list_sessions", "list_sessions_sql", "project_of",
           "record_keys", "usage_totals"]

NAME = "sessions"
SYNTHETIC_MODEL = "<synthetic>"
_TITLE_TYPES = {"claude.summary": "summary", "claude.ai-title": "ai-title", "claude.custom-title": "custom-title"}
_LINE_TYPES = frozenset(("claude.user", "claude.assistant"))
_IN_CHUNK = 500

DDL = """
CREATE TABLE {p}sessions (
    session_no         INTEGER PRIMARY KEY,
    session_id         TEXT NOT NULL UNIQUE,
    cwd_main           TEXT,              -- first cwd of the main conversation
    cwd_side           TEXT,              -- first cwd of a subagent
    branch_main        TEXT,              -- latest non-empty gitBranch of the main conversation
    branch_side        TEXT,
    started_at         INTEGER,           -- ms since the epoch
    ended_at           INTEGER,
    user_messages      INTEGER NOT NULL DEFAULT 0,
    assistant_messages INTEGER NOT NULL DEFAULT 0,
    last_response      TEXT               -- message.id of the latest main-chain assistant line
);
CREATE INDEX {p}sessions_started ON {p}sessions (started_at);

-- Which session holds each user/assistant record uuid (its 64-bit key), to place summaries:
-- per batch, one row per bucket (the key's top 8 bits) holding that batch's keys in the bucket,
-- sorted, and the session first holding each in the batch. A row per record cost as much as the
-- rest of a rebuild's writes; only the few keys summaries name are ever looked up.
CREATE TABLE {p}session_key_runs (
    run        INTEGER PRIMARY KEY,
    bucket     INTEGER NOT NULL,
    keys       BLOB NOT NULL,         -- int64 little-endian
    sessions   BLOB NOT NULL          -- int32 little-endian: session_no of each key
);
CREATE INDEX {p}session_key_runs_bucket ON {p}session_key_runs (bucket, run);

-- The session each summary's leaf key lands on (the first to hold it), and the leaf keys no
-- session holds yet.
CREATE TABLE {p}session_leaves (
    leaf_key   INTEGER PRIMARY KEY,
    session_no INTEGER NOT NULL
);
CREATE TABLE {p}session_pending_leaves (
    leaf_key   INTEGER PRIMARY KEY
);

CREATE TABLE {p}session_agents (
    session_no INTEGER NOT NULL,
    agent      TEXT NOT NULL,
    PRIMARY KEY (session_no, agent)
) WITHOUT ROWID;

CREATE TABLE {p}session_models (
    session_no INTEGER NOT NULL,
    model      TEXT NOT NULL,
    PRIMARY KEY (session_no, model)
) WITHOUT ROWID;

-- Title records in log order; leaf_key (summaries only) is the hashed leafUuid.
CREATE TABLE {p}session_titles (
    position   INTEGER PRIMARY KEY,
    session_no INTEGER NOT NULL,
    leaf_key   INTEGER,
    title      TEXT NOT NULL
);
"""


# Lean decoders: only the fields read here, so msgspec skips the rest of each line.


class _Message(lean.Message, gc=False):
    id: Any = None
    model: Any = None


class _Line(lean.User, gc=False):
    """`lean.User` with an assistant message's id and model, of any type: the tolerant decode of a
    line the shared decodes rejected."""

    message: _Message | None = None


class _Title(msgspec.Struct, gc=False):
    summary: Any = None
    leafUuid: Any = None
    aiTitle: Any = None
    customTitle: Any = None


_LINE = msgspec.json.Decoder(_Line)
_TITLE = msgspec.json.Decoder(_Title)


def _line(data: bytes) -> _Line:
    """The fields of a user/assistant line; odd lines go through the tolerant schema decoder."""
    try:
        return _LINE.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        record = decode_record(data)  # raises only for bytes that are not JSON at all
    if not isinstance(record, (UserRecord, AssistantRecord)):
        return _Line()
    message = record.message
    return _Line(
        uuid=record.uuid, parentUuid=record.parent_uuid, isSidechain=record.is_sidechain,
        isMeta=record.is_meta, agentId=record.agent_id, cwd=record.cwd, gitBranch=record.git_branch,
        message=None if message is None else _Message(
            id=getattr(message, "id", None), model=getattr(message, "model", None),
            content=_content_kinds(message.content)),
    )


def _content_kinds(content: object) -> object:
    if isinstance(content, list):
        return [lean.Block(type=getattr(block, "type", None)) for block in content]
    return content if isinstance(content, str) else None


def _title(data: bytes) -> _Title:
    try:
        return _TITLE.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        obj = msgspec.json.decode(data) if data else None
        return _Title(**{k: obj.get(k) for k in _Title.__struct_fields__}) if isinstance(obj, dict) else _Title()


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def key(uuid: str) -> int:
    """A record uuid as a signed 64-bit key: its first 8 bytes, little-endian, when it is a UUID
    (as `record_keys` reads them), else a hash."""
    if len(uuid) == 36 and uuid[8] == uuid[13] == uuid[18] == uuid[23] == "-":
        try:
            first = bytes.fromhex(uuid[:8] + uuid[9:13] + uuid[14:18])
        except ValueError:
            first = b""
        if len(first) == 8:
            return int.from_bytes(first, "little", signed=True)
    return int.from_bytes(blake2b(uuid.encode(), digest_size=8).digest(), "big", signed=True)


def record_keys(uuids: list[str]) -> array:
    """`key` of each uuid. When all are UUIDs (the rule), in a few C calls for the whole list:
    one call a uuid was a twentieth of a rebuild."""
    n = len(uuids)
    joined = "".join(uuids)
    if n and set(map(len, uuids)) == {36} and joined[8::36] == joined[13::36] == joined[18::36] == \
            joined[23::36] == "-" * n:
        digits = joined.replace("-", "")
        try:
            raw = bytes.fromhex(digits) if len(digits) == 32 * n else b""
        except ValueError:
            raw = b""
        if len(raw) == 16 * n:
            halves = array("q", raw)
            if sys.byteorder == "big":
                halves.byteswap()
            return halves[::2]
    return array("q", map(key, uuids))


def _is_tool_result(content: object) -> bool:
    if type(content) not in (tuple, list) or not content:
        return False
    return all(block.type == "tool_result" for block in content)


class _Acc:
    """What one batch contributes to one session."""

    __slots__ = ("started", "ended", "cwd_main", "cwd_side", "branch_main", "branch_side", "users",
                 "responses", "first_response", "last_response")

    def __init__(self) -> None:
        self.started: int | None = None
        self.ended: int | None = None
        self.cwd_main = self.cwd_side = self.branch_main = self.branch_side = None
        self.users = 0
        self.responses = 0  # changes of message.id among main-chain assistant lines
        self.first_response: str | None = None
        self.last_response: str | None = None


class SessionsProjection:
    """Sessions: project, cwd, branch, title, times, message counts, models, subagents."""

    name = NAME
    version = "4"
    handles = frozenset("claude." + t for t in RECORD_TYPES) | {OTHER}
    payloads = _LINE_TYPES | frozenset(_TITLE_TYPES)
    inline = False
    tables = ("sessions", "session_key_runs", "session_leaves", "session_pending_leaves", "session_agents",
              "session_models", "session_titles")

    def create(self, tx, prefix: str) -> None:
        """Create the tables under `prefix` (and drop version 2's `session_keys`, which nothing reads now)."""
        tx.execute("DROP TABLE IF EXISTS session_keys")
        tx.execute(DDL.format(p=prefix))

    def apply(self, tx, events: Sequence[RecordedEvent], prefix: str) -> None:
        """Fold a batch of transcript events into the session rows."""
        self.apply_facts(tx, self.facts(events), prefix)

    def facts(self, events: Sequence[RecordedEvent]) -> tuple:
        """What a batch adds to each session, worked out from the events alone: (per-session
        accumulators, record keys, agents, models, titles)."""
        builder = _Facts()
        builder.add(events)
        return builder.result()

    def facts_builder(self) -> _Facts:
        """`facts` of a batch handed over a chunk at a time (projections.base)."""
        return _Facts()

    def apply_facts(self, tx, facts: tuple, prefix: str) -> None:
        """Fold `facts` of a batch into the session rows."""
        if facts[0]:
            _write(tx, prefix, *facts)

    def comparable_rows(self, conn, table: str, prefix: str) -> set | None:
        """`session_key_runs` as (key, session_no) pairs: each batch packs its keys in runs of its own."""
        return set(key_holders(conn, prefix).items()) if table == "session_key_runs" else None


class _Facts:
    """What a batch adds to each session (`SessionsProjection.facts`), worked out a chunk of its
    events at a time: `add` each in log order, then take the `result`."""

    __slots__ = ("accs", "uuids", "runs", "agents", "models", "titles", "stream", "acc", "session")

    def __init__(self) -> None:
        self.accs: dict[str, _Acc] = {}
        self.uuids: list[str] = []  # of user and assistant records, in log order
        self.runs: list[tuple[int, str]] = []  # (index in uuids, session): where each session's run of them starts
        self.agents: set[tuple[str, str]] = set()
        self.models: set[tuple[str, str]] = set()
        self.titles: list[tuple[int, str, int | None, str]] = []
        self.stream = self.acc = self.session = None  # of the last event added

    def add(self, events: Sequence[RecordedEvent]) -> None:
        accs, uuids, runs, agents, models, titles = (self.accs, self.uuids, self.runs, self.agents, self.models,
                                                     self.titles)
        assistant, user = lean.assistant, lean.user  # decoded once, shared with usage and tasks
        skip = len(SESSION_STREAM_PREFIX)
        stream, acc, session = self.stream, self.acc, self.session
        for event in events:
            if event.stream is not stream:  # a batch holds long runs of one stream, sharing its name
                stream = event.stream
                if stream.startswith(SESSION_STREAM_PREFIX):
                    session = stream[skip:]
                    acc = accs.get(session)
                    if acc is None:
                        acc = accs[session] = _Acc()
                    runs.append((len(uuids), session))
                else:
                    acc = None
            if acc is None:
                continue
            at = event.occurred_at
            if at is not None:
                if acc.started is None or at < acc.started:
                    acc.started = at
                if acc.ended is None or at > acc.ended:
                    acc.ended = at
            type_ = event.type
            if type_ in _LINE_TYPES:
                data = event.data
                is_assistant = type_ == "claude.assistant"
                line = assistant(data) if is_assistant else user(data)
                if line is None:
                    line = _line(data)  # an odd line: the tolerant decoder
                _fold_line(line, is_assistant, session, acc, uuids, agents, models)
            elif type_ in _TITLE_TYPES:
                _fold_title(event, session, titles)
        self.stream, self.acc, self.session = stream, acc, session

    def result(self) -> tuple:
        return self.accs, _holders(self.uuids, self.runs), self.agents, self.models, self.titles


def _fold_line(line, assistant: bool, session: str, acc: _Acc, uuids: list, agents: set, models: set) -> None:
    """One user or assistant line, as `schemas.lean` decodes it (`Assistant`, `User`), or a `_Line` when its
    types are odd."""
    side = line.isSidechain is True
    uuid = line.uuid
    if (acc.cwd_side if side else acc.cwd_main) is None:
        cwd = line.cwd
        if type(cwd) is str and cwd:
            if side:
                acc.cwd_side = cwd
            else:
                acc.cwd_main = cwd
    branch = line.gitBranch
    if type(branch) is str and branch:
        if side:
            acc.branch_side = branch
        else:
            acc.branch_main = branch
    if type(uuid) is str and uuid:
        uuids.append(uuid)
    else:
        uuid = None
    agent = line.agentId
    if type(agent) is str and agent:
        agents.add((session, agent))
    elif side and uuid and line.parentUuid is None:
        agents.add((session, "root:" + uuid))
    message = line.message
    if assistant:
        if message is None:
            return
        model = message.model
        if type(model) is str and model and model != SYNTHETIC_MODEL:
            models.add((session, model))
        message_id = message.id
        if not side and type(message_id) is str and message_id and message_id != acc.last_response:
            # One response is written as consecutive lines (one per content block).
            if acc.first_response is None:
                acc.first_response = message_id
            acc.responses += 1
            acc.last_response = message_id
    elif not side and line.isMeta is not True and not _is_tool_result(message.content if message else None):
        acc.users += 1


def _holders(uuids: list[str], runs: list[tuple[int, str]]) -> tuple[array, list[str]]:
    """A batch's record keys, sorted (compact to send and to store), and the session first holding
    each in the batch."""
    sessions: list[str] = []
    for (start, session), (end, _) in zip(runs, [*runs[1:], (len(uuids), None)]):
        sessions += [session] * (end - start)
    first = dict(zip(reversed(record_keys(uuids)), reversed(sessions)))  # the earliest holder is set last
    order = sorted(first)
    return array("q", order), list(map(first.__getitem__, order))


def _fold_title(event: RecordedEvent, session: str, titles: list) -> None:
    record = _title(event.data)
    kind = _TITLE_TYPES[event.type]
    text = _str({"summary": record.summary, "ai-title": record.aiTitle, "custom-title": record.customTitle}[kind])
    if text is None:
        return
    leaf = _str(record.leafUuid) if kind == "summary" else None
    titles.append((event.position, session, key(leaf) if leaf else None, text))


def _write(tx, p: str, accs: dict[str, _Acc], keys, agents, models, titles) -> None:
    tx.executemany(f"INSERT OR IGNORE INTO {p}sessions (session_id) VALUES (?)", [(s,) for s in accs])
    known: dict[str, tuple[int, str | None]] = {}
    names = list(accs)
    for i in range(0, len(names), _IN_CHUNK):
        chunk = names[i:i + _IN_CHUNK]
        for session, number, last in tx.execute(
            f"SELECT session_id, session_no, last_response FROM {p}sessions"
            f" WHERE session_id IN ({','.join('?' * len(chunk))})", chunk,
        ):
            known[session] = (number, last)
    rows = []
    for session, a in accs.items():
        number, last = known[session]
        responses = a.responses - (a.first_response is not None and a.first_response == last)
        rows.append((a.started, a.ended, a.cwd_main, a.cwd_side, a.branch_main, a.branch_side, a.users, responses,
                     a.last_response, number))
    tx.executemany(
        f"UPDATE {p}sessions SET"
        " started_at = coalesce(min(started_at, ?1), started_at, ?1),"
        " ended_at = coalesce(max(ended_at, ?2), ended_at, ?2),"
        " cwd_main = coalesce(cwd_main, ?3), cwd_side = coalesce(cwd_side, ?4),"
        " branch_main = coalesce(?5, branch_main), branch_side = coalesce(?6, branch_side),"
        " user_messages = user_messages + ?7, assistant_messages = assistant_messages + ?8,"
        " last_response = coalesce(?9, last_response)"
        " WHERE session_no = ?10",
        rows,
    )
    sorted_keys, holders = keys
    holders = array("q", map({s: known[s][0] for s in accs}.__getitem__, holders))
    if sorted_keys:
        _store_keys(tx, p, sorted_keys, holders)
    if agents:
        tx.executemany(f"INSERT OR IGNORE INTO {p}session_agents (session_no, agent) VALUES (?, ?)",
                       [(known[s][0], a) for s, a in agents])
    if models:
        tx.executemany(f"INSERT OR IGNORE INTO {p}session_models (session_no, model) VALUES (?, ?)",
                       [(known[s][0], m) for s, m in models])
    if titles:
        tx.executemany(f"INSERT INTO {p}session_titles (position, session_no, leaf_key, title) VALUES (?, ?, ?, ?)",
                       [(pos, known[s][0], leaf, text) for pos, s, leaf, text in titles])
    leaves = {leaf for _, _, leaf, _ in titles if leaf is not None}
    if sorted_keys or leaves:
        _place_leaves(tx, p, sorted_keys, holders, leaves)


def _store_keys(tx, p: str, keys: array, holders: array) -> None:
    """Store a batch's record keys (sorted) and the session_no holding each, a row per bucket."""
    rows = []
    lo, n = 0, len(keys)
    while lo < n:
        bucket = keys[lo] >> 56
        hi = bisect_left(keys, (bucket + 1) << 56, lo)
        rows.append((bucket, _packed(keys[lo:hi]), _packed(array("i", holders[lo:hi]))))
        lo = hi
    tx.executemany(f"INSERT INTO {p}session_key_runs (bucket, keys, sessions) VALUES (?, ?, ?)", rows)


def _place_leaves(tx, p: str, keys: array, holders: array, leaves: set[int]) -> None:
    """Record which session each summary leaf lands on once a session holds it.

    A leaf still pending from earlier batches was held by none of them, so only this batch's keys
    can hold it; a leaf first named here is looked up in every batch's keys (its bucket's rows,
    this batch's included), the first to hold it winning, as for any record."""
    pending = {k for (k,) in tx.execute(f"SELECT leaf_key FROM {p}session_pending_leaves")}
    placed = {}
    for leaf in pending:
        i = bisect_left(keys, leaf)
        if i < len(keys) and keys[i] == leaf:
            placed[leaf] = holders[i]
    named = leaves - pending
    if named:
        named -= {k for (k,) in tx.execute(
            f"SELECT leaf_key FROM {p}session_leaves WHERE leaf_key IN (SELECT value FROM json_each(?))",
            (msgspec.json.encode(sorted(named)),))}
    unplaced = []
    for leaf in sorted(named):
        number = _holder(tx, p, leaf)
        if number is None:
            unplaced.append((leaf,))
        else:
            placed[leaf] = number
    if placed:
        tx.executemany(f"INSERT INTO {p}session_leaves (leaf_key, session_no) VALUES (?, ?)", sorted(placed.items()))
        tx.executemany(f"DELETE FROM {p}session_pending_leaves WHERE leaf_key = ?",
                       [(k,) for k in sorted(placed) if k in pending])
    if unplaced:
        tx.executemany(f"INSERT INTO {p}session_pending_leaves (leaf_key) VALUES (?)", unplaced)


def _holder(tx, p: str, leaf: int) -> int | None:
    """The session_no of the first stored record with this key, if any."""
    for keys, sessions in tx.execute(
            f"SELECT keys, sessions FROM {p}session_key_runs WHERE bucket = ? ORDER BY run", (leaf >> 56,)):
        found = _unpacked(keys)
        if leaf in found:
            return _unpacked(sessions, "i")[found.index(leaf)]
    return None


def key_holders(conn, prefix: str = "") -> dict[int, int]:
    """Every stored record key and the session_no first holding it (what the runs stand for,
    however batches split the log)."""
    holders: dict[int, int] = {}
    for keys, sessions in conn.execute(f"SELECT keys, sessions FROM {prefix}session_key_runs ORDER BY run"):
        for k, number in zip(_unpacked(keys), _unpacked(sessions, "i")):
            holders.setdefault(k, number)
    return holders


def _packed(values: array) -> bytes:
    """An array's values, little-endian."""
    if sys.byteorder == "big":
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _unpacked(blob: bytes, typecode: str = "q") -> array:
    """`_packed`'s values back."""
    values = array(typecode, blob)
    if sys.byteorder == "big":
        values.byteswap()
    return values


# Queries


class SessionRow(msgspec.Struct, kw_only=True):
    """One session as `eventstore sessions --json` shows it (token fields named as ccusage names them)."""

    session_id: str
    project: str | None
    cwd: str | None
    git_branch: str | None
    title: str | None
    started_at: str | None
    ended_at: str | None
    messages: int
    models: list[str]
    subagents: int
    inputTokens: int = 0
    outputTokens: int = 0
    cacheCreationTokens: int = 0
    cacheReadTokens: int = 0
    totalTokens: int = 0
    totalCost: float = 0.0


def list_sessions_sql(*, project: str | None = None, since: int | None = None, until: int | None = None,
                      limit: int | None = None) -> tuple[str, list[object]]:
    """The query behind `list_sessions`, with its parameters (times in ms since the epoch)."""
    where = ["s.started_at IS NOT NULL"]
    params: list[object] = []
    if project:
        where.append("instr(lower(coalesce(s.cwd_main, s.cwd_side, '')), lower(?)) > 0")
        params.append(project)
    if since is not None:
        where.append("s.started_at >= ?")
        params.append(since)
    if until is not None:
        where.append("s.started_at < ?")
        params.append(until)
    sql = f"""
WITH titled AS (
    SELECT coalesce(k.session_no, t.session_no) AS session_no, max(t.position) AS position, t.title AS title
    FROM session_titles t LEFT JOIN session_leaves k ON k.leaf_key = t.leaf_key
    GROUP BY 1
)
SELECT s.session_id, coalesce(s.cwd_main, s.cwd_side), coalesce(s.branch_main, s.branch_side),
       titled.title, s.started_at, s.ended_at, s.user_messages + s.assistant_messages,
       (SELECT json_group_array(model) FROM (SELECT model FROM session_models m
            WHERE m.session_no = s.session_no ORDER BY model)),
       (SELECT count(*) FROM session_agents a WHERE a.session_no = s.session_no)
FROM sessions s LEFT JOIN titled USING (session_no)
WHERE {' AND '.join(where)}
ORDER BY s.started_at DESC, s.session_id
LIMIT ?"""
    params.append(-1 if limit is None else limit)
    return sql, params


def list_sessions(conn, *, project: str | None = None, since: int | None = None, until: int | None = None,
                  limit: int | None = None) -> list[SessionRow]:
    """Sessions newest first, filtered by a cwd substring and a start-time range [since, until)."""
    sql, params = list_sessions_sql(project=project, since=since, until=until, limit=limit)
    rows = conn.execute(sql, params).fetchall()
    totals = usage_totals(conn)
    out = []
    for session_id, cwd, branch, title, started, ended, messages, models, subagents in rows:
        row = SessionRow(
            session_id=session_id, project=project_of(cwd), cwd=cwd,
            git_branch=branch, title=title, started_at=iso(started), ended_at=iso(ended), messages=messages,
            models=msgspec.json.decode(models), subagents=subagents,
        )
        usage = totals.get(session_id)
        if usage is not None:
            for field, value in usage.items():
                setattr(row, field, value)
        out.append(row)
    return out


_USAGE_FIELDS = {
    "inputTokens": "input_tokens", "outputTokens": "output_tokens",
    "cacheCreationTokens": "cache_creation_tokens", "cacheReadTokens": "cache_read_tokens",
    "totalTokens": "total_tokens", "totalCost": "total_cost",
}


def usage_totals(conn) -> dict[str, dict[str, Any]]:
    """Token and cost totals per session from the usage projection; empty if it is not installed."""
    session_totals = None
    for module in ("projections.usage_report", "projections.usage"):
        try:
            session_totals = getattr(importlib.import_module(module), "session_totals", None)
        except ImportError:
            continue
        if session_totals is not None:
            break
    if session_totals is None:
        return {}
    try:
        raw = session_totals(conn)
    except Exception:  # its tables not built yet, say: a listing without costs beats none
        return {}
    return {session: _usage_fields(totals) for session, totals in raw.items()}


def _usage_fields(totals: object) -> dict[str, Any]:
    """Accept a mapping (ccusage or snake_case keys) or an object with snake_case attributes."""
    out: dict[str, Any] = {}
    for camel, snake in _USAGE_FIELDS.items():
        if isinstance(totals, dict):
            value = totals.get(camel, totals.get(snake))
        else:
            value = getattr(totals, snake, getattr(totals, camel, None))
        if value is not None:
            out[camel] = float(value) if camel == "totalCost" else int(value)
    return out


def project_of(cwd: str | None) -> str | None:
    """A session's project name: the last component of its working directory."""
    if not cwd:
        return None
    parts = [part for part in re.split(r"[/\\]", cwd) if part]
    return parts[-1] if parts else cwd
