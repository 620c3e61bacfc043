"""Warm `eventstore usage daily --json` against `ccusage daily --json --offline`, same tree.

    python benchmarks/usage_report.py --mb 500 [--seed 0] [--runs 15] [--json]
    python benchmarks/usage_report.py --dir ~/.claude/projects

Generates a transcript tree (benchmarks/gen_transcripts.py) or takes one, ingests it into a
fresh store with the usage projection, then times both commands process start to exit, in
pairs whose order alternates, after warm-up runs (page cache, Python bytecode). Reports the
median of each, the ratio of the medians and the median of the per-pair ratios; the target
is eventstore at least 15x faster. ccusage 20.0.24 comes from tests/ccusage_oracle (npm),
sandboxed the same way: it sees only this tree. Both run with TZ=UTC, so days agree.

It then checks the numbers: `usage daily --json --timezone UTC` against ccusage's, every
day to the token. ccusage skips a line holding several JSON objects; the log keeps one event
per object and no longer knows they shared a line, so such lines (counted and shown) are the
one known source of difference.

`--breakdown` also times Python itself and the imports the command pays before it runs.
`--workdir DIR` keeps the tree and the database between runs (generation and ingestion of
500 MB take minutes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Run as a script, this directory comes first on sys.path and holds a projections.py: take it
# off so the `projections` package is the one imported.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
TARGET_RATIO = 15.0
TOKENS = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens", "totalTokens")


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


def prepare(workdir: Path, mb: float, seed: int, tree: Path | None) -> tuple[Path, Path, float | None]:
    """The tree and a store holding it with the usage projection current; (tree, db, ingest seconds)."""
    if tree is None:
        tree = workdir / f"tree-{mb:g}mb-seed{seed}" / "projects"
        stamp = tree.parent / "complete"
        if not stamp.exists():
            shutil.rmtree(tree.parent, ignore_errors=True)
            _module("gen_transcripts", HERE / "gen_transcripts.py").generate(
                tree, int(mb * 1_000_000), seed, workers=2)
            stamp.write_text("ok\n")
    db = workdir / f"{tree.parent.name}.db"
    seconds = None
    if not (workdir / f"{db.name}.complete").exists():
        from eventstore import Store
        from eventstore.ingest import Ingester
        from projections.runner import Runner
        from projections.usage import UsageProjection

        for old in workdir.glob(db.name + "*"):
            old.unlink()
        started = time.perf_counter()
        with Store(db) as store:
            runner = Runner(store, [UsageProjection()])
            runner.catch_up()  # built before ingesting, so it applies inline as events arrive
            Ingester(store).ingest([tree])
            runner.catch_up()
        seconds = time.perf_counter() - started
        (workdir / f"{db.name}.complete").write_text("ok\n")
    return tree, db, seconds


def _eventstore_command() -> list[str]:
    script = Path(sys.executable).with_name("eventstore")
    return [str(script)] if script.exists() else [sys.executable, "-m", "eventstore"]


def _environments(tree: Path, sandbox: Path) -> tuple[dict, dict]:
    """Environments for eventstore and ccusage: TZ=UTC; ccusage sees only the tree."""
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed: bytecode cached
    ours = {**base, "TZ": "UTC"}
    (sandbox / "projects").symlink_to(tree.resolve(), target_is_directory=True)
    theirs = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(sandbox),
              "CLAUDE_CONFIG_DIR": str(sandbox), "XDG_CONFIG_HOME": str(sandbox / "config"),
              "XDG_CACHE_HOME": str(sandbox / "cache"), "NO_COLOR": "1", "TZ": "UTC"}
    return ours, theirs


def _run(args: list[str], env: dict, cwd: Path | None = None) -> tuple[float, bytes]:
    started = time.perf_counter()
    proc = subprocess.run(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return seconds, proc.stdout


def compare_days(ours: dict, theirs: dict) -> dict:
    """Days equal to the token, and the days that differ with both sides' token counts."""
    mine = {row["period"]: row for row in ours["daily"]}
    other = {row.get("period", row.get("date")): row for row in theirs["daily"] if any(row[k] for k in TOKENS)}
    differ = []
    for period in sorted(set(mine) | set(other)):
        a, b = mine.get(period), other.get(period)
        if a is None or b is None or any(a[k] != b[k] for k in TOKENS):
            differ.append({"day": period, "eventstore": a and {k: a[k] for k in TOKENS},
                           "ccusage": b and {k: b[k] for k in TOKENS}})
    costs = [abs(mine[p]["totalCost"] - other[p]["totalCost"]) / other[p]["totalCost"]
             for p in mine if p in other and other[p]["totalCost"] and p not in {d["day"] for d in differ}]
    return {"days": len(set(mine) | set(other)), "days_equal": len(set(mine) | set(other)) - len(differ),
            "differ": differ, "max_relative_cost_difference_on_equal_days": max(costs, default=0.0),
            "totals": {"eventstore": {k: ours["totals"][k] for k in (*TOKENS, "totalCost")},
                       "ccusage": {k: theirs["totals"][k] for k in (*TOKENS, "totalCost")}}}


