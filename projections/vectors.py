"""Vector search over messages and memories: sqlite-vec `vec0`, filled asynchronously.

Ingestion never waits for embeddings. The projection's `apply` only enqueues: the range of
positions of each batch's transcript events that may hold a message, with how many such
events it holds (`vec_pending`, one row per batch, not per event), and each memory whose text
changed (`vec_memories.pending`). `embed_pending(store, limit)` (run after catch-up, and by
search before it queries) reads those events back from the log, embeds their text in batches
and writes the vectors. Prompts, assistant text, summaries and memories are embedded; tool
calls and tool results are left to the full-text index.

Vectors are stored as int8 (each vector scaled so its largest component is ±127: cosine
distance does not change with scale), a quarter of float32's size. The embedder's identity and
dimension are part of the projection version, so changing the embedder rebuilds the index.
What a hit needs besides its vector (role, session, time) is kept in the vec0 table's
metadata columns, which filter the nearest-neighbour search too; there is no copy elsewhere.

vec0 tables cannot be renamed in sqlite-vec 0.1.9 (their shadow tables keep the old name), so
the vec0 table is not among the swapped `tables`: its name carries a generation
(`vec_index_<hex>`) recorded in the `vec_state` table, which is swapped like any other. A
vec0 table no `vec_state` refers to any more is dropped by the next `create` or `embed_pending`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import msgspec

from eventstore.errors import EventStoreError
from projections.base import Writer
from projections.embedders import Embedder, default_embedder
from projections.search_text import MESSAGE_TYPES, TextOptions, extract
from schemas import memories as mem
from schemas.envelope import RecordedEvent

__all__ = [
    "EMBED_ROLES", "EmbedderMismatch", "VectorHit", "VectorsProjection", "embed_pending", "ensure_sqlite_vec", "pending_count",
    "projection", "quantize", "search_vectors", "vector_count",
]

class EmbedderMismatch(EventStoreError):
    """The vector index was built with another embedder than the one asked to fill or query it."""


EMBED_ROLES: frozenset[str] = frozenset(("user", "assistant", "summary"))
"""Roles of transcript text that get a vector (tool calls and results do not)."""

BATCH = 256
KIND_MESSAGE, KIND_MEMORY = 0, 1


# ---------------------------------------------------------------- sqlite-vec


def _connection(obj):
    """The apsw connection behind a Store, a Transaction or a connection."""
    import apsw

    if isinstance(obj, apsw.Connection):
        return obj
    store = getattr(obj, "store", obj)
    return store.db.conn


def ensure_sqlite_vec(obj) -> None:
    """Load the sqlite-vec extension into the connection behind `obj` if it is not loaded yet."""
    import apsw

    conn = _connection(obj)
    try:
        conn.execute("SELECT vec_version()").fetchall()
        return
    except apsw.SQLError:
        pass
    import sqlite_vec

    conn.enable_load_extension(True)
    try:
        conn.load_extension(sqlite_vec.loadable_path())
    finally:
        conn.enable_load_extension(False)


def quantize(vector: Sequence[float]) -> bytes:
    """A vector as vec0 int8 bytes, scaled so its largest component is ±127 (b"" for a zero vector)."""
    top = max((abs(x) for x in vector), default=0.0)
    if not top:
        return b""
    scale = 127.0 / top
    return bytes((round(x * scale)) & 0xFF for x in vector)


# ---------------------------------------------------------------- the projection


def ddl(p: str) -> list[str]:
    """The regular tables (the vec0 table is made by `_create_index`)."""
    return [
        f"CREATE TABLE {p}vec_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        f"CREATE TABLE {p}vec_projects (project_no INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE)",
        f"CREATE TABLE {p}vec_sessions (session_no INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE,"
        " project_no INTEGER)",
        # Transcript events not yet embedded (or looked at): the `count` events of MESSAGE_TYPES
        # with positions first..last (every such event there, as one batch gave them to apply).
        f"CREATE TABLE {p}vec_pending (first INTEGER PRIMARY KEY, last INTEGER NOT NULL, count INTEGER NOT NULL)",
        # A memory's vector has rowid doc_id in the vec0 table; its snippet is read from text_position.
        f"CREATE TABLE {p}vec_memories (memory_id TEXT PRIMARY KEY, doc_id INTEGER NOT NULL,"
        " text_position INTEGER NOT NULL, project TEXT, pending INTEGER NOT NULL) WITHOUT ROWID",
        f"CREATE INDEX {p}vec_memories_pending ON {p}vec_memories (pending)",
        f"CREATE INDEX {p}vec_memories_doc ON {p}vec_memories (doc_id)",
    ]


class VectorsProjection:
    """The `vectors` read model: embeddings of messages and memories for nearest-neighbour search."""

    name = "vectors"
    inline = False
    handles: frozenset[str] | None = MESSAGE_TYPES | {mem.ADDED, mem.UPDATED, mem.FORGOTTEN}
    tables: tuple[str, ...] = ("vec_state", "vec_projects", "vec_sessions", "vec_pending", "vec_memories")
    payloads: frozenset[str] = mem.TYPES
    """Only memory payloads are read while catching up; transcript events are read when embedded."""

    def __init__(self, embedder: Embedder | None = None, text: TextOptions | None = None) -> None:
        self.embedder = embedder or default_embedder()
        self.text = text or TextOptions()
        self.version = f"2:{self.embedder.name}:{self.embedder.dimension}:{self.text.identity()}"

    def create(self, tx: Writer, prefix: str) -> None:
        """Create the tables and a fresh vec0 table for this embedder, and drop orphaned vec0 tables."""
        ensure_sqlite_vec(tx)
        for statement in ddl(prefix):
            tx.execute(statement)
        index = f"vec_index_{uuid.uuid4().hex[:12]}"
        tx.execute(
            f"CREATE VIRTUAL TABLE {index} USING vec0(embedding int8[{int(self.embedder.dimension)}]"
            " distance_metric=cosine, role text, session_no integer, project_no integer, ts integer)"
        )
        tx.executemany(f"INSERT INTO {prefix}vec_state (key, value) VALUES (?, ?)", [
            ("index", index), ("embedder", self.embedder.name), ("dimension", str(self.embedder.dimension)),
            ("version", self.version),
        ])
        drop_orphans(tx)

    def apply(self, tx: Writer, events: Sequence[RecordedEvent], prefix: str) -> None:
        """Enqueue: the batch's transcript events go to `vec_pending` as one range, memory changes
        mark the memory pending."""
        self.apply_facts(tx, self.facts(events), prefix)

    def facts(self, events: Sequence[RecordedEvent]) -> tuple[tuple[int, int, int] | None, list[RecordedEvent]]:
        """A batch's transcript events as (first, last, count) of their positions (None: it has
        none), and its memory events."""
        positions = [e.position for e in events if e.type in MESSAGE_TYPES]
        span = (min(positions), max(positions), len(positions)) if positions else None
        return span, [e for e in events if e.type in mem.TYPES]

    def apply_facts(self, tx: Writer, facts: tuple[tuple[int, int, int] | None, list[RecordedEvent]],
                    prefix: str) -> None:
        """Enqueue a batch's facts (from `facts`)."""
        span, changes = facts
        if span is not None:
            tx.execute(f"INSERT INTO {prefix}vec_pending (first, last, count) VALUES (?, ?, ?)", span)
        for event in changes:
            _apply_memory(tx, prefix, event)


