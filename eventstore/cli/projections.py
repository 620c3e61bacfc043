"""Commands over the projection runner: replay; and helpers the read-model commands share."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone

import click

from eventstore.cli.common import TEXT, db_option, emit_json, json_option, open_store


def runner_for(store, needed: Iterable[str] = ()):
    """The store's projection runner; a clear error if a projection a command needs is missing."""
    from projections.runner import Runner

    runner = Runner.for_store(store)
    missing = [name for name in needed if name not in runner.projections]
    if missing:
        raise click.ClickException(
            f"the {', '.join(missing)} projection is not installed (entry point group eventstore.projections); "
            "reinstall eventstore"
        )
    return runner


ANNOUNCED = 20_000
"""Events left to read from which bringing projections up to date is announced at a terminal:
about a second or more (a first build, a new version after an upgrade, a large ingest)."""


def catch_up(store, names: Iterable[str] | None = None, runner=None, stop=None) -> None:
    """Bring projections (all, or the named ones installed) up to date, before a query or after
    an ingest, or as far as they get before `stop` is set (Runner.catch_up). When that means
    reading much of the log, people at a terminal are told on stderr what is being updated, and
    when it is done (a line each: a spinner's thread would keep the runner from forking its helpers)."""
    runner = runner or runner_for(store)
    chosen = None if names is None else [name for name in names if name in runner.projections]
    behind = runner.behind(chosen)
    if max(behind.values(), default=0) < ANNOUNCED or not sys.stderr.isatty():
        runner.catch_up(chosen, stop)
        return
    click.echo(f"updating {', '.join(sorted(behind))} from {max(behind.values()):,} events of the log...", err=True)
    report = runner.catch_up(chosen, stop)
    done = "interrupted after" if stop is not None and stop.is_set() else "updated in"
    click.echo(f"{done} {report.seconds:.1f} s", err=True)


def local_day_start(text: str, option: str) -> datetime:
    """A YYYYMMDD date as local midnight (naive), or a usage error naming the option."""
    try:
        return datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date YYYYMMDD", param_hint=option) from None


def local_ms(moment: datetime) -> int:
    """A naive local time (or an aware one) as milliseconds since the epoch. Within a day of year
    1 or 9999 the local zone's offset may reach past what datetime holds: it is taken as UTC."""
    try:
        return round(moment.astimezone().timestamp() * 1000)
    except (ValueError, OverflowError):
        return round(moment.replace(tzinfo=moment.tzinfo or timezone.utc).timestamp() * 1000)


def local_time(iso_time: str | None) -> str:
    """An ISO-8601 UTC time as local 'YYYY-MM-DD HH:MM' for people."""
    if iso_time is None:
        return ""
    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M")


def day_range(since: str | None, until: str | None) -> tuple[int | None, int | None]:
    """--since/--until YYYYMMDD (local days, both inclusive) as a [start, end) range in ms (end
    None after 9999-12-31, which has no next day)."""
    start = local_ms(local_day_start(since, "--since")) if since else None
    last = local_day_start(until, "--until") if until else None
    end = local_ms(last + timedelta(days=1)) if last is not None and last.date() < date.max else None
    return start, end


@click.command()
@click.option("--projection", "names", type=TEXT, multiple=True, metavar="NAME",
              help="Rebuild only this projection (repeatable; default: all).")
@json_option
@db_option
def replay(names: tuple[str, ...], as_json: bool, db: str | None) -> None:
    """Rebuild projections from the log into fresh tables, swapped in when complete."""
    with open_store(db) as store:
        runner = runner_for(store)
        if as_json or not sys.stdout.isatty():
            report = runner.rebuild(names or None)
        else:
            report = _replay_with_progress(runner, names or None)
        from eventstore.audit import record_now

        record_now(store, "replay", {"projections": report.projections, "events": report.events,
                                     "seconds": report.seconds})
        store.db.release_free_pages()  # the tables the rebuild replaced
    if as_json:  # CONTRACT.md's shape: how many helpers read the log is told in the text only
        emit_json({"events": report.events, "seconds": report.seconds,
                   "events_per_second": report.events_per_second, "projections": report.projections})
        return
    helped = f", read by {report.helpers} helper processes" if report.helpers else ""
    click.echo(f"replayed {report.events} events into {', '.join(report.projections) or 'no projections'} "
               f"in {report.seconds:.2f} s ({report.events_per_second:,.0f} events/s{helped})")


def _replay_with_progress(runner, names):
    """`rebuild` with a progress bar, redrawn after each batch it commits. Not on a timer: rich's
    refresh thread would keep the runner from forking its helper processes (fork_is_safe)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True, auto_refresh=False) as bar:
        task = bar.add_task("replaying", total=None)
        return runner.rebuild(names, progress=lambda done, head: bar.update(task, completed=done, total=head,
                                                                             refresh=True))
