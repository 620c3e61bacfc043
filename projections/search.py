"""Search: full-text (bm25), vector (nearest neighbours) and hybrid (reciprocal rank fusion).

The library call behind `eventstore search`. It queries the `fulltext` and `vectors` read
models, then reads each hit's event back from the log to build its snippet, so the indexes
never hold the text. Scores: fts = -bm25 (higher is better), vector = cosine similarity,
hybrid = the fused reciprocal-rank score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import msgspec

from eventstore.errors import EventStoreError
from eventstore.feed import iso
from projections import fulltext, vectors
from projections.embedders import Embedder, default_embedder
from projections.fts_query import snippet
from projections.fulltext import Filters, FtsHit
from projections.search_text import TextOptions, extract
from schemas import memories as mem

__all__ = ["Filters", "Hit", "MODES", "QuerySyntaxError", "RRF_K", "reader", "rrf", "search"]

Mode = Literal["fts", "vector", "hybrid"]
MODES: tuple[str, ...] = ("fts", "vector", "hybrid")
RRF_K = 60
"""The k of reciprocal rank fusion: score = sum over lists of 1 / (k + rank)."""
EMBED_BEFORE_QUERY = 2_000
"""Vector and hybrid searches first embed up to this many queued items."""
SUBSTRING_CANDIDATES = 100
"""At most this many substring candidates are read back from the log and checked."""


_CODE_LIKE = re.compile(r"[/\\._:<>=(){}\[\]$#@~-]")
"""A query with one of these characters may be code or a path: also look for it as a substring."""


class QuerySyntaxError(EventStoreError):
    """A query given as FTS5 syntax (--syntax) is not valid FTS5."""


class Hit(msgspec.Struct, frozen=True, kw_only=True):
    """One search result, as `search --json` prints it."""

    kind: str
    """"message" or "memory"."""
    session_id: str | None
    event_position: int
    role: str
    timestamp: str | None
    score: float
    snippet: str


def reader(store):
    """A function running one read query on the store: rows(sql, params) -> list of tuples."""

    def rows(sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with store.db.read() as conn:
            return conn.execute(sql, params).fetchall()

    return rows


def rrf(*rankings: Sequence[int], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion of ranked lists of ids: id -> fused score."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (k + rank)
    return fused


def search(store, query: str, *, mode: Mode = "fts", filters: Filters = Filters(), limit: int = 20,
           syntax: bool = False, embedder: Embedder | None = None, embed_first: int = EMBED_BEFORE_QUERY,
           text: TextOptions | None = None) -> list[Hit]:
    """Search messages and memories; the projections must exist (catch them up first)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    options = text or TextOptions()
    if limit <= 0:
        return []
    if mode != "fts":
        embedder = embedder or default_embedder()
        vectors.ensure_sqlite_vec(store)
        if embed_first:
            try:
                vectors.embed_pending(store, embed_first, embedder=embedder, text=options)
            except vectors.EmbedderMismatch:
                pass  # a rebuild for the new embedder is under way elsewhere: no vector results meanwhile
    rows = reader(store)
    with store.db.read():  # one snapshot for every query below
        if mode == "fts":
            found = _fts(store, rows, query, filters, limit, syntax, options)
            hits = [(h, h.score) for h in found]
        elif mode == "vector":
            hits = [(h, h.score) for h in _vector(rows, query, filters, limit, embedder)]
        else:
            depth = max(limit * 3, 50)
            words = _fts(store, rows, query, filters, depth, syntax, options)
            near = _vector(rows, query, filters, depth, embedder)
            by_id = {h.doc_id: h for h in near}
            by_id.update({h.doc_id: h for h in words})
            fused = rrf([h.doc_id for h in words], [h.doc_id for h in near])
            order = sorted(fused, key=lambda d: (-fused[d], -by_id[d].position))[:limit]
            hits = [(by_id[d], fused[d]) for d in order]
        return [_hit(store, rows, h, score, query, syntax, options) for h, score in hits]


def _fts(store, rows, query: str, filters: Filters, limit: int, syntax: bool, options: TextOptions) -> list[FtsHit]:
    import apsw

    try:
        hits = fulltext.search_words(rows, query, filters, limit, syntax=syntax)
    except apsw.SQLError as exc:
        if syntax:  # the SQL around the MATCH is fixed: an error here is the query's
            raise QuerySyntaxError(f"not a valid FTS5 query ({exc}); leave out --syntax to search for the text as typed") from None
        raise
    if len(hits) >= limit or len(query.strip()) < 3 or (hits and not _CODE_LIKE.search(query)):
        return hits  # substrings are for code and paths, or for words the word index does not know
    seen = {h.doc_id for h in hits}
    needle = query.strip().casefold()
    for candidate in fulltext.search_code(rows, query, filters, SUBSTRING_CANDIDATES):
        if candidate.doc_id in seen:
            continue
        event = store.get(candidate.position)
        found = extract(event, options) if event is not None else None
        if found is not None and needle in found.code.casefold():
            hits.append(candidate)
            seen.add(candidate.doc_id)
            if len(hits) >= limit:
                break
    return hits


def _vector(rows, query: str, filters: Filters, limit: int, embedder: Embedder) -> list[vectors.VectorHit]:
    return vectors.search_vectors(
        rows, query, embedder, project=filters.project, session=filters.session, roles=filters.roles,
        since=filters.since, until=filters.until, limit=limit,
    )


def _hit(store, rows, hit, score: float, query: str, syntax: bool, options: TextOptions) -> Hit:
    memory = hit.kind == fulltext.KIND_MEMORY
    substring = getattr(hit, "substring", False)
    body = ""
    event = store.get(hit.position)
    if event is not None and memory and event.type in mem.TYPES:
        payload = mem.decode_payload(event.type, event.data)
        text_value = getattr(payload, "text", msgspec.UNSET)
        body = text_value if isinstance(text_value, str) else fulltext.memory_text(rows, hit.doc_id) or ""
    elif event is not None:
        found = extract(event, options)
        if found is not None:
            body = found.code if substring and found.code else found.text
    return Hit(
        kind="memory" if memory else "message", session_id=hit.session_id, event_position=hit.position,
        role=hit.role, timestamp=iso(hit.timestamp), score=round(score, 6),
        snippet=snippet(body, query, syntax=syntax, substring=query if substring else None),
    )
