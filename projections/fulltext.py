"""Full-text search over transcripts and memories: FTS5 word and substring indexes.

Two contentless FTS5 tables (`content=''`) keep only the index, never the text, which stays in
the compressed log:

- `fts_text` (tokenize unicode61, contentless_delete=1 so memories can change): bm25-ranked
  word, phrase and NEAR search. It is given `fts_query.spaced` text, in which each Chinese,
  Japanese and Korean character is a word. It keeps positions (detail=full): without them it
  is a quarter of the size, but phrases must then be checked against the text read back from
  the log, and on the 500 MB benchmark tree a phrase of common words has thousands of
  candidates that hold its words apart (measured: 7 of 60 quoted phrases found nothing, p50
  90 ms instead of 10).
- `fts_code` (tokenize trigram, detail=none, columnsize=0: never ranked, never deleted from):
  substring candidates in code and paths, confirmed against the text read back from the log.

A snippet is built by reading the event back from the Store. `fts_docs` holds what filters
need (role, session, project, time) per indexed document, as small integers; its rowid is the
event's log position, and a memory's is the position of its `memory.added` event.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from projections.base import Writer
from projections.fts_query import CODE_TOKENIZE, TEXT_TOKENIZE, code_match, match_expression, spaced
from projections.search_text import MESSAGE_TYPES, ROLES, NameTables, TextOptions, extract
from schemas import memories as mem
from schemas.envelope import RecordedEvent

__all__ = [
    "FtsOptions", "FulltextProjection", "KIND_MEMORY", "KIND_MESSAGE", "integrity_check", "optimize", "projection",
]

KIND_MESSAGE, KIND_MEMORY = 0, 1
ROLE_NUMBER: dict[str, int] = {role: number for number, role in enumerate(ROLES)}
"""fts_docs stores a role as its index in search_text.ROLES."""
MEMORY_ROLE = ROLE_NUMBER["memory"]


class FtsOptions(msgspec.Struct, frozen=True, kw_only=True):
    """FTS5 options of the two indexes, named as FTS5 names them (part of the version)."""

    text_tokenize: tuple[str, ...] = TEXT_TOKENIZE
    code_tokenize: tuple[str, ...] = CODE_TOKENIZE
    content: str = ""
    """'' makes the tables contentless: the text lives only in the log."""
    text_detail: str = "full"
    """The word index keeps positions: phrases and NEAR are answered by the index."""
    code_detail: str = "none"
    """The substring index keeps no positions; candidates are confirmed against the text."""
    text: TextOptions = TextOptions()

    def identity(self) -> str:
        """A string naming these options, for the projection version."""
        return "|".join((" ".join(self.text_tokenize), " ".join(self.code_tokenize), self.content,
                         self.text_detail, self.code_detail, self.text.identity()))


def _tokenize(spec: Sequence[str]) -> str:
    return "'" + " ".join(spec).replace("'", "''") + "'"


def ddl(prefix: str, options: FtsOptions) -> list[str]:
    """The statements creating the projection's tables, every name prefixed."""
    p = prefix
    content = f"content='{options.content}'"
    return [
        f"CREATE TABLE {p}fts_projects (project_no INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE)",
        f"CREATE TABLE {p}fts_sessions (session_no INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE,"
        " project_no INTEGER)",
        # role: its index in ROLES (a memory's role is "memory"). position: the event a snippet
        # is read back from when it is not doc_id (a memory's latest change), else NULL.
        f"CREATE TABLE {p}fts_docs (doc_id INTEGER PRIMARY KEY, role INTEGER NOT NULL,"
        " session_no INTEGER, project_no INTEGER, ts INTEGER, position INTEGER)",
        f"CREATE TABLE {p}fts_memories (memory_id TEXT PRIMARY KEY, doc_id INTEGER NOT NULL,"
        " text TEXT NOT NULL, tags TEXT NOT NULL, project TEXT) WITHOUT ROWID",
        f"CREATE INDEX {p}fts_memories_doc ON {p}fts_memories (doc_id)",
        f"CREATE VIRTUAL TABLE {p}fts_text USING fts5(body, {content}, contentless_delete=1,"
        f" detail={options.text_detail}, tokenize={_tokenize(options.text_tokenize)})",
        f"CREATE VIRTUAL TABLE {p}fts_code USING fts5(code, {content}, columnsize=0,"
        f" detail={options.code_detail}, tokenize={_tokenize(options.code_tokenize)})",
    ]


