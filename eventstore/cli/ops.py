"""Operations commands: check, backup, redact, audit, bench."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from eventstore.cli.common import TEXT, db_option, db_path, emit_json, json_option, open_store, print_table, warn


@click.command("check")
@click.option("--deep", is_flag=True,
              help="Also rebuild every projection into scratch tables and compare it with the live one.")
@json_option
@db_option
def check_(deep: bool, as_json: bool, db: str | None) -> None:
    """Integrity of the database, the log and the projections; exit status 1 on any problem."""
    from eventstore.check import CheckReport, check
    from eventstore.errors import DatabaseError

    _must_exist(db)
    try:
        with open_store(db) as store:
            report = check(store, deep=deep, progress=_stderr_progress(as_json))
    except DatabaseError as exc:  # it does not even open: that is the report
        report = CheckReport()
        report.problem("open", str(exc))
    if as_json:
        emit_json(report)
    else:
        _print_check(report)
    if not report.ok:
        sys.exit(1)


def _must_exist(db: str | None) -> None:
    """Refuse to create a database where the user expects one to be."""
    path = db_path(db)
    if not path.exists():
        raise click.ClickException(f"{path}: no such database (give --db or set $EVENTSTORE_DB)")


def _stderr_progress(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    return lambda step: click.echo(f"checking {step}...", err=True)


def _print_check(report) -> None:
    from eventstore.check import TRIGGERS

    checks = report.checks
    if "integrity" in checks:
        click.echo(f"integrity: {'ok' if checks['integrity']['ok'] else 'DAMAGED'}")
    if "log" in checks:
        log = checks["log"]
        click.echo(f"log: {log['events']} events, head {log['head']}, {log['streams']} streams, "
                   f"triggers {'in place' if len(log['append_only_triggers']) == len(TRIGGERS) else 'MISSING'}")
    if "payloads" in checks:
        click.echo(f"payloads: {checks['payloads']['decoded']} decode, {checks['payloads']['failed']} do not")
    if "quarantine" in checks:
        click.echo(f"quarantine: {checks['quarantine']['lines']} lines (see `eventstore quarantine`)")
    for name, status in checks.get("projections", {}).items():
        state = ("not built yet" if not status["built"] else
                 f"at {status['position']} of {status['head']}, version "
                 f"{'current' if status['stored_version'] == status['version'] else 'STALE'}, "
                 f"{status['errors']} errors")
        click.echo(f"projection {name}: {state}")
    for name, result in checks.get("deep", {}).items():
        if result.get("compared"):
            differing = [t for t, d in result["tables"].items() if d["live_only"] or d["rebuilt_only"]]
            click.echo(f"deep {name}: {'matches a rebuild' if not differing else 'DIFFERS in ' + ', '.join(differing)}"
                       f" at position {result['position']}")
        else:
            click.echo(f"deep {name}: not compared ({result.get('reason')})")
    for problem in report.problems:
        click.echo(f"problem [{problem.check}]: {problem.message}", err=True)
    click.echo("ok" if report.ok else f"{len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}")


@click.command()
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite DEST if it exists.")
@json_option
@db_option
def backup(dest: Path, force: bool, as_json: bool, db: str | None) -> None:
    """An online, consistent copy of the database at DEST (0600), taken while others write."""
    from eventstore.backup import backup as copy

    _must_exist(db)
    with open_store(db) as store:
        report = copy(store, dest, overwrite=force)
    if as_json:
        emit_json(report)
    else:
        click.echo(f"copied {report.bytes / 1e6:.1f} MB ({report.pages} pages) to {report.path} "
                   f"in {report.seconds:.2f} s")


@click.command()
@click.argument("pattern", type=TEXT)
@click.option("--dry-run", is_flag=True, help="Report what would be redacted; change nothing.")
@json_option
@db_option
def redact(pattern: str, dry_run: bool, as_json: bool, db: str | None) -> None:
    """Replace every match of the regular expression PATTERN in stored payloads with [REDACTED].

    In a transcript line (or any JSON payload) PATTERN is matched against each string as it
    reads, escapes decoded, so a secret with quotes or backslashes is found as typed and the
    line stays valid JSON; numbers and JSON syntax are not matched. A line that is not JSON
    is matched as raw bytes.

    PATTERN '-' reads the pattern from the first line of stdin, which keeps a secret out of
    shell history and process listings. The audit trail records a SHA-256 of the pattern,
    never the pattern itself.
    """
    from eventstore.redact import redact as run

    if pattern == "-":
        pattern = sys.stdin.readline().rstrip("\r\n")
    _must_exist(db)
    with open_store(db) as store:
        report = run(store, pattern, dry_run=dry_run,
                     progress=None if as_json or not sys.stderr.isatty() else lambda s: click.echo(s + "...", err=True))
    if as_json:
        emit_json(report)
    elif dry_run:
        click.echo(f"would redact {report.events} events ({', '.join(report.event_types) or 'none'}) and "
                   f"{report.quarantined_lines} quarantined lines; would replace {report.dictionaries_replaced} "
                   f"compression dictionaries and rebuild {', '.join(report.projections_rebuilt) or 'no projections'}")
    else:
        click.echo(f"redacted {report.matches} matches in {report.events} events and {report.quarantined_lines} "
                   f"quarantined lines; replaced {report.dictionaries_replaced} dictionaries "
                   f"({report.events_reencoded} events re-encoded); rebuilt "
                   f"{', '.join(report.projections_rebuilt) or 'no projections'}; recorded as audit event "
                   f"{report.audit_position} ({report.pattern_sha256})")
    if not dry_run and not (report.vacuumed and report.wal_truncated):
        warn("other processes kept the database busy, so its file or WAL may still hold the old bytes: "
             "stop them and run the same redact again (it finds nothing more and finishes the cleanup)")
        sys.exit(1)


@click.command("audit")
@json_option
@db_option
def audit_(as_json: bool, db: str | None) -> None:
    """Administrative operations: replay, import, redact, migrations."""
    import msgspec

    from eventstore.audit import listing

    with open_store(db) as store:
        entries = listing(store)
    if as_json:
        emit_json({"audit": entries})
        return
    if not entries:
        click.echo("no administrative operations recorded")
        return
    print_table(None, ["position", "when", "operation", "actor", "details"],
                ((e.position, e.recorded_at, e.operation, e.actor,
                  msgspec.json.encode({k: v for k, v in e.details.items() if k != "positions"}).decode()[:300])
                 for e in entries))


@click.group()
def bench() -> None:
    """Reproducible benchmarks (from a source checkout: they live in benchmarks/)."""


@bench.command("ingest")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A transcript tree to ingest (default: a generated one).")
@click.option("--synthetic-mb", type=click.IntRange(min=1), default=None,
              help="Generate a synthetic tree of about N MB (seeded, cached) and ingest it [default: 100].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic tree.")
@click.option("--skip-tail", is_flag=True, help="Leave out the tail-latency measurement.")
@json_option
def bench_ingest(corpus: Path | None, synthetic_mb: int | None, seed: int, skip_tail: bool, as_json: bool) -> None:
    """Ingest throughput against the storage ceiling, re-ingest, tail latency, peak RSS, size."""
    from eventstore.bench import run_ingest

    if corpus is not None and synthetic_mb is not None:
        raise click.UsageError("give --corpus or --synthetic-mb, not both")
    result = run_ingest(corpus=corpus, synthetic_mb=synthetic_mb, seed=seed, skip_tail=skip_tail)
    if as_json:
        emit_json(result)
    else:
        from eventstore.bench import print_ingest

        print_ingest(result)
