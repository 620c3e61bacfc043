"""The search command: full-text, vector and hybrid search over transcripts and memories."""

from __future__ import annotations

import re

import click

from eventstore.cli.common import TEXT, db_option, emit_json, json_option, open_store, print_table, warn

ROLE_CHOICES = ("user", "assistant", "tool", "summary", "memory")


def _marked(snippet: str) -> str:
    """A snippet for the terminal: rich markup escaped, matched words in bold."""
    from rich.markup import escape

    return re.sub(r"\*\*(.+?)\*\*", r"[bold yellow]\1[/bold yellow]", escape(snippet))


@click.command()
@click.argument("query")
@click.option("--mode", type=click.Choice(["fts", "vector", "hybrid"]), default="fts", show_default=True,
              help="fts: words and phrases ranked by bm25, then substrings of code and paths; vector: nearest "
                   "embeddings; hybrid: both, fused by reciprocal rank.")
@click.option("--project", type=TEXT, help="Only projects whose path contains this text (case-insensitive).")
@click.option("--session", type=TEXT, help="Only this session.")
@click.option("--role", "roles", multiple=True, type=click.Choice(ROLE_CHOICES),
              help="Only these roles (repeatable): user prompts, assistant text, tool calls and results, "
                   "summaries, memories.")
@click.option("--since", help="Only from this day on (YYYYMMDD, local time).")
@click.option("--until", help="Only up to this day, inclusive (YYYYMMDD, local time).")
@click.option("--limit", type=click.IntRange(min=1, max=1000), default=20, show_default=True, help="At most this many results.")
@click.option("--syntax", is_flag=True, help="QUERY is FTS5 query syntax (AND, OR, NOT, NEAR, prefix*), not plain text.")
@json_option
@db_option
def search(query: str, mode: str, project: str | None, session: str | None, roles: tuple[str, ...],
           since: str | None, until: str | None, limit: int, syntax: bool, as_json: bool, db: str | None) -> None:
    """Search prompts, replies, tool calls and results, summaries and memories for QUERY.

    QUERY is searched for as typed: each word must occur ("quoted words" as a phrase). A word
    ending in * matches as a prefix. --syntax takes FTS5 syntax instead.
    """
    from eventstore.cli.projections import catch_up, day_range
    from projections import search as search_lib
    from projections.vectors import pending_count

    start, end = day_range(since, until)
    filters = search_lib.Filters(project=project, session=session, roles=tuple(roles) or None, since=start, until=end)
    with open_store(db) as store:
        catch_up(store, ["fulltext"] if mode == "fts" else ["fulltext", "memories", "vectors"])
        hits = search_lib.search(store, query, mode=mode, filters=filters, limit=limit, syntax=syntax)  # type: ignore[arg-type]
        waiting = pending_count(store) if mode != "fts" else 0
    if waiting:
        warn(f"{waiting} queued events and memories are not embedded yet (each search embeds up to "
             f"{search_lib.EMBED_BEFORE_QUERY:,}); vector results leave them out until then")
    if as_json:
        import msgspec

        emit_json({"results": [msgspec.structs.asdict(h) for h in hits]})
        return
    if not hits:
        click.echo("no results", err=True)
        return
    print_table(
        None, ["score", "when", "role", "session", "position", "snippet"],
        ((f"{h.score:.3f}", (h.timestamp or "")[:16].replace("T", " "), h.role, (h.session_id or "")[:8],
          h.event_position, _marked(h.snippet)) for h in hits),
    )