def multi_object_usage_lines(tree: Path) -> int:
    """Lines with `"usage":{` that hold more than one JSON object (ccusage skips them whole)."""
    decoder = json.JSONDecoder()
    count = 0
    for path in tree.rglob("*.jsonl"):
        for line in path.read_bytes().split(b"\n"):
            if b'"usage":{' not in line:
                continue
            text = line.decode("utf-8", "replace").strip()
            try:
                _, end = decoder.raw_decode(text)
            except ValueError:
                continue
            count += text[end:].strip() != ""
    return count


def breakdown(env: dict, runs: int) -> dict:
    """Median process times of Python alone and of the imports before the command runs."""
    steps = {
        "python -c pass": [sys.executable, "-c", ""],
        "python -S -c pass (no site, no editable-install finder)": [sys.executable, "-S", "-c", ""],
        "import click": [sys.executable, "-c", "import click"],
        "import msgspec": [sys.executable, "-c", "import msgspec"],
        "import eventstore (package __init__: Store, codec, schemas)": [sys.executable, "-c", "import eventstore"],
        "import eventstore.cli": [sys.executable, "-c", "import eventstore.cli"],
        "import eventstore.cli.usage + projections.usage_report + apsw": [
            sys.executable, "-c", "import eventstore.cli.usage, projections.usage_report, apsw"],
    }
    out = {}
    for label, args in steps.items():
        _run(args, env)
        out[label] = round(statistics.median(_run(args, env)[0] for _ in range(runs)) * 1000, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dir", type=Path, help="An existing transcript tree (a `projects/` directory).")
    source.add_argument("--mb", type=float, default=500.0, help="Generate a tree of about this many MB (default 500).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=15, help="Timed pairs (default 15).")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed runs of each first (default 2).")
    parser.add_argument("--workdir", type=Path, help="Keep the tree and the store here (default: a temporary dir).")
    parser.add_argument("--breakdown", action="store_true", help="Also time Python and the command's imports.")
    parser.add_argument("--json", action="store_true", help="Print one JSON document.")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "tests"))
    from ccusage_oracle import CCUSAGE_VERSION, OracleUnavailable, install_ccusage

    try:
        ccusage = install_ccusage()
    except OracleUnavailable as exc:
        parser.error(f"ccusage is not available: {exc}")
    temporary = None
    if args.workdir is None:
        temporary = tempfile.TemporaryDirectory(prefix="bench-usage-")
        workdir = Path(temporary.name)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        tree, db, ingest_seconds = prepare(workdir, args.mb, args.seed, args.dir)
        with tempfile.TemporaryDirectory(prefix="ccusage-sandbox-") as sandbox:
            ours_env, theirs_env = _environments(tree, Path(sandbox))
            ours_cmd = [*_eventstore_command(), "--db", str(db), "usage", "daily", "--json"]
            theirs_cmd = [str(ccusage), "claude", "daily", "--json", "--offline"]
            for _ in range(args.warmup):
                _run(ours_cmd, ours_env)
                _run(theirs_cmd, theirs_env, Path(sandbox))
            ours_times, theirs_times = [], []
            for i in range(args.runs):
                pair = [(ours_cmd, ours_env, None, ours_times), (theirs_cmd, theirs_env, Path(sandbox), theirs_times)]
                for cmd, env, cwd, times in (pair if i % 2 == 0 else pair[::-1]):
                    times.append(_run(cmd, env, cwd)[0])
            ours_doc = json.loads(_run([*ours_cmd, "--timezone", "UTC"], ours_env)[1])
            theirs_doc = json.loads(_run([*theirs_cmd, "--timezone", "UTC"], theirs_env, Path(sandbox))[1])
            steps = breakdown(ours_env, max(5, args.runs // 2)) if args.breakdown else None
    finally:
        if temporary is not None:
            temporary.cleanup()
    ours_median, theirs_median = statistics.median(ours_times), statistics.median(theirs_times)
    report = {
        "tree": str(args.dir or f"generated {args.mb:g} MB, seed {args.seed}"),
        "tree_bytes": sum(p.stat().st_size for p in tree.rglob("*.jsonl")) if tree.exists() else None,
        "ingest_seconds": None if ingest_seconds is None else round(ingest_seconds, 1),
        "ccusage": CCUSAGE_VERSION,
        "runs": args.runs,
        "eventstore_ms": {"median": round(ours_median * 1000, 1), "min": round(min(ours_times) * 1000, 1),
                          "all": [round(t * 1000, 1) for t in ours_times]},
        "ccusage_ms": {"median": round(theirs_median * 1000, 1), "min": round(min(theirs_times) * 1000, 1),
                       "all": [round(t * 1000, 1) for t in theirs_times]},
        "ratio_of_medians": round(theirs_median / ours_median, 2),
        "median_pair_ratio": round(statistics.median(t / o for o, t in zip(ours_times, theirs_times)), 2),
        "target_ratio": TARGET_RATIO,
        "totals_check": compare_days(ours_doc, theirs_doc),
        "multi_object_usage_lines": multi_object_usage_lines(tree) if tree.exists() else None,
        "breakdown_ms": steps,
    }
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
        return 0
    _print(report)
    return 0


def _print(report: dict) -> None:
    print(f"{report['tree']} ({(report['tree_bytes'] or 0) / 1e6:.0f} MB)"
          + (f", ingested in {report['ingest_seconds']} s" if report["ingest_seconds"] is not None else ""))
    print(f"eventstore usage daily --json          median {report['eventstore_ms']['median']:7.1f} ms"
          f"  (min {report['eventstore_ms']['min']:.1f})")
    print(f"ccusage {report['ccusage']} daily --json --offline  median {report['ccusage_ms']['median']:7.1f} ms"
          f"  (min {report['ccusage_ms']['min']:.1f})")
    verdict = "meets" if report["ratio_of_medians"] >= report["target_ratio"] else "misses"
    print(f"ratio of medians {report['ratio_of_medians']:.1f}x, median of paired ratios "
          f"{report['median_pair_ratio']:.1f}x over {report['runs']} pairs: {verdict} the "
          f"{report['target_ratio']:g}x target")
    check = report["totals_check"]
    print(f"totals (--timezone UTC): {check['days_equal']}/{check['days']} days equal to the token; "
          f"max relative cost difference on those {check['max_relative_cost_difference_on_equal_days']:.2g}")
    for day in check["differ"]:
        print(f"  {day['day']}: eventstore {day['eventstore']}  ccusage {day['ccusage']}")
    if report["multi_object_usage_lines"]:
        print(f"  lines with usage holding several JSON objects (ccusage skips them): "
              f"{report['multi_object_usage_lines']}")
    if report["breakdown_ms"]:
        print("start-up breakdown (median ms, process start to exit):")
        for label, ms in report["breakdown_ms"].items():
            print(f"  {ms:7.1f}  {label}")


if __name__ == "__main__":
    sys.exit(main())
