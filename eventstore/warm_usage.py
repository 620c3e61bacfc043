"""Serve `eventstore usage <period> --json` from a current read model without importing click.

A usage report is what people and scripts run most, and start-up is most of its cost: click
alone takes longer to import than the query takes to run. So the console script first tries
this path. It understands only `[--db PATH] usage daily|weekly|monthly|session` with `--json`,
`--since`, `--until`, `--timezone` and `--db`; anything else (help, a bad value, human output,
a read model that is not built or behind the log) is left to the click command line, which
gives the same result or the proper error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

KINDS = ("daily", "weekly", "monthly", "session")
_VALUED = ("--since", "--until", "--timezone", "--db")


def serve(argv: list[str]) -> bool:
    """Print the report and return True, or return False for the full command line to handle argv."""
    if os.environ.get("EVENTSTORE_NO_FAST_PATH"):  # for tests comparing both paths
        return False
    parsed = _parse(argv)
    if parsed is None:
        return False
    kind, options = parsed
    from projections import usage_report

    since, until, zone = options["--since"], options["--until"], options["--timezone"]
    if any(day is not None and not usage_report.is_day(day) for day in (since, until)):
        return False
    try:
        usage_report.zone_offsets(zone)
    except ValueError:
        return False
    doc = usage_report.warm_report(_db_path(options["--db"]), kind, since, until, zone, schema_version())
    if doc is None:
        return False
    emit_report(doc)
    return True


def _parse(argv: list[str]) -> tuple[str, dict[str, str | None]] | None:
    options: dict[str, str | None] = dict.fromkeys(_VALUED)
    args = list(argv)
    as_json = False
    rest: list[str] = []
    i = 0
    while i < len(args):
        name, eq, value = args[i].partition("=")
        if args[i] == "--json":
            as_json = True
            i += 1
        elif name in _VALUED and eq:
            options[name] = value
            i += 1
        elif name in _VALUED and i + 1 < len(args):
            options[name] = args[i + 1]
            i += 2
        elif args[i].startswith("-"):
            return None
        else:
            rest.append(args[i])
            i += 1
    if not as_json or len(rest) != 2 or rest[0] != "usage" or rest[1] not in KINDS or options["--db"] == "":
        return None
    return rest[1], options


def schema_version() -> int:
    """The schema version this code writes (`storage.latest_schema_version`, without importing
    storage, a third of this path's start-up): how many migrations eventstore/sql holds."""
    return sum(1 for name in os.listdir(Path(__file__).parent / "sql") if name[:4].isdigit() and name.endswith(".sql"))


def _db_path(db: str | None) -> Path:
    if db:
        return Path(db).expanduser()
    from eventstore.paths import default_db_path

    return default_db_path()


def warn_unpriced(doc: dict) -> None:
    """Name the models that have no price on stderr."""
    unpriced = doc["totals"].get("unpricedModels")
    if unpriced:
        sys.stderr.write(f"warning: no price for {', '.join(unpriced)}: counted at $0 "
                         "(price them with a $EVENTSTORE_PRICING file)\n")


def emit_report(doc: dict) -> None:
    """Print a report as JSON on stdout, and unpriced models on stderr."""
    # The standard library's encoder: the document is small, and importing msgspec costs more
    # (about 15 ms, for typing_extensions) than encoding it with either.
    import json

    warn_unpriced(doc)
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()

