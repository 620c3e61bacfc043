"""Replay rate of the projections: events per second, each alone and the default set together.

    python benchmarks/projections.py --mb 100 [--seed 1] [--projection NAME ...] [--json]
    python benchmarks/projections.py --dir ~/.claude/projects

Builds a store from a transcript tree (a generated one with ``--mb``, via
benchmarks/gen_transcripts.py, or an existing one with ``--dir``), then times
`Runner.rebuild` for each projection and for the chosen set together. Rates are log
events per second (every event in the log, whatever the projection reads). Next to each
replay it also times reading the same events with the same type and payload filters, the
same way (in the same helper processes, when the rebuild has them), applying nothing: the
floor set by reading and payload decompression, so the report shows how much of a replay is
the projections' own work. The last column says how many helper processes read the log.

The target for sessions, usage and tasks together is >= 100,000 events/s.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import msgspec

HERE = Path(__file__).resolve().parent
# Run as a script, this file's directory comes first on sys.path, and this file is named like
# the `projections` package: take the directory off so the package is the one imported.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
DEFAULT_SET = ("sessions", "usage", "tasks")
TARGET = 100_000


class Rate(msgspec.Struct):
    """One measured replay."""

    projections: list[str]
    events: int
    seconds: float
    events_per_second: float
    read_only_events_per_second: float
    helpers: int
    """Helper processes the rebuild read the log with (0: it read it alone)."""


def _generator():
    spec = importlib.util.spec_from_file_location("gen_transcripts", HERE / "gen_transcripts.py")
    if spec is None or not (HERE / "gen_transcripts.py").exists():
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_transcripts", module)
    spec.loader.exec_module(module)
    return module


def build_store(db: Path, tree: Path):
    """Ingest a transcript tree into a fresh store."""
    from eventstore import Store
    from eventstore.ingest import Ingester

    store = Store(db)
    Ingester(store).ingest([tree])
    return store


def read_only_seconds(runner, names: list[str]) -> float:
    """Time reading what a replay of these projections reads, the way it reads it (in helper
    processes when the replay uses them, range by range), applying nothing."""
    from projections.facts import FactsPool
    from projections.runner import _wanted

    chosen = [runner.projections[n] for n in names]
    started = time.perf_counter()
    if runner.helpers_for(names):
        head = runner.store.head()
        step = max(1, runner.rebuild_batch_size // 4)
        types, payloads = _wanted(chosen)
        with FactsPool(runner.store.path, [], types=types, payload_types=payloads, helpers=runner.helpers) as pool:
            for _ in pool.facts([(start, min(start + step, head)) for start in range(0, head, step)]):
                pass
        return time.perf_counter() - started
    reader = runner._reader(chosen)
    after = 0
    try:
        while events := reader.read(after):
            after = events[-1].position
    finally:
        reader.close()
    return time.perf_counter() - started


def measure(store, names: list[str], repeat: int) -> Rate:
    """The best of `repeat` rebuilds of these projections (the machine's noise only slows things down)."""
    from projections.runner import Runner

    runner = Runner(store, [p for p in _installed() if p.name in names])
    try:
        runner.catch_up()
        head = store.head()
        best = min(_timed(runner.rebuild) for _ in range(repeat))
        floor = min(read_only_seconds(runner, names) for _ in range(repeat))
        helpers = runner.helpers_for(names)
    finally:
        runner.close()
    return Rate(projections=names, events=head, seconds=round(best, 3), helpers=helpers,
                events_per_second=round(head / best), read_only_events_per_second=round(head / floor))


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _installed():
    from projections.runner import discover

    return discover()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dir", type=Path, help="An existing transcript tree to ingest.")
    source.add_argument("--mb", type=float, default=50.0, help="Generate a tree of about this many MB (default 50).")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--projection", action="append", dest="names", metavar="NAME",
                        help=f"Projections of the combined run (default: {', '.join(DEFAULT_SET)}, those installed).")
    parser.add_argument("--repeat", type=int, default=3, help="Rebuilds per measurement; the best counts.")
    parser.add_argument("--json", action="store_true", help="Print one JSON document.")
    args = parser.parse_args(argv)

    installed = [p.name for p in _installed()]
    chosen = [n for n in (args.names or DEFAULT_SET) if n in installed]
    missing = [n for n in (args.names or DEFAULT_SET) if n not in installed]
    with tempfile.TemporaryDirectory(prefix="bench-projections-") as tmp:
        tree = args.dir
        if tree is None:
            generator = _generator()
            if generator is None:
                parser.error("benchmarks/gen_transcripts.py is missing: give --dir")
            tree = Path(tmp) / "projects"
            generator.generate(tree, int(args.mb * 1_000_000), args.seed)
        started = time.perf_counter()
        store = build_store(Path(tmp) / "events.db", tree)
        ingest_seconds = time.perf_counter() - started
        try:
            rates = [measure(store, [name], args.repeat) for name in chosen]
            if len(chosen) > 1:
                rates.append(measure(store, chosen, args.repeat))
        finally:
            store.close()
    report = {"tree": str(args.dir or f"generated {args.mb} MB, seed {args.seed}"), "ingest_seconds": round(ingest_seconds, 2),
              "missing": missing, "target_events_per_second": TARGET, "rates": rates}
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(report) + b"\n")
        return 0
    print(f"{report['tree']}: {rates[0].events if rates else 0} events, ingested in {ingest_seconds:.1f} s")
    if missing:
        print(f"not installed (left out): {', '.join(missing)}")
    print(f"{'projections':<28} {'replay ev/s':>12} {'read-only ev/s':>15} {'seconds':>8} {'helpers':>8}")
    for rate in rates:
        print(f"{'+'.join(rate.projections):<28} {rate.events_per_second:>12,} {rate.read_only_events_per_second:>15,} "
              f"{rate.seconds:>8.3f} {rate.helpers:>8}")
    if len(rates) > 1 or len(chosen) == 1:
        combined = rates[-1]
        verdict = "meets" if combined.events_per_second >= TARGET else "misses"
        print(f"combined {'+'.join(combined.projections)}: {verdict} the {TARGET:,} events/s target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
