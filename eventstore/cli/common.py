"""What every command shares: the --db and --json options, opening the store, output, errors."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from eventstore.errors import EventStoreError


INTERRUPTED = 130
"""The exit status of a command ended by Ctrl-C (128 + SIGINT), as shells and scripts expect."""

COUNT = click.IntRange(min=0, max=2**63 - 1)
"""A position, cursor, version or limit: a whole number from 0 up to what SQLite can hold."""


class _Text(click.ParamType):
    """A string that must be UTF-8: a shell passes any bytes, and text that is not could be neither
    stored nor shown (Python hands it over with lone surrogates)."""

    name = "text"

    def convert(self, value, param, ctx):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                self.fail(f"{value.encode('utf-8', 'surrogateescape')!r} is not UTF-8 text", param, ctx)
        return value


TEXT = _Text()


def db_option(fn: Callable) -> Callable:
    """Add `--db PATH` to a command (it may also be given before the command name)."""
    return click.option("--db", "db", type=click.Path(dir_okay=False), default=None,
                        help="Database file (overrides $EVENTSTORE_DB and the default).")(fn)


def json_option(fn: Callable) -> Callable:
    """Add `--json`: print one JSON document (or JSON lines) on stdout and nothing else."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")(fn)


def db_path(db: str | None) -> Path:
    """The database path from the command's --db, the group's --db/$EVENTSTORE_DB, or the default."""
    from eventstore.paths import default_db_path

    if db is None:
        ctx = click.get_current_context(silent=True)
        while ctx is not None and db is None:
            if isinstance(ctx.obj, dict):
                db = ctx.obj.get("db")
            ctx = ctx.parent
    if db is None and os.environ.get("EVENTSTORE_DB") == "":  # as `--db ""`, below
        raise click.BadParameter("$EVENTSTORE_DB is set but empty; unset it to use the default database",
                                 param_hint="--db")
    if db is None:
        return default_db_path()
    if not db:  # `--db "$UNSET"`: not the default database, which may be another one altogether
        raise click.BadParameter("the database path is empty", param_hint="--db")
    return Path(db).expanduser()


def open_store(db: str | None):
    """Open the store a command works on."""
    from eventstore.store import Store

    return Store(db_path(db))


@contextlib.contextmanager
def errors_reported() -> Iterator[None]:
    """End a command whose library raised a named error, or whose system call failed (a missing
    directory, a full disk), with one line on stderr and exit status 1, not a traceback; a reader
    gone from the pipe (`| head`) ends it quietly with status 0, and Ctrl-C with status 130 (click
    would print "Aborted!" and exit 1)."""
    try:
        yield
    except KeyboardInterrupt:
        raise click.exceptions.Exit(INTERRUPTED) from None
    except EventStoreError as exc:
        raise click.ClickException(str(exc)) from None
    except BrokenPipeError:
        discard_stdout()
        raise click.exceptions.Exit(0) from None
    except OSError as exc:
        discard_stdout()
        raise click.ClickException(describe_os_error(exc)) from None


def describe_os_error(exc: OSError) -> str:
    """A failed system call as one line for people: the file it concerned, if any, and why."""
    reason = exc.strerror or str(exc)
    names = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
    return f"{' -> '.join(names)}: {reason}" if names else reason


def discard_stdout() -> None:
    """Point standard output at the null device, after a write to it failed (a full disk, a reader
    gone from the pipe): the interpreter's last flush of what is still buffered would fail again,
    with a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # no stdout, or not a file
        pass


def emit_json(value: Any) -> None:
    """Print one JSON document on stdout."""
    import msgspec

    sys.stdout.buffer.write(msgspec.json.encode(value) + b"\n")
    sys.stdout.flush()


def emit_json_lines(values: Iterable[Any]) -> None:
    """Print JSON lines on stdout, one value each."""
    import msgspec

    encoder = msgspec.json.Encoder()
    out = sys.stdout.buffer
    for value in values:
        out.write(encoder.encode(value) + b"\n")
    out.flush()


TABLE_ROWS = 50
"""Rows a long listing's table shows unless --limit says otherwise (its --json gives every one):
drawing thousands of rows takes rich seconds, and they scroll away."""


def more_rows(shown: int, total: int, what: str) -> None:
    """Say, under a table cut at TABLE_ROWS, how many rows it left out and how to see them."""
    if shown < total:
        click.echo(f"{what} {shown} of {total:,}; --limit N shows more, --json shows all")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a table for people (rich is imported only here, for human output)."""
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if value is None else str(value) for value in row))
    print_for_people(table)


def print_for_people(renderable: Any) -> None:
    """Print a rich table (or any renderable) on stdout: as wide as the terminal, or, piped to a
    file, grep or less, as wide as it needs, so each row stays on one line and no cell is cut."""
    from rich.console import Console

    class Output(Console):
        def on_broken_pipe(self) -> None:  # rich would exit with status 1; errors_reported decides
            raise BrokenPipeError

    console = Output()
    if not console.is_terminal:
        natural = Console(width=1_000_000).measure(renderable).maximum
        console = Output(width=max(natural, console.width))
    console.print(renderable)


def warn(message: str) -> None:
    """A warning for people, on stderr."""
    click.echo(f"warning: {message}", err=True)


def warn_if_no_session(store, session_id: str) -> None:
    """Warn when the log holds no line of a session a command names (a typo, or a session not
    ingested yet): what the command records still stands."""
    from schemas.transcript_events import session_stream

    if not store.stream_version(session_stream(session_id)):
        warn(f"no session {session_id} in {store.path} (not ingested yet?)")
