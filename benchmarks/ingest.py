"""Ingestion benchmark: throughput against the storage ceiling, re-ingest, tail latency, RSS, size.

On one generated tree (benchmarks/gen_transcripts.py, cached under .cache/bench/), in one run:

- ceiling: every line inserted as a blob keyed by its hash (unique index), 10,000 lines a
  transaction, nothing else;
- the log alone: `Ingester.ingest` into a fresh store, with and without compression, each in
  its own process so its peak RSS is its own;
- the whole `eventstore ingest` command (log and every projection), then the database size
  against the raw transcript bytes (WAL checkpointed);
- re-ingest of the unchanged tree (`eventstore ingest`, process start to exit);
- tail latency: append a line to a transcript, time until it is readable through the Store,
  over 200 appends (p50/p95).

    python benchmarks/ingest.py [--mb 500] [--seed 0] [--json] [--skip-tail]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from hashlib import blake2b
from pathlib import Path

import apsw

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Run as a script, this directory comes first on sys.path, and its projections.py would shadow
# the projections package.
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

LOG_ONLY = """
import json, sys, time
from pathlib import Path
from eventstore import Store
from eventstore.ingest import Ingester
store = Store(sys.argv[1], compress=sys.argv[3] == "1")
started = time.perf_counter()
report = Ingester(store).ingest([Path(sys.argv[2])])
store.close()
print(json.dumps({"seconds": time.perf_counter() - started, "lines": report.lines, "bytes": report.bytes,
                  "events": report.events_appended}))
"""


def cached_tree(mb: int, seed: int) -> Path:
    """The generated tree for (size, seed), made once and reused (generation is deterministic)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_transcripts", HERE / "gen_transcripts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_transcripts"] = module  # its worker processes find it by name
    spec.loader.exec_module(module)
    generate = module.generate

    tree = REPO / ".cache" / "bench" / f"tree-{mb}mb-seed{seed}"
    done = tree / ".complete"
    if not done.exists():
        generate(tree, mb * 1024 * 1024, seed=seed, workers=2)
        done.write_text("ok\n")
    return tree


def tree_bytes(tree: Path) -> tuple[int, int]:
    """(number of .jsonl files, total bytes) of a tree."""
    files = list(tree.rglob("*.jsonl"))
    return len(files), sum(f.stat().st_size for f in files)