class FulltextProjection:
    """The `fulltext` read model: word and substring indexes of messages, tools, summaries, memories."""

    name = "fulltext"
    inline = False
    handles: frozenset[str] | None = MESSAGE_TYPES | {mem.ADDED, mem.UPDATED, mem.FORGOTTEN}
    tables: tuple[str, ...] = ("fts_projects", "fts_sessions", "fts_docs", "fts_memories", "fts_text", "fts_code")

    def __init__(self, options: FtsOptions | None = None) -> None:
        self.options = options or FtsOptions()
        self.version = f"4:{self.options.identity()}"  # 4: Chinese, Japanese and Korean characters are words

    def create(self, tx: Writer, prefix: str) -> None:
        """Create the tables, every name prefixed with `prefix`."""
        for statement in ddl(prefix, self.options):
            tx.execute(statement)

    def apply(self, tx: Writer, events: Sequence[RecordedEvent], prefix: str) -> None:
        """Index a batch of events: transcript text, and memories as they change."""
        self.apply_facts(tx, self.facts(events), prefix)

    def facts(self, events: Sequence[RecordedEvent]) -> list[tuple | RecordedEvent]:
        """What a batch indexes, in log order, worked out from the events alone: (position, role
        number, session id, project, time, text, code) of each transcript event with text, and
        each memory event as it is (its change depends on the index)."""
        out: list[tuple | RecordedEvent] = []
        for event in events:
            if event.type in MESSAGE_TYPES:
                found = extract(event, self.options.text)
                if found is not None:
                    out.append((event.position, ROLE_NUMBER[found.role], found.session_id, found.project,
                                found.timestamp, spaced(found.text), found.code))
            else:
                out.append(event)
        return out

    def apply_facts(self, tx: Writer, facts: list[tuple | RecordedEvent], prefix: str) -> None:
        """Index a batch's facts (from `facts`)."""
        names = NameTables(tx, prefix, "fts_")
        docs, texts, codes = [], [], []
        for found in facts:
            if type(found) is tuple:
                position, role, session_id, project, timestamp, text, code = found
                session_no, project_no = names.session(session_id, project)
                docs.append((position, role, session_no, project_no, timestamp))
                texts.append((position, text))
                if code:
                    codes.append((position, code))
            else:
                if docs:  # keep log order: memory changes may refer to earlier rows
                    _flush(tx, prefix, docs, texts, codes)
                    docs, texts, codes = [], [], []
                _apply_memory(tx, prefix, names, found)
        _flush(tx, prefix, docs, texts, codes)


def _flush(tx: Writer, p: str, docs: list, texts: list, codes: list) -> None:
    if docs:
        tx.executemany(f"INSERT OR REPLACE INTO {p}fts_docs VALUES (?, ?, ?, ?, ?, NULL)", docs)
        tx.executemany(f"INSERT INTO {p}fts_text (rowid, body) VALUES (?, ?)", texts)
    if codes:
        tx.executemany(f"INSERT INTO {p}fts_code (rowid, code) VALUES (?, ?)", codes)


def _memory_body(text: str, tags: Sequence[str]) -> str:
    return spaced(text + ("\n" + " ".join(tags) if tags else ""))


