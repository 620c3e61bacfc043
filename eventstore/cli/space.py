"""Commands about disk space: stats, compact."""

from __future__ import annotations

import click

from eventstore.cli.common import db_option, emit_json, json_option, open_store, print_table


@click.command()
@json_option
@db_option
def stats(as_json: bool, db: str | None) -> None:
    """Events, raw and stored bytes, compression ratio, and the bytes of every table and index."""
    from eventstore.space import stats as measure

    with open_store(db) as store:
        found = measure(store)
    if as_json:
        emit_json(found)
        return
    click.echo(f"{found.events:,} events: {found.raw_bytes / 1e6:,.1f} MB of payloads stored in "
               f"{found.stored_bytes / 1e6:,.1f} MB ({found.compression_ratio:.2f}x, "
               f"{found.dictionaries} dictionaries); database file {found.database_bytes / 1e6:,.1f} MB"
               f" + WAL {found.wal_bytes / 1e6:,.1f} MB")
    print_table(None, ["table or index", "kind", "MB"],
                ((t.name, t.kind, f"{t.bytes / 1e6:,.2f}") for t in found.tables))


@click.command()
@json_option
@db_option
def compact(as_json: bool, db: str | None) -> None:
    """Compress every payload stored as it is, then VACUUM to return the space to the disk."""
    from eventstore.space import compress_payloads, schedule_compression

    with open_store(db) as store:
        schedule_compression(store)
        report = compress_payloads(store)
        store.db.conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # an older database adopts it as it is rebuilt
        store.db.conn.execute("VACUUM")
    if as_json:
        emit_json(report)
    else:
        click.echo(f"compressed {report.events:,} payloads: {report.bytes_before / 1e6:,.1f} MB -> "
                   f"{report.bytes_after / 1e6:,.1f} MB")