def run_child(args: list[str]) -> tuple[str, float, int]:
    """Run a process; return (stdout, wall seconds, peak RSS in bytes) for that process alone."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args[:4])}... failed: {err.decode()[-2000:]}")
    return out.decode(), wall, usage.ru_maxrss * 1024


def ceiling(tree: Path, db: Path) -> dict:
    """Every line as a blob keyed by its hash, unique index, 10,000 lines a transaction."""
    from eventstore.storage import SETTINGS

    conn = apsw.Connection(str(db))
    for setting in SETTINGS:  # the store's page size, WAL, checkpoints, sync and cache settings
        setting(conn)
    conn.execute("CREATE TABLE lines (hash BLOB NOT NULL UNIQUE, line BLOB NOT NULL)")
    insert = "INSERT OR IGNORE INTO lines (hash, line) VALUES (?, ?)"
    started = time.perf_counter()
    rows: list[tuple[bytes, bytes]] = []
    total = lines = 0
    for path in sorted(tree.rglob("*.jsonl")):
        data = path.read_bytes()
        total += len(data)
        for line in data.split(b"\n"):
            if line:
                rows.append((blake2b(line, digest_size=16).digest(), line))
                lines += 1
                if len(rows) == 10_000:
                    conn.execute("BEGIN")
                    conn.executemany(insert, rows)
                    conn.execute("COMMIT")
                    rows.clear()
    conn.execute("BEGIN")
    conn.executemany(insert, rows)
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return {"seconds": seconds, "mb_per_s": total / seconds / 1e6, "lines_per_s": lines / seconds}


def log_only(tree: Path, db: Path, compress: bool) -> dict:
    """`Ingester.ingest` into a fresh store in its own process."""
    out, wall, rss = run_child([sys.executable, "-c", LOG_ONLY, str(db), str(tree), "1" if compress else "0"])
    result = json.loads(out)
    seconds = result["seconds"]
    return {"seconds": seconds, "mb_per_s": result["bytes"] / seconds / 1e6,
            "lines_per_s": result["lines"] / seconds, "events": result["events"], "peak_rss_mb": rss / 2**20,
            "process_seconds": wall}


def cli(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "eventstore", "--db", str(db), *args]


def database_size(db: Path) -> int:
    """Bytes of the database file after a TRUNCATE checkpoint (so the WAL holds nothing)."""
    conn = apsw.Connection(str(db))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    conn.close()
    wal = Path(f"{db}-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def tail_latency(tree: Path, db: Path, appends: int = 200) -> dict:
    """Append lines to transcripts while `eventstore tail` runs; time until each is readable."""
    from eventstore import Store

    scratch = tree.parent / (tree.name + "-tail")
    scratch.mkdir(exist_ok=True)
    target_dir = scratch / "-bench-tail"
    target_dir.mkdir(exist_ok=True)
    files = [target_dir / f"tail-{i}.jsonl" for i in range(4)]
    for f in files:
        f.write_bytes(b"")
    proc = subprocess.Popen(cli(db, "tail", str(scratch)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rng = random.Random(1)
    latencies = []
    try:
        with Store(db) as store:
            deadline = time.time() + 60
            while "watching" not in (proc.stdout.readline() or "") and time.time() < deadline:
                pass
            time.sleep(0.5)
            for i in range(appends):
                head = store.head()
                line = json.dumps({"type": "user", "sessionId": "tail-bench", "uuid": f"t{i}-{rng.random()}",
                                   "timestamp": "2026-06-01T00:00:00.000Z", "message": {"content": "x" * 500}})
                started = time.perf_counter()
                with open(rng.choice(files), "ab") as out:
                    out.write(line.encode() + b"\n")
                for _ in store.subscribe(after=head, idle_seconds=10):
                    break
                latencies.append(time.perf_counter() - started)
                time.sleep(rng.uniform(0.01, 0.05))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    latencies.sort()
    return {"appends": len(latencies), "p50_ms": statistics.median(latencies) * 1000,
            "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1000}


def run(mb: int, seed: int, skip_tail: bool) -> dict:
    tree = cached_tree(mb, seed)
    files, raw = tree_bytes(tree)
    report: dict = {"tree": {"mb": mb, "seed": seed, "files": files, "bytes": raw}}
    with tempfile.TemporaryDirectory(dir=REPO / ".cache") as tmp:
        work = Path(tmp)
        report["ceiling"] = ceiling(tree, work / "ceiling.db")
        report["log_compressed"] = log_only(tree, work / "log.db", compress=True)
        report["log_uncompressed"] = log_only(tree, work / "raw.db", compress=False)
        report["log_compressed_size_ratio"] = database_size(work / "log.db") / raw
        full_db = work / "full.db"
        out, wall, rss = run_child(cli(full_db, "ingest", str(tree), "--json"))
        report["ingest_command"] = {"seconds": wall, "peak_rss_mb": rss / 2**20, "mb_per_s": raw / wall / 1e6,
                                    "summary": json.loads(out.splitlines()[-1])}
        report["database_size_ratio"] = database_size(full_db) / raw
        _, again, _ = run_child(cli(full_db, "ingest", str(tree), "--json"))
        report["reingest_seconds"] = again
        if not skip_tail:
            report["tail"] = tail_latency(tree, full_db)
    report["log_vs_ceiling"] = report["log_compressed"]["mb_per_s"] / report["ceiling"]["mb_per_s"]
    report["compressed_vs_uncompressed"] = (report["log_compressed"]["mb_per_s"]
                                            / report["log_uncompressed"]["mb_per_s"])
    return report


def print_table(r: dict) -> None:
    t = r["tree"]
    print(f"tree: {t['files']} files, {t['bytes'] / 1e6:.0f} MB (generated, {t['mb']} MB target, seed {t['seed']})")
    rows = [
        ("storage ceiling (hash-keyed blobs)", f"{r['ceiling']['mb_per_s']:.1f} MB/s",
         f"{r['ceiling']['lines_per_s']:,.0f} lines/s", "1.00"),
        ("log ingest, compressed", f"{r['log_compressed']['mb_per_s']:.1f} MB/s",
         f"{r['log_compressed']['lines_per_s']:,.0f} lines/s", f"{r['log_vs_ceiling']:.2f}"),
        ("log ingest, uncompressed", f"{r['log_uncompressed']['mb_per_s']:.1f} MB/s",
         f"{r['log_uncompressed']['lines_per_s']:,.0f} lines/s",
         f"{r['log_uncompressed']['mb_per_s'] / r['ceiling']['mb_per_s']:.2f}"),
        ("`eventstore ingest` (log + projections)", f"{r['ingest_command']['mb_per_s']:.1f} MB/s",
         f"{r['ingest_command']['seconds']:.1f} s", ""),
    ]
    print(f"| {'what':<40} | {'throughput':>12} | {'rate':>18} | {'vs ceiling':>10} |")
    print(f"|{'-' * 42}|{'-' * 14}|{'-' * 20}|{'-' * 12}|")
    for row in rows:
        print(f"| {row[0]:<40} | {row[1]:>12} | {row[2]:>18} | {row[3]:>10} |")
    print(f"compressed / uncompressed throughput: {r['compressed_vs_uncompressed']:.2f}")
    print(f"peak RSS: log ingest {r['log_compressed']['peak_rss_mb']:.0f} MB, "
          f"`eventstore ingest` {r['ingest_command']['peak_rss_mb']:.0f} MB")
    print(f"database / raw bytes: log only {r['log_compressed_size_ratio']:.3f}, "
          f"with every projection {r['database_size_ratio']:.3f}")
    print(f"re-ingest of the unchanged tree: {r['reingest_seconds']:.2f} s (process start to exit)")
    if "tail" in r:
        print(f"tail latency over {r['tail']['appends']} appends: p50 {r['tail']['p50_ms']:.1f} ms, "
              f"p95 {r['tail']['p95_ms']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-tail", action="store_true")
    args = parser.parse_args()
    (REPO / ".cache").mkdir(exist_ok=True)
    report = run(args.mb, args.seed, args.skip_tail)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
