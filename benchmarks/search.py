"""Search benchmark: index build rate, query latency per mode, index size against the database.

Generates a synthetic transcript tree (benchmarks/gen_transcripts.py; kept in --work between
runs), ingests it, builds the `fulltext`, `memories` and `vectors` projections through the
runner, embeds the queue, then runs queries sampled from the indexed text (1 to 3 adjacent
words of random messages, and substrings of tool inputs) in each mode and reports p50/p95
latency, snippets included. Sizes come from SQLite's dbstat table.

    python benchmarks/search.py [--mb 500] [--queries 300] [--work DIR] [--json]

Targets: fts p95 < 20 ms, hybrid p95 < 100 ms on a 500 MB tree.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eventstore import Store  # noqa: E402
from eventstore.ingest import Ingester  # noqa: E402
from projections import fulltext, search_text  # noqa: E402
from projections.embedders import HashedLexicalEmbedder  # noqa: E402
from projections.fts_query import tokens  # noqa: E402
from projections.memories import MemoriesProjection  # noqa: E402
from projections.runner import Runner  # noqa: E402
from projections.search import reader, search  # noqa: E402
from projections.vectors import VectorsProjection, embed_pending, ensure_sqlite_vec, vector_count  # noqa: E402

TARGET_P95_MS = {"fts": 20.0, "hybrid": 100.0}


def tree(work: Path, mb: int, seed: int) -> tuple[Path, int]:
    """The generated tree for (mb, seed), made once; returns it and its size in bytes."""
    root = work / f"tree-{mb}mb-s{seed}"
    done = root / ".complete"
    if not done.exists():
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import gen_transcripts

        gen_transcripts.generate(root / "projects", mb * 1_000_000, seed, workers=2)
        done.write_text("ok")
    size = sum(p.stat().st_size for p in (root / "projects").rglob("*.jsonl"))
    return root / "projects", size


def sample_queries(store: Store, n: int, seed: int) -> list[str]:
    """Queries people type: 1-3 adjacent words from random messages, and substrings of tool inputs."""
    rng = random.Random(seed)
    rows = reader(store)("SELECT doc_id FROM fts_docs WHERE role != ? ORDER BY random() LIMIT ?", (fulltext.MEMORY_ROLE, n * 3))
    words, code = [], []
    for (position,) in rows:
        found = search_text.extract(store.get(position))
        if found is None:
            continue
        if found.code and len(code) < n // 5 and len(found.code) > 20:
            start = rng.randrange(0, len(found.code) - 12)
            piece = found.code[start:start + rng.randint(6, 12)].strip()
            if len(piece) >= 4 and "\n" not in piece:
                code.append(piece)
                continue
        toks = [t for t in tokens(found.text) if len(t[2]) > 2]
        if len(toks) >= 3 and len(words) < n - n // 5:
            length = rng.randint(1, 3)
            first = rng.randrange(len(toks) - length + 1)
            words.append(" ".join(t[2] for t in toks[first:first + length]))
    return words + code


LOG_TABLES = ("events", "blocks", "stream_index", "names", "streams", "clients", "dictionaries", "meta", "sources",
              "line_runs", "quarantine", "redacted_events", "migrations", "sqlite_sequence")
"""The tables of the log and of ingestion (eventstore/sql/); the rest belong to projections."""


def sizes(store: Store) -> dict[str, int]:
    """Bytes per part of the database: log, fulltext, vectors, memories, other."""
    parts = {"log": 0, "fulltext": 0, "vectors": 0, "memories": 0, "other": 0}
    for name, size in reader(store)("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
        if name.startswith("fts_"):
            parts["fulltext"] += size
        elif name.startswith("vec_"):
            parts["vectors"] += size
        elif name.startswith("memor"):
            parts["memories"] += size
        elif name in LOG_TABLES or name.startswith(tuple(f"sqlite_autoindex_{t}_" for t in LOG_TABLES)):
            parts["log"] += size
        else:
            parts["other"] += size
    return parts


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of some values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(args) -> dict:
    """Generate (or reuse) the tree, build the indexes, time the queries; the report as a dict."""
    work = Path(args.work or tempfile.mkdtemp(prefix="es-search-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    root, raw = tree(work, args.mb, args.seed)
    db = work / f"search-{args.mb}mb.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    embedder = HashedLexicalEmbedder()
    report: dict = {"tree_mb": round(raw / 1e6, 1), "embedder": embedder.name, "dimension": embedder.dimension}
    with Store(db) as store:
        started = time.perf_counter()
        ingest = Ingester(store).ingest([root])
        report["ingest_seconds"] = round(time.perf_counter() - started, 1)
        report["events"] = store.head()

        fts = fulltext.FulltextProjection()
        runner = Runner(store, [fts, MemoriesProjection(), VectorsProjection(embedder)])
        started = time.perf_counter()
        runner.catch_up(["fulltext"])
        seconds = time.perf_counter() - started
        docs = reader(store)("SELECT count(*) FROM fts_docs")[0][0]
        report["fts_build"] = {"seconds": round(seconds, 1), "events_per_second": round(report["events"] / seconds),
                               "raw_mb_per_second": round(raw / 1e6 / seconds, 1), "documents": docs}
        started = time.perf_counter()
        with store.transaction() as tx:
            fulltext.optimize(tx)
        report["fts_optimize_seconds"] = round(time.perf_counter() - started, 1)

        started = time.perf_counter()
        runner.catch_up(["vectors", "memories"])
        queued = time.perf_counter() - started
        started = time.perf_counter()
        embed_pending(store, embedder=embedder)
        seconds = time.perf_counter() - started
        vectors = vector_count(store)
        report["vector_build"] = {"enqueue_seconds": round(queued, 1), "embed_seconds": round(seconds, 1),
                                  "vectors": vectors, "vectors_per_second": round(vectors / seconds)}
        store.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        ensure_sqlite_vec(store)
        queries = sample_queries(store, args.queries, args.seed)
        latency: dict[str, dict] = {}
        for mode in ("fts", "vector", "hybrid"):
            for q in queries[:10]:  # warm the page cache
                search(store, q, mode=mode, embedder=embedder, embed_first=0, limit=args.limit)
            times, empty = [], 0
            for q in queries:
                started = time.perf_counter()
                hits = search(store, q, mode=mode, embedder=embedder, embed_first=0, limit=args.limit)
                times.append((time.perf_counter() - started) * 1000)
                empty += not hits
            latency[mode] = {"p50_ms": round(percentile(times, 50), 2), "p95_ms": round(percentile(times, 95), 2),
                             "max_ms": round(max(times), 1), "queries": len(times), "no_results": empty}
        report["latency"] = latency

        parts = sizes(store)
        total = sum(parts.values())
        report["size"] = {
            "database_mb": round(total / 1e6, 1),
            "database_share_of_raw": round(total / raw, 3),
            "parts_mb": {k: round(v / 1e6, 1) for k, v in parts.items()},
            "index_share_of_database": round((parts["fulltext"] + parts["vectors"]) / total, 3),
            "index_share_of_raw": round((parts["fulltext"] + parts["vectors"]) / raw, 3),
        }
        report["targets_met"] = {m: latency[m]["p95_ms"] < t for m, t in TARGET_P95_MS.items()}
        runner.close()
    report["ingest"] = {"files": ingest.files, "bytes": ingest.bytes}
    return report


def main() -> None:
    """Parse arguments, run, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500, help="Size of the generated tree in MB.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--work", help="Directory for the tree (reused between runs) and the database.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(args)
    if args.json:
        print(json.dumps(report))
        return
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