def _apply_memory(tx: Writer, p: str, event: RecordedEvent) -> None:
    payload = mem.decode_payload(event.type, event.data)
    rows = tx.execute(f"SELECT doc_id, text_position, project FROM {p}vec_memories WHERE memory_id = ?",
                      (payload.memory_id,))
    if isinstance(payload, mem.MemoryAdded):
        if not rows:
            tx.execute(f"INSERT INTO {p}vec_memories VALUES (?, ?, ?, ?, 1)",
                       (payload.memory_id, event.position, event.position, payload.project))
        return
    if not rows:
        return
    doc_id, text_position, project = rows[0]
    if isinstance(payload, mem.MemoryForgotten):
        ensure_sqlite_vec(tx)
        index = _index_name(tx, p)
        if index:
            tx.execute(f"DELETE FROM {index} WHERE rowid = ?", (doc_id,))
        tx.execute(f"DELETE FROM {p}vec_memories WHERE memory_id = ?", (payload.memory_id,))
    elif isinstance(payload, mem.MemoryUpdated):
        if payload.text is not msgspec.UNSET:
            text_position = event.position
        if payload.project is not msgspec.UNSET:
            project = payload.project
        tx.execute(f"UPDATE {p}vec_memories SET text_position = ?, project = ?, pending = 1 WHERE memory_id = ?",
                   (text_position, project, payload.memory_id))


