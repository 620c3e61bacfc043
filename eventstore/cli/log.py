"""Commands over the log itself: events, changes, export, import."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from itertools import islice

import click

from eventstore.cli.common import (
    COUNT,
    TABLE_ROWS,
    TEXT,
    db_option,
    emit_json,
    emit_json_lines,
    json_option,
    more_rows,
    open_store,
    print_table,
)

CHANGES_PAGE = 5_000
"""Changes `changes --json` reads at a time: a feed of any length in bounded memory."""


@click.command()
@click.option("--stream", type=TEXT, help="Only this stream's events, in version order.")
@click.option("--after", type=COUNT, default=0, show_default=True, help="Only events after this position.")
@click.option("--limit", type=COUNT,
              help=f"At most this many events (the table shows {TABLE_ROWS} unless given; --json, all).")
@json_option
@db_option
def events(stream: str | None, after: int, limit: int | None, as_json: bool, db: str | None) -> None:
    """The log itself: every event in order (JSON lines with --json)."""
    from eventstore.feed import iso, to_line

    with open_store(db) as store:
        if stream is not None:
            found = [e for e in store.read_stream(stream) if e.position > after]
            total = len(found)
        else:
            found = store.iter_all(after)  # in batches: a log of any size in bounded memory
            total = max(store.head() - after, 0)  # positions have no gaps
        if as_json:
            emit_json_lines(to_line(e) for e in islice(found, limit))
            return
        shown = list(islice(found, TABLE_ROWS if limit is None else limit))
    print_table(
        None,
        ["position", "recorded", "stream", "version", "type", "op", "entity", "bytes"],
        ((e.position, iso(e.recorded_at), e.stream, e.version, e.type, e.op,
          f"{e.entity}:{e.entity_id}", len(e.data)) for e in shown),
    )
    if limit is None:
        more_rows(len(shown), total, "events: the first")


@click.command()
@click.option("--since", "cursor", type=COUNT, default=0, show_default=True, help="The cursor of the last change you have.")
@click.option("--limit", type=COUNT,
              help=f"At most this many changes (the table shows {TABLE_ROWS} unless given; --json, all).")
@json_option
@db_option
def changes(cursor: int, limit: int | None, as_json: bool, db: str | None) -> None:
    """The sync feed: what changed after CURSOR; the last JSON line is {"cursor": N}."""
    from eventstore.feed import iso

    with open_store(db) as store:
        head = store.head()
        if cursor > head:  # a client keeping it would skip the next events appended here
            raise click.BadParameter(
                f"cursor {cursor} is past the end of this log ({head}): it comes from another database, or "
                "this one was restored from an older backup; sync again from --since 0", param_hint="--since")
        if as_json:
            emit_json_lines(_change_lines(store, cursor, limit))
            return
        found = store.changes(cursor, TABLE_ROWS if limit is None else limit)
        total = head - cursor  # positions have no gaps
    print_table(
        None,
        ["position", "recorded", "op", "entity", "version", "client"],
        ((c.position, iso(c.recorded_at), c.op, f"{c.entity}:{c.entity_id}", c.version, c.client_id[:8])
         for c in found),
    )
    if limit is None:
        more_rows(len(found), total, "changes: the first")
    click.echo(f"cursor: {found[-1].position if found else cursor}")  # what to pass as --since next


def _change_lines(store, cursor: int, limit: int | None) -> Iterator[dict]:
    """The feed after `cursor` as JSON-line values, read a page at a time, then {"cursor": N}."""
    from eventstore.feed import iso

    left = limit
    while left is None or left > 0:
        page = store.changes(cursor, CHANGES_PAGE if left is None else min(CHANGES_PAGE, left))
        if not page:
            break
        for c in page:
            yield {"position": c.position, "event_id": c.event_id, "entity": c.entity, "entity_id": c.entity_id,
                   "op": c.op, "version": c.version, "client_id": c.client_id, "recorded_at": iso(c.recorded_at)}
        cursor = page[-1].position
        if left is not None:
            left -= len(page)
    yield {"cursor": cursor}


@click.command()
@click.option("--since", "cursor", type=COUNT, default=0, show_default=True, help="Only events after this position.")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@db_option
def export(cursor: int, file: str, db: str | None) -> None:
    """Write the log (events with their data) to FILE as JSON lines ('-' for stdout)."""
    from eventstore import feed

    with open_store(db) as store:
        if file == "-":
            feed.export(store, sys.stdout.buffer, cursor)
            return
        # The export holds every raw line, tool outputs and their secrets included: readable by
        # its owner alone, as the database is, whatever mode a file it replaces had.
        fd = os.open(file, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            count = feed.export(store, out, cursor)
    click.echo(f"exported {count} events to {file}", err=True)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@json_option
@db_option
def import_(file: str, as_json: bool, db: str | None) -> None:
    """Append the events of an export FILE, keeping their ids and versions (idempotent).

    A stream whose versions here do not continue from the file's is reported and skipped;
    the exit status is then 1.
    """
    from eventstore import feed

    with open_store(db) as store:
        try:
            if file == "-":
                report = feed.import_events(store, sys.stdin.buffer)
            else:
                with open(file, "rb") as source:
                    report = feed.import_events(store, source)
        except ValueError as exc:
            raise click.ClickException(f"{file}: {exc}") from None
    if as_json:
        emit_json(report)
    else:
        click.echo(f"{report.events} events read: {report.appended} appended, "
                   f"{report.duplicates} already here, {len(report.conflicts)} conflicting streams")
    for conflict in report.conflicts:
        click.echo(f"conflict: stream {conflict.stream!r} at version {conflict.version}: {conflict.reason}", err=True)
    if report.conflicts:
        sys.exit(1)
