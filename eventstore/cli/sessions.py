"""The sessions command: Claude Code sessions, newest first."""

from __future__ import annotations

import click

from eventstore.cli.common import (COUNT, TABLE_ROWS, TEXT, db_option, emit_json, json_option, more_rows, open_store,
                                   print_table)
from eventstore.cli.projections import catch_up, day_range, local_time


@click.command()
@click.option("--project", type=TEXT, help="Only sessions whose project or cwd contains TEXT.")
@click.option("--since", metavar="YYYYMMDD", help="Only sessions started on or after this local day.")
@click.option("--until", metavar="YYYYMMDD", help="Only sessions started on or before this local day.")
@click.option("--limit", type=COUNT,
              help=f"At most N sessions (the table shows the newest {TABLE_ROWS} unless given; --json, all).")
@json_option
@db_option
def sessions(project: str | None, since: str | None, until: str | None, limit: int | None, as_json: bool,
             db: str | None) -> None:
    """Claude Code sessions, newest first: project, title, times, messages, models, tokens and cost."""
    from projections.sessions import list_sessions

    start, end = day_range(since, until)
    with open_store(db) as store:
        catch_up(store, ("sessions", "usage"))
        with store.db.read() as conn:
            rows = list_sessions(conn, project=project, since=start, until=end, limit=limit)
    if as_json:
        emit_json({"sessions": rows})
        return
    if not rows:
        click.echo("no sessions")
        return
    shown = rows if limit is not None else rows[:TABLE_ROWS]
    print_table(None, ["started", "project", "title", "msgs", "agents", "models", "tokens", "cost", "session"], (
        (local_time(r.started_at), r.project, _short(r.title, 60), r.messages, r.subagents, ", ".join(r.models),
         f"{r.totalTokens:,}", f"${r.totalCost:.2f}", r.session_id[:8])
        for r in shown
    ))
    more_rows(len(shown), len(rows), "sessions: the newest")


def _short(text: str | None, width: int) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
