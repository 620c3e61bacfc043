"""The tasks commands: list tasks (a person's and Claude Code's), add one, change one."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import click

from eventstore.cli.common import (COUNT, TABLE_ROWS, TEXT, db_option, emit_json, json_option, more_rows, open_store,
                                   print_table, warn, warn_if_no_session)
from eventstore.cli.projections import catch_up, local_ms, local_time, runner_for

PRIORITY_CHOICES = ("high", "medium", "low")
CATCH_UP_ATTEMPTS = 5
"""Times a task change catches the tasks read model up before giving up (each time, more lines
may have arrived before its write transaction began)."""
STATUS_CHOICES = ("pending", "in_progress", "completed", "deleted")


def _parse_as_of(text: str) -> int:
    """ISO-8601 time or date (no zone: local time), or YYYYMMDD, as ms since the epoch."""
    for parse in (datetime.fromisoformat, lambda t: datetime.strptime(t, "%Y%m%d")):
        try:
            moment = parse(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            continue
        return local_ms(moment)
    raise click.BadParameter(f"{text!r} is not an ISO-8601 time or a date YYYYMMDD", param_hint="--as-of")


@click.group(invoke_without_command=True)
@click.option("--status", "status_expr", type=TEXT, metavar="EXPR",
              help="Comma list of statuses; a leading '!' negates the list: 'pending,in_progress', "
                   "'!completed,deleted'.")
@click.option("--session", type=TEXT, metavar="ID", help="Only tasks of this session.")
@click.option("--as-of", "as_of", metavar="TIMESTAMP",
              help="Show the list as it stood at this time (ISO-8601; a date means its first instant).")
@click.option("--limit", type=COUNT,
              help=f"At most N tasks (the table shows the first {TABLE_ROWS} unless given; --json, all).")
@json_option
@db_option
@click.pass_context
def tasks(ctx: click.Context, status_expr: str | None, session: str | None, as_of: str | None, limit: int | None,
          as_json: bool, db: str | None) -> None:
    """Tasks, by priority (high, medium, low, none) then most recently updated."""
    if db is not None:  # `tasks --db X add ...`: the subcommand finds it through the context
        ctx.ensure_object(dict)["db"] = db
    if ctx.invoked_subcommand is not None:
        return
    from projections.tasks import list_tasks, parse_status_filter

    try:
        parsed = parse_status_filter(status_expr)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--status") from None
    moment = _parse_as_of(as_of) if as_of else None
    with open_store(db) as store:
        catch_up(store, ["tasks"], runner_for(store, ["tasks"]))
        with store.db.read() as conn:
            rows = list_tasks(conn, statuses=parsed[0] if parsed else None, negate=bool(parsed and parsed[1]),
                              session=session, as_of=moment)
            known = set(STATUS_CHOICES)
            if parsed and not known.issuperset(parsed[0]):
                known |= {status for (status,) in conn.execute("SELECT DISTINCT status FROM tasks")}
    for unknown in [status for status in (parsed[0] if parsed else ()) if status not in known]:  # a typo, PENDING
        warn(f"no task has status {unknown!r}; statuses: {', '.join(sorted(known))}")
    if as_json:
        emit_json({"tasks": rows if limit is None else rows[:limit]})
        return
    if not rows:
        click.echo("no tasks")
        return
    shown = rows[:TABLE_ROWS if limit is None else limit]
    print_table(None, ["id", "priority", "status", "title", "source", "updated", "v"], (
        (r.task_id, r.priority or "", r.status, r.title, r.source, local_time(r.updated_at), r.version) for r in shown
    ))
    if limit is None:
        more_rows(len(shown), len(rows), "tasks: the first")


@tasks.command("add")
@click.argument("title", type=TEXT)
@click.option("--priority", type=click.Choice(PRIORITY_CHOICES), help="high, medium or low (default: none).")
@click.option("--session", type=TEXT, metavar="ID", help="The session this task belongs to.")
@json_option
@db_option
def add(title: str, priority: str | None, session: str | None, as_json: bool, db: str | None) -> None:
    """Record a new task of your own."""
    from schemas import tasks as task_events
    from schemas.envelope import NewEvent

    if not title.strip():
        raise click.BadParameter("a task needs a title", param_hint="TITLE")
    task_id = uuid.uuid4().hex[:12]
    payload = task_events.TaskCreated(task_id=task_id, title=title, priority=priority, session_id=session)
    event = NewEvent(
        event_id=uuid.uuid4().hex, stream=task_events.task_stream(task_id), type=task_events.TASK_CREATED,
        entity=task_events.ENTITY, entity_id=task_id, op="create", data=task_events.encode(payload),
        actor="user", occurred_at=time.time_ns() // 1_000_000,
    )
    _append_and_show(db, event, task_id, as_json, "added", new=True, session=session)


@tasks.command("set")
@click.argument("task_id", type=TEXT)
@click.option("--status", type=click.Choice(STATUS_CHOICES), help="The new status.")
@click.option("--priority", type=click.Choice((*PRIORITY_CHOICES, "none")), help="The new priority ('none' clears it).")
@click.option("--expect-version", type=COUNT, metavar="N",
              help="Fail unless the task is still at version N (someone else may have changed it).")
@json_option
@db_option
def set_(task_id: str, status: str | None, priority: str | None, expect_version: int | None, as_json: bool,
         db: str | None) -> None:
    """Change a task's status or priority."""
    from schemas import tasks as task_events
    from schemas.envelope import NewEvent

    if status is None and priority is None:
        raise click.UsageError("nothing to change: give --status or --priority")
    payload = task_events.TaskUpdated(task_id=task_id, status=status, priority=priority)
    event = NewEvent(
        event_id=uuid.uuid4().hex, stream=task_events.task_stream(task_id), type=task_events.TASK_UPDATED,
        entity=task_events.ENTITY, entity_id=task_id, op="update", data=task_events.encode(payload),
        actor="user", occurred_at=time.time_ns() // 1_000_000,
    )
    _append_and_show(db, event, task_id, as_json, "updated", expect_version=expect_version)


