"""`eventstore bench`: a thin door to the benchmarks in the source tree's benchmarks/ directory.

The measuring code lives in benchmarks/ (one script per benchmark, runnable on its own); this
module finds that directory beside the installed package (an editable install or a checkout)
and calls it, so the command and the script measure exactly the same thing.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from eventstore.errors import EventStoreError

DEFAULT_SYNTHETIC_MB = 100


class BenchUnavailable(EventStoreError):
    """The benchmarks are not beside this installation (installed from a wheel, not a checkout)."""


def benchmarks_dir() -> Path:
    """The benchmarks/ directory of the source tree this package runs from."""
    import eventstore

    directory = Path(eventstore.__file__).resolve().parent.parent / "benchmarks"
    if not directory.is_dir():
        raise BenchUnavailable(f"no benchmarks/ directory beside {Path(eventstore.__file__).parent}: the benchmarks "
                               "run from a source checkout (pip install -e .)")
    return directory


def load(name: str) -> ModuleType:
    """Import benchmarks/<name>.py (it is not an installed package)."""
    directory = benchmarks_dir()
    path = directory / f"{name}.py"
    if not path.is_file():
        raise BenchUnavailable(f"{path} is missing from this checkout")
    # Not added to sys.path here: benchmarks/projections.py would shadow the projections package.
    module_name = f"eventstore_benchmarks_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def run_ingest(*, corpus: Path | None = None, synthetic_mb: int | None = None, seed: int = 0,
               skip_tail: bool = False) -> dict[str, Any]:
    """Run benchmarks/ingest.py on a corpus directory or a generated tree; return its figures."""
    module = load("ingest")
    if corpus is None:
        mb = synthetic_mb or DEFAULT_SYNTHETIC_MB
        tree = module.cached_tree(mb, seed)
        source = {"synthetic_mb": mb, "seed": seed}
    else:
        tree = corpus.resolve()
        source = {"corpus": str(tree)}
    measure = getattr(module, "run_ingest_benchmark", None)
    with tempfile.TemporaryDirectory(prefix="eventstore-bench-") as work:
        if measure is not None:
            options = {"skip_tail": skip_tail} if "skip_tail" in inspect.signature(measure).parameters else {}
            result = measure(tree, Path(work), **options)
        else:
            result = _measure_with_parts(module, tree, Path(work), skip_tail)
    result.setdefault("tree", {})
    result["tree"].update(source)
    return result


def _measure_with_parts(module: ModuleType, tree: Path, work: Path, skip_tail: bool) -> dict[str, Any]:
    """The figures of benchmarks/ingest.py's `run`, on a given tree, from the script's own measuring functions."""
    files, raw = module.tree_bytes(tree)
    report: dict[str, Any] = {"tree": {"mb": round(raw / 2**20), "seed": None, "files": files, "bytes": raw}}
    report["ceiling"] = module.ceiling(tree, work / "ceiling.db")
    report["log_compressed"] = module.log_only(tree, work / "log.db", compress=True)
    report["log_uncompressed"] = module.log_only(tree, work / "raw.db", compress=False)
    report["log_compressed_size_ratio"] = module.database_size(work / "log.db") / raw
    full_db = work / "full.db"
    out, wall, rss = module.run_child(module.cli(full_db, "ingest", str(tree), "--json"))
    report["ingest_command"] = {"seconds": wall, "peak_rss_mb": rss / 2**20, "mb_per_s": raw / wall / 1e6,
                                "summary": json.loads(out.splitlines()[-1])}
    report["database_size_ratio"] = module.database_size(full_db) / raw
    _, again, _ = module.run_child(module.cli(full_db, "ingest", str(tree), "--json"))
    report["reingest_seconds"] = again
    if not skip_tail:
        copy = work / "tail-tree"  # tail_latency writes beside the tree it is given: never beside a user's corpus
        copy.mkdir()
        report["tail"] = module.tail_latency(copy / "projects", full_db)
    report["log_vs_ceiling"] = report["log_compressed"]["mb_per_s"] / report["ceiling"]["mb_per_s"]
    report["compressed_vs_uncompressed"] = (report["log_compressed"]["mb_per_s"]
                                            / report["log_uncompressed"]["mb_per_s"])
    return report


def print_ingest(result: dict[str, Any]) -> None:
    """The figures for people: the benchmark's own table when it has one, else its JSON."""
    module = load("ingest")
    printer = getattr(module, "print_table", None)
    if printer is not None:
        try:
            printer(result)
            return
        except (KeyError, TypeError):
            pass
    import json

    print(json.dumps(result, indent=2))