def _index_name(tx: Writer, p: str) -> str | None:
    rows = tx.execute(f"SELECT value FROM {p}vec_state WHERE key = 'index'")
    return rows[0][0] if rows else None


def drop_orphans(tx: Writer) -> list[str]:
    """Drop vec0 tables that no `vec_state` table (live or being rebuilt) refers to."""
    states = [r[0] for r in tx.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE '%vec\\_state' ESCAPE '\\'")]
    used = set()
    for state in states:
        used.update(r[0] for r in tx.execute(f'SELECT value FROM "{state}" WHERE key = \'index\''))
    indexes = [r[0] for r in tx.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB 'vec_index_[0-9a-f]*'"
        " AND sql LIKE 'CREATE VIRTUAL TABLE%'")]
    dropped = [name for name in indexes if name not in used]
    for name in dropped:
        tx.execute(f'DROP TABLE "{name}"')
    return dropped


def _orphans(rows) -> bool:
    indexes = {r[0] for r in rows("SELECT name FROM sqlite_schema WHERE type = 'table'"
                                  " AND name GLOB 'vec_index_[0-9a-f]*' AND sql LIKE 'CREATE VIRTUAL TABLE%'")}
    return len(indexes) > 1


def projection() -> VectorsProjection:
    """The projection with the default embedder (the `eventstore.projections` entry point)."""
    return VectorsProjection()


# ---------------------------------------------------------------- embedding the queue


class _State(msgspec.Struct, frozen=True):
    index: str
    embedder: str
    dimension: int


def _state(rows, p: str = "") -> _State | None:
    try:
        found = dict(rows(f"SELECT key, value FROM {p}vec_state", ()))
    except Exception:  # the projection has not been created yet
        return None
    if "index" not in found:
        return None
    return _State(found["index"], found["embedder"], int(found["dimension"]))


def _reader(store):
    """A function running one read query on the store (as projections.search.reader)."""

    def rows(sql: str, params=()) -> list[tuple]:
        with store.db.read() as conn:
            return conn.execute(sql, params).fetchall()
    return rows


def pending_count(store, prefix: str = "") -> int:
    """How many transcript events and memories wait to be looked at and embedded."""
    rows = _reader(store)
    if _state(rows, prefix) is None:
        return 0
    return (rows(f"SELECT coalesce(sum(count), 0) FROM {prefix}vec_pending")[0][0]
            + rows(f"SELECT count(*) FROM {prefix}vec_memories WHERE pending")[0][0])


def vector_count(store, prefix: str = "") -> int:
    """How many vectors the index holds."""
    rows = _reader(store)
    state = _state(rows, prefix)
    return rows(f"SELECT count(*) FROM {state.index}")[0][0] if state is not None else 0


class _Doc(msgspec.Struct):
    doc_id: int
    kind: int
    role: str
    text: str
    session_id: str | None
    project: str | None
    ts: int
    position: int


