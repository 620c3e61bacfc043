"""The eventstore command line: a thin layer over the library.

Subcommands are imported only when invoked, so a quick report does not pay for every command's
imports at start-up.
"""

from __future__ import annotations

import importlib

import click

COMMANDS: dict[str, str] = {
    "events": "eventstore.cli.log:events",
    "changes": "eventstore.cli.log:changes",
    "export": "eventstore.cli.log:export",
    "import": "eventstore.cli.log:import_",
    "ingest": "eventstore.cli.ingest:ingest",
    "tail": "eventstore.cli.ingest:tail",
    "quarantine": "eventstore.cli.ingest:quarantine_",
    "stats": "eventstore.cli.space:stats",
    "compact": "eventstore.cli.space:compact",
    "search": "eventstore.cli.search:search",
    "memories": "eventstore.cli.memories:memories",
    "replay": "eventstore.cli.projections:replay",
    "sessions": "eventstore.cli.sessions:sessions",
    "tasks": "eventstore.cli.tasks:tasks",
    "usage": "eventstore.cli.usage:usage",
    "check": "eventstore.cli.ops:check_",
    "backup": "eventstore.cli.ops:backup",
    "redact": "eventstore.cli.ops:redact",
    "audit": "eventstore.cli.ops:audit_",
    "bench": "eventstore.cli.ops:bench",
}
"""Command name -> "module:attribute" of its click command."""


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def invoke(self, ctx: click.Context):
        """Run the command: errors end it with a line on stderr (common.errors_reported)."""
        from eventstore.cli.common import errors_reported

        with errors_reported():
            return super().invoke(ctx)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db", type=click.Path(dir_okay=False), envvar="EVENTSTORE_DB",
              help="Database file (default: $EVENTSTORE_DB, else $XDG_DATA_HOME/eventstore/events.db).")
@click.version_option(package_name="eventstore")
@click.pass_context
def main(ctx: click.Context, db: str | None) -> None:
    """Keep every Claude Code transcript line forever, and query what it says."""
    ctx.obj = {"db": db}
