"""The usage command: token usage and cost per day, week, month or session, shaped like ccusage.

Start-up is the cost of a report, so the common case does the least possible: open the
database with apsw, check in one read transaction that the usage read model is built by
this version and at the head of the log, and read its small aggregate table. Only when it
is not (first use, new events not yet applied, a price or rule change) does it open the
Store, find the projections through their entry points and catch up. rich is imported for
human output only, msgspec not at all.
"""

from __future__ import annotations


import click

from eventstore.cli.common import db_option, db_path, json_option, print_for_people
from eventstore.warm_usage import emit_report, schema_version, warn_unpriced

_USAGE = "usage"


def _report_options(fn):
    fn = db_option(fn)
    fn = json_option(fn)
    fn = click.option("--timezone", "zone", metavar="TZ",
                      help="IANA time zone for calendar days (default: the system zone).")(fn)
    fn = click.option("--until", metavar="YYYYMMDD", help="Up to this local day (inclusive).")(fn)
    return click.option("--since", metavar="YYYYMMDD", help="From this local day (inclusive).")(fn)


@click.group()
def usage() -> None:
    """Token usage and cost, deduplicated like ccusage (its JSON shape, with --json)."""


def _command(kind: str, summary: str):
    @usage.command(kind, help=summary)
    @_report_options
    def command(since: str | None, until: str | None, zone: str | None, as_json: bool, db: str | None) -> None:
        run(kind, since=since, until=until, zone=zone, as_json=as_json, db=db)

    return command


daily = _command("daily", "Usage per calendar day.")
weekly = _command("weekly", "Usage per week (weeks start on Sunday).")
monthly = _command("monthly", "Usage per calendar month.")
session = _command("session", "Usage per Claude Code session.")


def _day(text: str | None, option: str) -> str | None:
    from projections.usage_report import is_day

    if text is not None and not is_day(text):
        raise click.BadParameter(f"{text!r} is not a date YYYYMMDD", param_hint=option)
    return text


def run(kind: str, *, since: str | None, until: str | None, zone: str | None, as_json: bool, db: str | None) -> None:
    """Build one report and print it."""
    from projections import usage_report

    since, until = _day(since, "--since"), _day(until, "--until")
    try:
        usage_report.zone_offsets(zone)  # validate before any work
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--timezone") from None

    def build(conn) -> dict:
        return usage_report.build_report(conn, kind, since, until, zone)

    doc = usage_report.warm_report(db_path(db), kind, since, until, zone, schema_version())
    if doc is None:
        doc = _caught_up(db, build)
    if as_json:
        emit_report(doc)
    else:
        warn_unpriced(doc)
        _print_table(kind, doc)


def _caught_up(db: str | None, build) -> dict:
    """Open the store, bring the usage projection to the head of the log, then report."""
    from eventstore.cli.common import open_store
    from eventstore.cli.projections import catch_up, runner_for

    with open_store(db) as store:
        catch_up(store, [_USAGE], runner_for(store, (_USAGE,)))
        with store.db.read() as conn:
            return build(conn)


def _print_table(kind: str, doc: dict) -> None:
    from rich.table import Table

    rows = doc[kind]
    if not rows:
        click.echo("no usage")
        return
    first = {"daily": "Date", "weekly": "Week", "monthly": "Month", "session": "Session"}[kind]
    table = Table(header_style="bold", show_footer=True)
    totals = doc["totals"]
    table.add_column(first, footer="Total", no_wrap=True)
    table.add_column("Models", overflow="fold", min_width=12)
    for title, key in (("Input", "inputTokens"), ("Output", "outputTokens"), ("Cache create", "cacheCreationTokens"),
                       ("Cache read", "cacheReadTokens"), ("Total tokens", "totalTokens")):
        table.add_column(title, justify="right", footer=f"{totals[key]:,}")
    table.add_column("Cost (USD)", justify="right", footer=f"${totals['totalCost']:,.2f}")
    for row in rows:
        table.add_row(
            row["period"], "\n".join(_short_model(m) for m in row["modelsUsed"]), f"{row['inputTokens']:,}", f"{row['outputTokens']:,}",
            f"{row['cacheCreationTokens']:,}", f"{row['cacheReadTokens']:,}", f"{row['totalTokens']:,}",
            f"${row['totalCost']:,.2f}",
        )
    print_for_people(table)


def _short_model(name: str) -> str:
    """A model name for a narrow column: `claude-opus-4-20250514-fast` -> `opus-4-fast`."""
    parts = name.removeprefix("claude-").split("-")
    return "-".join(p for p in parts if not (len(p) == 8 and p.isdigit())) or name
