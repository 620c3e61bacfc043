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
    """`[--db PATH] usage KIND [--since D] [--until D] [--timezone TZ] [--db PATH] --json`, as click
    parses it, or None for anything else (the full command line then accepts or refuses it)."""
    options: dict[str, str | None] = dict.fromkeys(_VALUED)
    as_json = False
    words: list[str] = []  # `usage`, then the kind
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        allowed = ("--db",) if not words else () if len(words) == 1 else _VALUED
        if arg == "--json" and len(words) == 2:
            as_json = True
            i += 1
        elif name in allowed and eq:
            options[name] = value
            i += 1
        elif name in allowed and i + 1 < len(argv):
            options[name] = argv[i + 1]
            i += 2
        elif arg.startswith("-") or len(words) == 2:
            return None
        else:
            words.append(arg)
            i += 1
    if not as_json or words[:1] != ["usage"] or len(words) != 2 or words[1] not in KINDS:
        return None
    if options["--db"] == "" or (options["--db"] is None and os.environ.get("EVENTSTORE_DB") == ""):
        return None  # the full command line says why an empty path is refused
    return words[1], options


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