def embed_pending(store, limit: int | None = None, *, embedder: Embedder | None = None,
                  text: TextOptions | None = None, prefix: str = "") -> int:
    """Embed up to `limit` queued items (all when None); returns how many items left the queue.

    Reads the events back from the log, embeds in batches of `BATCH`, and writes each batch's
    vectors and dequeues it in one transaction. The embedder must be the one the index was
    built for (the projection version guarantees it after catch-up).
    """
    ensure_sqlite_vec(store)
    rows = _reader(store)
    state = _state(rows, prefix)
    if state is None:
        return 0
    embedder = embedder or default_embedder()
    if (embedder.name, embedder.dimension) != (state.embedder, state.dimension):
        raise EmbedderMismatch(f"the vector index was built with {state.embedder} ({state.dimension} dimensions), "
                               f"not {embedder.name} ({embedder.dimension}); catch up the vectors projection "
                               "(`eventstore replay --projection vectors`) first")
    options = text or TextOptions()
    if _orphans(rows):
        with store.transaction() as tx:
            drop_orphans(tx)
    done = 0
    while limit is None or done < limit:
        size = BATCH if limit is None else min(BATCH, limit - done)
        docs, progress, memories = _next_batch(store, rows, prefix, size, options)
        if not progress and not memories:
            break
        vectors = embedder.embed([d.text for d in docs]) if docs else []
        with store.transaction() as tx:
            if _state(lambda sql, params=(): tx.execute(sql, params), prefix) != state:
                return done  # a rebuild swapped the index in meanwhile: the next call starts afresh
            _write(tx, prefix, state, docs, vectors, progress, memories)
        done += sum(p.dequeued for p in progress) + len(memories)
    return done


class _Progress(msgspec.Struct, frozen=True):
    """What a batch did to one `vec_pending` range."""

    first: int
    dequeued: int
    """Events that leave the queue (looked at, or found gone)."""
    next_first: int | None
    """Where the rest of the range starts (None: nothing is left of it)."""


def _next_batch(store, rows, p: str, size: int, options: TextOptions):
    """The next documents to embed: queued memories first, then queued transcript events."""
    docs: list[_Doc] = []
    memories = rows(f"SELECT memory_id, doc_id, text_position, project FROM {p}vec_memories WHERE pending"
                    " LIMIT ?", (size,))
    for memory_id, doc_id, text_position, project in memories:
        event = store.get(text_position)
        if event is None or event.type not in mem.TYPES:
            continue
        payload = mem.decode_payload(event.type, event.data)
        text_value = getattr(payload, "text", None)
        if isinstance(text_value, str) and text_value.strip():
            docs.append(_Doc(doc_id, KIND_MEMORY, "memory", text_value, None, project,
                             event.occurred_at or event.recorded_at, text_position))
    progress: list[_Progress] = []
    room = size - len(memories)
    ranges = rows(f"SELECT first, last, count FROM {p}vec_pending ORDER BY first LIMIT ?", (room,)) if room > 0 else []
    for first, last, count in ranges:
        if room <= 0:
            break
        wanted = min(room, count)
        events = [e for e in store.read_all(first - 1, wanted, types=MESSAGE_TYPES) if e.position <= last]
        for event in events:
            found = extract(event, options)
            if found is not None and found.role in EMBED_ROLES:
                docs.append(_Doc(event.position, KIND_MESSAGE, found.role, found.text, found.session_id,
                                 found.project, found.timestamp or 0, event.position))
        # Fewer events than asked for: the rest of the range is gone (nothing left to embed).
        finished = len(events) >= count or len(events) < wanted
        progress.append(_Progress(first, count if finished else len(events),
                                  None if finished else events[-1].position + 1))
        room -= len(events)
    return docs, progress, [m[0] for m in memories]


