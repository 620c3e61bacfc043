"""The memories commands: add, update, forget, link, unlink and list notes kept in the log."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from eventstore.cli.common import (COUNT, TEXT, db_option, emit_json, json_option, open_store, print_table, warn,
                                   warn_if_no_session)

_expect_option = click.option(
    "--expect-version", "expected_version", type=click.IntRange(min=1, max=COUNT.max), default=None,
    help="Fail unless the memory is at this version (someone else may have changed it).")


@contextlib.contextmanager
def _session(db: str | None) -> Iterator[tuple[object, object]]:
    """The store with its memories read model caught up, and a query function on it."""
    from eventstore.cli.projections import catch_up
    from projections.search import reader

    with open_store(db) as store:
        catch_up(store, ["memories"])
        yield store, reader(store)


def _resolve(rows, memory_id: str) -> str:
    from projections.memories import resolve

    return resolve(rows, memory_id)


def _show(memory, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json(memory.to_json())
        return
    click.echo(f"{verb} memory {memory.memory_id} (version {memory.version})")


def _target(session: str | None, task: str | None) -> tuple[str, str]:
    if (session is None) == (task is None):
        raise click.UsageError("give exactly one of --session ID or --task ID")
    return ("session", session) if session is not None else ("task", task)  # type: ignore[return-value]


@click.group(invoke_without_command=True)
@click.pass_context
def memories(ctx: click.Context) -> None:
    """Notes worth keeping: every change is an event on stream memory:<id>. Lists them without a subcommand."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_)


@memories.command("add")
@click.argument("text", type=TEXT)
@click.option("--tag", "tags", type=TEXT, multiple=True, help="A tag (repeatable).")
@click.option("--project", type=TEXT, help="The project it belongs to (default: none, every project).")
@json_option
@db_option
def add(text: str, tags: tuple[str, ...], project: str | None, as_json: bool, db: str | None) -> None:
    """Remember TEXT."""
    from projections import memories as lib

    with _session(db) as (store, _):
        memory = lib.add(store, text, tags, project, actor="cli")
    _show(memory, as_json, "added")


@memories.command("update")
@click.argument("memory_id", type=TEXT)
@click.option("--text", type=TEXT, help="New text.")
@click.option("--tag", "tags", type=TEXT, multiple=True, help="Replace the tags with these (repeatable).")
@click.option("--clear-tags", is_flag=True, help="Remove every tag.")
@click.option("--project", type=TEXT, help="New project ('' for none).")
@_expect_option
@json_option
@db_option
def update(memory_id: str, text: str | None, tags: tuple[str, ...], clear_tags: bool, project: str | None,
           expected_version: int | None, as_json: bool, db: str | None) -> None:
    """Change a memory's text, tags or project."""
    from msgspec import UNSET

    from projections import memories as lib

    if tags and clear_tags:
        raise click.UsageError("--tag and --clear-tags contradict each other")
    with _session(db) as (store, rows):
        memory = lib.update(
            store, _resolve(rows, memory_id), text=UNSET if text is None else text,
            tags=() if clear_tags else (tags or UNSET), project=UNSET if project is None else project,
            expected_version=expected_version, actor="cli",
        )
    _show(memory, as_json, "updated")


@memories.command("forget")
@click.argument("memory_id", type=TEXT)
@click.option("--reason", type=TEXT, default="", help="Why (kept in the log).")
@_expect_option
@json_option
@db_option
def forget(memory_id: str, reason: str, expected_version: int | None, as_json: bool, db: str | None) -> None:
    """Forget a memory: it leaves lists and search; its history stays in the log (list --all shows it)."""
    from projections import memories as lib

    with _session(db) as (store, rows):
        memory = lib.forget(store, _resolve(rows, memory_id), reason=reason, expected_version=expected_version,
                            actor="cli")
    _show(memory, as_json, "forgot")


@memories.command("link")
@click.argument("memory_id", type=TEXT)
@click.option("--session", type=TEXT, help="The session to link to.")
@click.option("--task", type=TEXT, help="The task to link to.")
@_expect_option
@json_option
@db_option
def link(memory_id: str, session: str | None, task: str | None, expected_version: int | None, as_json: bool,
         db: str | None) -> None:
    """Link a memory to a session or a task."""
    _change_link("link", memory_id, session, task, expected_version, as_json, db)


def _change_link(operation: str, memory_id: str, session: str | None, task: str | None,
                 expected_version: int | None, as_json: bool, db: str | None) -> None:
    """Link (operation "link") or unlink ("unlink") a memory and a session or task."""
    from projections import memories as lib

    target, target_id = _target(session, task)
    with _session(db) as (store, rows):
        if operation == "link":
            _warn_if_unknown(store, target, target_id)
        memory = getattr(lib, operation)(store, _resolve(rows, memory_id), target, target_id,
                                         expected_version=expected_version, actor="cli")
    _show(memory, as_json, operation + "ed")


def _warn_if_unknown(store, target: str, target_id: str) -> None:
    """Warn when a link names a session or task this database does not know: the link still stands
    (the session may be ingested later), but a typo would otherwise go unnoticed."""
    if target == "session":
        warn_if_no_session(store, target_id)
        return
    from eventstore.cli.projections import catch_up
    from projections.tasks import get_task

    catch_up(store, ["tasks"])
    with store.db.read() as conn:
        if get_task(conn, target_id) is None:
            warn(f"no task {target_id} in {store.path}")


@memories.command("unlink")
@click.argument("memory_id", type=TEXT)
@click.option("--session", type=TEXT, help="The session to unlink from.")
@click.option("--task", type=TEXT, help="The task to unlink from.")
@_expect_option
@json_option
@db_option
def unlink(memory_id: str, session: str | None, task: str | None, expected_version: int | None, as_json: bool,
           db: str | None) -> None:
    """Remove a link between a memory and a session or a task."""
    _change_link("unlink", memory_id, session, task, expected_version, as_json, db)


@memories.command("list")
@click.option("--tag", type=TEXT, help="Only memories with this tag.")
@click.option("--project", type=TEXT, help="Only memories whose project contains this text.")
@click.option("--session", type=TEXT, help="Only memories linked to this session.")
@click.option("--task", type=TEXT, help="Only memories linked to this task.")
@click.option("--all", "include_deleted", is_flag=True, help="Forgotten memories too.")
@json_option
@db_option
def list_(tag: str | None, project: str | None, session: str | None, task: str | None, include_deleted: bool,
          as_json: bool, db: str | None) -> None:
    """List memories, oldest first."""
    from projections import memories as lib

    with _session(db) as (_, rows):
        found = lib.list_memories(rows, tag=tag, project=project, session=session, task=task,
                                  include_deleted=include_deleted)
    if as_json:
        emit_json({"memories": [m.to_json() for m in found]})
        return
    from rich.markup import escape

    print_table(
        None, ["id", "text", "tags", "project", "links", "version", "updated"],
        ((m.memory_id[:12] + (" (forgotten)" if m.deleted else ""), escape(m.text), escape(", ".join(m.tags)),
          escape(m.project or ""), escape(", ".join(f"{t}:{i[:8]}" for t, i in m.links)), m.version,
          (m.to_json()["updated_at"] or "")[:16].replace("T", " ")) for m in found),
    )