def _apply_memory(tx: Writer, p: str, names: NameTables, event: RecordedEvent) -> None:
    payload = mem.decode_payload(event.type, event.data)
    when = event.occurred_at if event.occurred_at is not None else event.recorded_at
    rows = tx.execute(f"SELECT doc_id, text, tags, project FROM {p}fts_memories WHERE memory_id = ?",
                      (payload.memory_id,))
    if isinstance(payload, mem.MemoryAdded):
        if rows:
            return  # added twice (an imported copy): the first one stands
        doc_id, text, tags, project = event.position, payload.text, list(payload.tags), payload.project
        tx.execute(f"INSERT INTO {p}fts_memories VALUES (?, ?, ?, ?, ?)",
                   (payload.memory_id, doc_id, text, msgspec.json.encode(tags).decode(), project))
    elif not rows:
        return  # a change to a memory this index never saw added, or already forgot
    elif isinstance(payload, mem.MemoryForgotten):
        doc_id = rows[0][0]
        tx.execute(f"DELETE FROM {p}fts_text WHERE rowid = ?", (doc_id,))
        tx.execute(f"DELETE FROM {p}fts_docs WHERE doc_id = ?", (doc_id,))
        tx.execute(f"DELETE FROM {p}fts_memories WHERE memory_id = ?", (payload.memory_id,))
        return
    elif isinstance(payload, mem.MemoryUpdated):
        doc_id, text, tags_json, project = rows[0]
        tags = msgspec.json.decode(tags_json)
        if payload.text is not msgspec.UNSET:
            text = payload.text
        if payload.tags is not msgspec.UNSET:
            tags = list(payload.tags)
        if payload.project is not msgspec.UNSET:
            project = payload.project
        tx.execute(f"UPDATE {p}fts_memories SET text = ?, tags = ?, project = ? WHERE memory_id = ?",
                   (text, msgspec.json.encode(tags).decode(), project, payload.memory_id))
        tx.execute(f"DELETE FROM {p}fts_text WHERE rowid = ?", (doc_id,))
    else:
        return
    tx.execute(f"INSERT OR REPLACE INTO {p}fts_docs VALUES (?, ?, NULL, ?, ?, ?)",
               (doc_id, MEMORY_ROLE, names.project(project), when,
                event.position if event.position != doc_id else None))
    tx.execute(f"INSERT INTO {p}fts_text (rowid, body) VALUES (?, ?)", (doc_id, _memory_body(text, tags)))


def projection() -> FulltextProjection:
    """The projection with default options (the `eventstore.projections` entry point)."""
    return FulltextProjection()


# ---------------------------------------------------------------- maintenance


def integrity_check(tx: Writer, prefix: str = "") -> None:
    """Run FTS5's 'integrity-check' on both indexes (raises if an index is damaged)."""
    for table in ("fts_text", "fts_code"):
        tx.execute(f"INSERT INTO {prefix}{table} ({prefix}{table}) VALUES ('integrity-check')")


def optimize(tx: Writer, prefix: str = "") -> None:
    """Run FTS5's 'optimize': merge each index into one b-tree (smaller, faster after a bulk build)."""
    for table in ("fts_text", "fts_code"):
        tx.execute(f"INSERT INTO {prefix}{table} ({prefix}{table}) VALUES ('optimize')")


# ---------------------------------------------------------------- queries

RANK_WINDOW = 4_000
"""bm25 ranks at most this many of the newest matches: a very common word stays fast."""


class Filters(msgspec.Struct, frozen=True, kw_only=True):
    """What a search may be restricted to (None: no restriction)."""

    project: str | None = None
    """A case-insensitive substring of the project path."""
    session: str | None = None
    roles: tuple[str, ...] | None = None
    since: int | None = None
    """Milliseconds since the epoch, inclusive."""
    until: int | None = None
    """Milliseconds since the epoch, exclusive."""


class FtsHit(msgspec.Struct, frozen=True, kw_only=True):
    """One full-text match, before its snippet is built."""

    doc_id: int
    kind: int
    role: str
    session_id: str | None
    timestamp: int | None
    position: int
    score: float
    substring: bool = False