def _append_and_show(db: str | None, event, task_id: str, as_json: bool, verb: str, *, new: bool = False,
                     expect_version: int | None = None, session: str | None = None) -> None:
    """Append a person's task event, then show the task. A change (`new` false) needs the task
    to exist and, with `expect_version`, to be at that version: checked in the append's own write
    transaction against the tasks read model, caught up to the head first, since a version counts
    Claude Code's changes too, and those are in session streams, not in the task's."""
    from projections.tasks import get_task
    from schemas.envelope import ExpectedVersion

    with open_store(db) as store:
        if session is not None:
            warn_if_no_session(store, session)
        runner = runner_for(store, ["tasks"])
        for _ in range(CATCH_UP_ATTEMPTS):
            catch_up(store, ["tasks"], runner)
            with store.transaction() as tx:  # the inline hook applies the append in it
                if runner.behind(["tasks"]):
                    continue  # appended to meanwhile: catch up again
                current = None if new else get_task(store.db.conn, task_id)
                if not new and current is None:
                    raise click.ClickException(f"no task {task_id}")
                if expect_version is not None and current.version != expect_version:
                    raise click.ClickException(
                        f"task {task_id} is at version {current.version}, not {expect_version}: it changed since "
                        f"you read it; look at it again and retry with --expect-version {current.version}")
                tx.append([event], expected_version=ExpectedVersion.NO_STREAM if new else ExpectedVersion.ANY)
            break
        else:  # new lines keep arriving faster than this catches up, or another process rebuilds tasks
            raise click.ClickException("the tasks read model could not be brought up to date (another process may "
                                       "be replaying it); try again in a moment")
        runner.catch_up(["tasks"])
        with store.db.read() as conn:
            row = get_task(conn, task_id)
    if as_json:
        emit_json(row)
    else:
        click.echo(f"{verb} task {row.task_id} (version {row.version}): [{row.status}] {row.title}")