def _write(tx, p: str, state: _State, docs: list[_Doc], vectors: list[list[float]], progress: list[_Progress],
           memories: list[str]) -> None:
    from projections.search_text import NameTables

    names = NameTables(tx, p, "vec_")
    index = state.index
    live = {r[0] for r in tx.execute(
        f"SELECT memory_id FROM {p}vec_memories WHERE pending AND memory_id IN ({','.join('?' * len(memories))})",
        memories)} if memories else set()
    for doc, vector in zip(docs, vectors):
        blob = quantize(vector)
        if not blob:
            continue
        if doc.kind == KIND_MEMORY:
            if not tx.execute(f"SELECT 1 FROM {p}vec_memories WHERE doc_id = ? AND pending", (doc.doc_id,)):
                continue  # forgotten since it was read
            session_no, project_no = None, names.project(doc.project)
        else:
            session_no, project_no = names.session(doc.session_id, doc.project)
        tx.execute(f"DELETE FROM {index} WHERE rowid = ?", (doc.doc_id,))
        tx.execute(
            f"INSERT INTO {index} (rowid, embedding, role, session_no, project_no, ts)"
            " VALUES (?, vec_int8(?), ?, ?, ?, ?)",
            (doc.doc_id, blob, doc.role, session_no or 0, project_no or 0, doc.ts),
        )
    # Keyed by where each range started when it was read: a range another process moved on
    # meanwhile is left alone (its vectors were written twice, to the same values).
    for step in progress:
        if step.next_first is None:
            tx.execute(f"DELETE FROM {p}vec_pending WHERE first = ?", (step.first,))
        else:
            tx.execute(f"UPDATE {p}vec_pending SET first = ?, count = count - ? WHERE first = ?",
                       (step.next_first, step.dequeued, step.first))
    if live:
        tx.executemany(f"UPDATE {p}vec_memories SET pending = 0 WHERE memory_id = ?", [(m,) for m in live])


# ---------------------------------------------------------------- queries


class VectorHit(msgspec.Struct, frozen=True, kw_only=True):
    """One nearest neighbour: score is the cosine similarity (higher is nearer)."""

    doc_id: int
    kind: int
    role: str
    session_id: str | None
    timestamp: int | None
    position: int
    score: float


def search_vectors(rows, query: str, embedder: Embedder, *, project: str | None = None, session: str | None = None,
                   roles: Sequence[str] | None = None, since: int | None = None, until: int | None = None,
                   limit: int = 20, prefix: str = "") -> list[VectorHit]:
    """The `limit` documents nearest to the query's embedding that pass the filters."""
    p = prefix
    state = _state(rows, p)
    if state is None or limit <= 0 or (embedder.name, embedder.dimension) != (state.embedder, state.dimension):
        return []
    blob = quantize(embedder.embed([query])[0])
    if not blob:
        return []
    where, params = "", []
    if session is not None:
        found = rows(f"SELECT session_no FROM {p}vec_sessions WHERE session_id = ?", (session,))
        if not found:
            return []
        where += " AND v.session_no = ?"
        params.append(found[0][0])
    if project is not None:
        found = [r[0] for r in rows(f"SELECT project_no FROM {p}vec_projects WHERE instr(lower(path), lower(?)) > 0",
                                    (project,))]
        if not found:
            return []
        where += f" AND v.project_no IN ({','.join('?' * len(found))})"
        params.extend(found)
    if roles is not None:
        if not roles:
            return []
        where += f" AND v.role IN ({','.join('?' * len(roles))})"
        params.extend(roles)
    if since is not None:
        where += " AND v.ts >= ?"
        params.append(since)
    if until is not None:
        where += " AND v.ts < ?"
        params.append(until)
    sql = (
        f"SELECT v.rowid, v.distance, v.role, s.session_id, v.ts, coalesce(m.text_position, v.rowid)"
        f" FROM {state.index} v LEFT JOIN {p}vec_sessions s ON s.session_no = v.session_no"
        f" LEFT JOIN {p}vec_memories m ON m.doc_id = v.rowid"
        f" WHERE v.embedding MATCH vec_int8(?) AND v.k = ?{where} ORDER BY v.distance"
    )
    return [VectorHit(doc_id=r[0], kind=KIND_MEMORY if r[2] == "memory" else KIND_MESSAGE, role=r[2],
                      session_id=r[3], timestamp=r[4], position=r[5], score=1.0 - r[1])
            for r in rows(sql, [blob, min(limit, 4096), *params])]