def _filter_sql(p: str, filters: Filters, rows) -> tuple[str, list[object]] | None:
    """WHERE conditions on fts_docs `d`, or None when the filters can match nothing."""
    sql, params = [], []
    if filters.session is not None:
        found = rows(f"SELECT session_no FROM {p}fts_sessions WHERE session_id = ?", (filters.session,))
        if not found:
            return None
        sql.append("d.session_no = ?")
        params.append(found[0][0])
    if filters.project is not None:
        found = [r[0] for r in rows(f"SELECT project_no FROM {p}fts_projects WHERE instr(lower(path), lower(?)) > 0",
                                    (filters.project,))]
        if not found:
            return None
        sql.append(f"d.project_no IN ({','.join('?' * len(found))})")
        params.extend(found)
    if filters.roles is not None:
        numbers = [ROLE_NUMBER[r] for r in filters.roles if r in ROLE_NUMBER]
        if not numbers:
            return None
        sql.append(f"d.role IN ({','.join('?' * len(numbers))})")
        params.extend(numbers)
    if filters.since is not None:
        sql.append("d.ts >= ?")
        params.append(filters.since)
    if filters.until is not None:
        sql.append("d.ts < ?")
        params.append(filters.until)
    return "".join(" AND " + s for s in sql), params


_HIT_COLUMNS = "d.doc_id, d.role, s.session_id, d.ts, coalesce(d.position, d.doc_id)"


def _hit(row, score: float, substring: bool = False) -> FtsHit:
    role = ROLES[row[1]]
    return FtsHit(doc_id=row[0], kind=KIND_MEMORY if row[1] == MEMORY_ROLE else KIND_MESSAGE, role=role,
                  session_id=row[2], timestamp=row[3], position=row[4], score=score, substring=substring)


def search_words(rows, query: str, filters: Filters = Filters(), limit: int = 20, *, syntax: bool = False,
                 prefix: str = "") -> list[FtsHit]:
    """Word and phrase matches ranked by bm25 (score: higher is better).

    `rows(sql, params)` runs a read query (see projections.search). Raises apsw's SQLError for
    invalid FTS5 syntax when `syntax` is set; the caller translates it.
    """
    match = match_expression(query, syntax=syntax)
    where = _filter_sql(prefix, filters, rows)
    if match is None or where is None or limit <= 0:
        return []
    p = prefix
    # The newest RANK_WINDOW matches that pass the filters are ranked: FTS5 walks its doclists
    # newest first and bm25 is computed only for rows that pass.
    sql = (
        f"SELECT {_HIT_COLUMNS}, m.score FROM "
        f"(SELECT t.rowid AS doc_id, bm25({p}fts_text) AS score FROM {p}fts_text t"
        f" JOIN {p}fts_docs d ON d.doc_id = t.rowid WHERE {p}fts_text MATCH ?{where[0]}"
        f" ORDER BY t.rowid DESC LIMIT {RANK_WINDOW:d}) AS m"
        f" JOIN {p}fts_docs d ON d.doc_id = m.doc_id LEFT JOIN {p}fts_sessions s ON s.session_no = d.session_no"
        f" ORDER BY m.score LIMIT ?"
    )
    return [_hit(r, -r[5]) for r in rows(sql, [match, *where[1], limit])]


def search_code(rows, query: str, filters: Filters = Filters(), limit: int = 200, *,
                prefix: str = "") -> list[FtsHit]:
    """Candidates for a substring of code or paths, newest first (confirm them against the text)."""
    match = code_match(query)
    where = _filter_sql(prefix, filters, rows)
    if match is None or where is None or limit <= 0:
        return []
    p = prefix
    sql = (
        f"SELECT {_HIT_COLUMNS} FROM {p}fts_code c JOIN {p}fts_docs d ON d.doc_id = c.rowid"
        f" LEFT JOIN {p}fts_sessions s ON s.session_no = d.session_no"
        f" WHERE {p}fts_code MATCH ?{where[0]} ORDER BY c.rowid DESC LIMIT ?"
    )
    return [_hit(r, 0.0, substring=True) for r in rows(sql, [match, *where[1], limit])]


def memory_text(rows, doc_id: int, prefix: str = "") -> str | None:
    """The current text of a memory document."""
    found = rows(f"SELECT text FROM {prefix}fts_memories WHERE doc_id = ?", (doc_id,))
    return found[0][0] if found else None


def memory_id_of(rows, doc_id: int, prefix: str = "") -> str | None:
    """The memory id of a memory document."""
    found = rows(f"SELECT memory_id FROM {prefix}fts_memories WHERE doc_id = ?", (doc_id,))
    return found[0][0] if found else None
