"""Commands that read transcripts: ingest, tail, quarantine."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import click

from eventstore.cli.common import INTERRUPTED, db_option, emit_json, json_option, open_store, print_table, warn

roots_argument = click.argument("roots", nargs=-1, type=click.Path(path_type=Path))


def _roots(roots: tuple[Path, ...]) -> list[Path]:
    from eventstore.paths import default_roots

    chosen = list(roots) or default_roots()
    if not chosen:
        raise click.ClickException(
            "no transcript roots: give ROOT arguments, set $CLAUDE_CONFIG_DIR, or create ~/.claude/projects"
        )
    for root in chosen:
        if not root.exists():
            raise click.ClickException(f"{root}: no such file or directory")
    return chosen


class _Stop(threading.Event):
    """Set by the first of the signals `_stop_on` catches; `signum` says which."""

    signum: int | None = None

    def caught(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum
        self.set()


@contextlib.contextmanager
def _stop_on(*signums: int) -> Iterator[_Stop]:
    """An event that the given signals set while the block runs, instead of interrupting it:
    ingestion and the projections stop at their next commit, and what was done is reported."""
    stop = _Stop()
    previous = {signum: signal.signal(signum, stop.caught) for signum in signums}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _catch_up_projections(store, stop: threading.Event | None = None) -> None:
    """Bring the projections up to date (or as far as they get before `stop`), if the
    projections package is installed."""
    if stop is not None and stop.is_set():  # already interrupted: nothing to announce at a terminal
        return
    try:
        import projections.runner  # noqa: F401
    except ImportError:
        return
    from eventstore.cli.projections import catch_up

    catch_up(store, stop=stop)


def _before_ingesting(store, stop: threading.Event | None = None) -> None:
    """Bring the projections to the head of the log, where the runner's inline projections apply
    small appends (a tail's) inside their own transaction, from the bytes in hand. Not before a
    first ingest: everything is built afterwards, with helper processes sharing out the reading."""
    if store.head():
        _catch_up_projections(store, stop)


def _embed_some(store) -> None:
    """While tail is idle, embed a few queued messages, so vector search needs no catching up.

    Background work never ends the tail: a failure is reported and tried again later."""
    try:
        from projections.vectors import embed_pending
    except ImportError:
        return
    try:
        embed_pending(store, IDLE_EMBED)
    except Exception as exc:  # noqa: BLE001 - reported, and the tail goes on
        message = f"embedding queued messages failed, will retry: {type(exc).__name__}: {exc}"
        if message not in _reported:  # once, not ten times a second
            _reported.add(message)
            warn(message)


_reported: set[str] = set()


IDLE_EMBED = 32
"""Items embedded per idle moment of `tail` (about 30 ms with the built-in embedder)."""


def _summary(report, interrupted: bool = False) -> str:
    return (
        f"{'interrupted after ' if interrupted else ''}"
        f"{report.files} files read ({report.files_seen} seen), {report.lines} lines, "
        f"{report.bytes / 1e6:.1f} MB: {report.events_appended} events appended, "
        f"{report.duplicates} duplicates, {report.quarantined} quarantined in {report.seconds:.2f} s"
    )


@click.command()
@roots_argument
@json_option
@db_option
def ingest(roots: tuple[Path, ...], as_json: bool, db: str | None) -> None:
    """Read what is new in every transcript file under the ROOTs, append it, update projections.

    Ctrl-C (or SIGTERM, from a service manager) stops reading and building projections at the
    next commit; what was committed is reported, and the exit status is 130 (143 for SIGTERM).
    Ingesting again goes on from there."""
    from eventstore.ingest import Ingester

    chosen = _roots(roots)
    with _stop_on(signal.SIGINT, signal.SIGTERM) as stop, open_store(db) as store:
        _before_ingesting(store, stop)
        if as_json or not sys.stdout.isatty():
            report = Ingester(store, stop=stop).ingest(chosen)
        else:
            report = _ingest_with_progress(store, chosen, stop)
        _catch_up_projections(store, stop)
        store.db.release_free_pages()
    for message in report.warnings:
        warn(message)
    if as_json:
        emit_json({k: getattr(report, k) for k in
                   ("files", "lines", "bytes", "events_appended", "duplicates", "quarantined", "seconds", "files_seen")})
    else:
        click.echo(_summary(report, stop.is_set()))
    if stop.is_set():
        if as_json:  # the document has no room to say so
            click.echo(f"interrupted: the report is of what was committed before {_name(stop.signum)}", err=True)
        raise click.exceptions.Exit(INTERRUPTED if stop.signum == signal.SIGINT else 128 + stop.signum)


def _name(signum: int | None) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def _ingest_with_progress(store, roots: list[Path], stop: threading.Event | None = None):
    """Ingest with a progress bar, redrawn after each batch is committed. Not on a timer: rich
    stops its refresh thread without waiting for it, and a thread still alive when the
    projections are built next keeps the runner from forking its helpers (fork_is_safe)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from eventstore.ingest import Ingester

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), transient=True, auto_refresh=False) as bar:
        task = bar.add_task("ingesting", total=None)
        report = Ingester(store, stop=stop, progress=lambda done, total: bar.update(task, completed=done, total=total,
                                                                                    refresh=True)).ingest(roots)
    return report


@click.command()
@roots_argument
@db_option
def tail(roots: tuple[Path, ...], db: str | None) -> None:
    """Ingest, then watch the ROOTs and ingest every change until SIGINT or SIGTERM.

    A signal stops the catch-up before watching (reading, or building the projections) at its
    next commit, and its summary then says it was interrupted."""
    from eventstore.ingest import Ingester
    from eventstore.ingest.tail import tail as follow

    chosen = _roots(roots)
    with _stop_on(signal.SIGINT, signal.SIGTERM) as stop, open_store(db) as store:
        _before_ingesting(store, stop)
        first = True

        def on_batch(report) -> None:
            nonlocal first
            _catch_up_projections(store, stop)
            for message in report.warnings:
                warn(message)
            if first or report.events_appended or report.quarantined:
                click.echo(_summary(report, stop.is_set()) if first else
                           f"+{report.events_appended} events ({report.duplicates} duplicates, "
                           f"{report.quarantined} quarantined)")
            if first and not stop.is_set():
                click.echo(f"watching {', '.join(map(str, chosen))} (Ctrl-C to stop)")
            first = False
            sys.stdout.flush()

        follow(Ingester(store, stop=stop), chosen, on_batch, stop, on_idle=lambda: _embed_some(store),
               on_busy=lambda message: warn(f"{message}; retrying while watching"))
    click.echo("stopped")


@click.command("quarantine")
@json_option
@db_option
def quarantine_(as_json: bool, db: str | None) -> None:
    """Lines that could not be decoded: file, offset, reason."""
    from eventstore.feed import iso
    from eventstore.ingest import quarantine

    with open_store(db) as store:
        lines = quarantine.listing(store.db.conn)
    if as_json:  # times as ISO-8601, as events, changes and audit give them
        emit_json({"quarantine": [{"file": q.file, "offset": q.offset, "bytes": q.bytes, "reason": q.reason,
                                   "recorded_at": iso(q.recorded_at)} for q in lines]})
        return
    if not lines:
        click.echo("quarantine is empty")
        return
    print_table(None, ["file", "offset", "bytes", "reason", "when"],
                ((q.file, q.offset, q.bytes, q.reason, iso(q.recorded_at)) for q in lines))
