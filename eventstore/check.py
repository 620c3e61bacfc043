"""`eventstore check`: is the database sound, the log whole, every projection where it should be?

Checks, in order:

- SQLite's own `PRAGMA integrity_check` (https://www.sqlite.org/pragma.html#pragma_integrity_check);
- the log's invariants: positions gap-free from 1 and the AUTOINCREMENT sequence at the last
  one (a removed tail shows), every stream's versions contiguous from 1 with the `streams`
  table at the last, every event's stream, client and dictionary present, the append-only
  triggers in place, every payload decodes;
- every projection's checkpoint at its code version and not beyond the log head; events a
  projection could not apply (`projection_errors`) are problems, quarantined lines are counted
  but are not (quarantine is where undecodable input belongs);
- with `deep`, each projection is rebuilt from the log into scratch tables (`chk_` prefix, the
  projection's own `create` and `apply`, in batches like the runner) up to the live
  checkpoint and compared table by table with the live one; the scratch tables are dropped.

Nothing here changes the log. `deep` writes scratch tables (and, for the vectors projection,
embeds what is queued in the live and the scratch index so the two can be compared).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from eventstore import payloads
from eventstore.errors import EventStoreError
from eventstore.storage import translated
from eventstore.store import Store

SCRATCH = "chk_"
"""Prefix of a deep check's scratch tables (the runner's rebuilds use r<generation>_)."""
DECODE_BATCH = 5_000
LISTED = 10
"""How many offending positions or streams a problem names (the count says how many in all)."""
TRIGGERS = {
    "events_append_only_update": "BEFORE UPDATE ON events",
    "events_append_only_delete": "BEFORE DELETE ON events",
    "blocks_append_only_update": "BEFORE UPDATE ON blocks",
    "blocks_append_only_delete": "BEFORE DELETE ON blocks",
    "stream_index_append_only_update": "BEFORE UPDATE ON stream_index",
    "stream_index_append_only_delete": "BEFORE DELETE ON stream_index",
}


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong: which check found it, and what to do about it."""

    check: str
    message: str


class CheckReport(msgspec.Struct, kw_only=True):
    """The `check --json` document."""

    ok: bool = True
    problems: list[Problem] = msgspec.field(default_factory=list)
    checks: dict[str, Any] = msgspec.field(default_factory=dict)

    def problem(self, check: str, message: str) -> None:
        self.ok = False
        self.problems.append(Problem(check, message))


Progress = Callable[[str], None]


def check(store: Store, *, deep: bool = False, progress: Progress | None = None) -> CheckReport:
    """Run every check on an open store and report what is wrong (nothing is repaired)."""
    report = CheckReport()
    say = progress or (lambda _step: None)
    say("integrity")
    check_integrity(store, report)
    say("log")
    check_log(store, report)
    say("payloads")
    check_payloads(store, report)
    say("projections")
    runner = check_projections(store, report)
    if deep and runner is not None:
        say("deep")
        check_deep(store, runner, report, say)
    return report


# ---------------------------------------------------------------- the database and the log


def check_integrity(store: Store, report: CheckReport) -> None:
    """SQLite's integrity check of every table and index."""
    with translated(store.path):
        rows = [r[0] for r in store.db.conn.execute("PRAGMA integrity_check(100)").fetchall()]
    ok = rows == ["ok"]
    report.checks["integrity"] = {"ok": ok, "messages": [] if ok else rows}
    if not ok:
        report.problem("integrity", f"SQLite reports damage: {'; '.join(rows[:LISTED])}; restore from a backup")


def check_log(store: Store, report: CheckReport) -> None:
    """Positions, stream versions, references and triggers, in one consistent snapshot."""
    with store.db.read() as conn:
        q = lambda sql, params=(): conn.execute(sql, params).fetchall()  # noqa: E731
        count, first, last = q("SELECT count(*), coalesce(min(position), 0), coalesce(max(position), 0) FROM events")[0]
        sequence = q("SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'events'")[0][0]
        streams = q("SELECT count(*) FROM streams")[0][0]
        summary: dict[str, Any] = {"events": count, "head": last, "sequence": sequence, "streams": streams}
        report.checks["log"] = summary

        if count and (first != 1 or last != count):
            missing = [p for p in range(1, first)][:LISTED] if first > 1 else []
            missing += [r[0] for r in q(
                "SELECT position + 1 FROM events e WHERE position < ? AND NOT EXISTS"
                " (SELECT 1 FROM events WHERE position = e.position + 1) ORDER BY position LIMIT ?",
                (last, LISTED))]
            report.problem("log.positions", f"positions are not gap-free: {last - count} missing between 1 and "
                           f"{last} (first gaps at {', '.join(map(str, missing[:LISTED]))})")
        if sequence != last:
            report.problem("log.positions", f"the position sequence is at {sequence} but the log ends at {last}: "
                           f"{sequence - last} events were removed from its end" if sequence > last else
                           f"the position sequence ({sequence}) is behind the log's end ({last})")

        bad_streams = q(
            "SELECT s.name, s.version, coalesce(e.n, 0), coalesce(e.lo, 0), coalesce(e.hi, 0) FROM streams s"
            " LEFT JOIN (SELECT stream_no, count(*) AS n, count(DISTINCT version) AS d, min(version) AS lo,"
            "            max(version) AS hi FROM events GROUP BY stream_no) e USING (stream_no)"
            " WHERE coalesce(e.n, 0) != s.version OR coalesce(e.hi, 0) != s.version OR (e.n > 0 AND e.lo != 1)"
            " OR e.d != e.n")
        summary["streams_inconsistent"] = len(bad_streams)
        if bad_streams:
            named = ", ".join(f"{name!r} (table says {version}, events {lo}..{hi}, {n} of them)"
                              for name, version, n, lo, hi in bad_streams[:LISTED])
            report.problem("log.streams", f"{len(bad_streams)} streams' versions are not contiguous from 1 up to "
                           f"the streams table's version: {named}")
        unindexed = q(
            "SELECT s.name FROM streams s"
            " LEFT JOIN (SELECT stream_no, count(*) AS n, max(version) AS hi FROM events GROUP BY stream_no) e"
            "  USING (stream_no)"
            " LEFT JOIN (SELECT stream_no, sum(last_version - first_version + 1) AS n, max(last_version) AS hi"
            "  FROM stream_index GROUP BY stream_no) i USING (stream_no)"
            " WHERE coalesce(i.n, 0) != coalesce(e.n, 0) OR coalesce(i.hi, 0) != coalesce(e.hi, 0)")
        summary["streams_unindexed"] = len(unindexed)
        if unindexed:
            report.problem("log.stream_index", f"{len(unindexed)} streams' versions are not all in the stream index, "
                           f"so reading them by stream misses events: {', '.join(repr(n) for (n,) in unindexed[:LISTED])}")
        bad_ops = q("SELECT count(*) FROM events WHERE op_no NOT IN"
                    " (SELECT name_no FROM names WHERE name IN ('create', 'update', 'delete', 'link', 'unlink'))")[0][0]
        summary["events_with_unknown_op"] = bad_ops
        if bad_ops:
            report.problem("log.ops", f"{bad_ops} events have an op other than create, update, delete, link, unlink")
        for what, sql in (
            ("stream", "SELECT count(*) FROM events WHERE stream_no NOT IN (SELECT stream_no FROM streams)"),
            ("client", "SELECT count(*) FROM events WHERE client_no NOT IN (SELECT client_no FROM clients)"),
            ("name", "SELECT count(*) FROM events WHERE type_no NOT IN (SELECT name_no FROM names)"
                     " OR entity_no NOT IN (SELECT name_no FROM names) OR actor_no NOT IN (SELECT name_no FROM names)"),
            ("dictionary", "SELECT count(*) FROM events WHERE dict_id > 0"
                           " AND dict_id NOT IN (SELECT dict_id FROM dictionaries)"),
            ("block", "SELECT count(*) FROM events WHERE block_id IS NOT NULL"
                      " AND block_id NOT IN (SELECT block_id FROM blocks)"),
            ("block dictionary", "SELECT count(*) FROM blocks WHERE dict_id > 0"
                                 " AND dict_id NOT IN (SELECT dict_id FROM dictionaries)"),
        ):
            orphans = q(sql)[0][0]
            summary[f"events_without_{what.replace(' ', '_')}"] = orphans
            if orphans:
                report.problem("log.references", f"{orphans} events refer to a {what} that is not in the database")

        triggers = dict(q("SELECT name, sql FROM sqlite_schema WHERE type = 'trigger'"
                          " AND tbl_name IN ('events', 'blocks', 'stream_index')"))
        present = [name for name, clause in TRIGGERS.items()
                   if clause in (triggers.get(name) or "") and "RAISE(ABORT" in (triggers.get(name) or "")]
        summary["append_only_triggers"] = present
        missing_triggers = sorted(set(TRIGGERS) - set(present))
        if missing_triggers:
            report.problem("log.triggers", f"the append-only trigger{'s' if len(missing_triggers) > 1 else ''} "
                           f"{', '.join(missing_triggers)} {'are' if len(missing_triggers) > 1 else 'is'} missing: "
                           "the events table can be changed in place")


def check_payloads(store: Store, report: CheckReport) -> None:
    """Decompress every payload (each with the dictionary its event names)."""
    decoded = failed = 0
    failures: list[str] = []
    after = 0
    codec = store.codec
    while True:
        with store.db.read() as conn:
            rows = conn.execute("SELECT position, dict_id, data, block_id FROM events WHERE position > ?"
                                " ORDER BY position LIMIT ?", (after, DECODE_BATCH)).fetchall()
            try:
                payloads.read(conn, codec, rows)  # the whole batch at once: each block decoded once
                decoded += len(rows)
                rows_to_blame = []
            except EventStoreError:
                raise
            except Exception:
                rows_to_blame = rows
            for row in rows_to_blame:
                try:
                    payloads.read(conn, codec, [row])
                except EventStoreError:
                    raise
                except Exception as exc:  # zstd errors, a missing dictionary or block: all say the same
                    failed += 1
                    if len(failures) < LISTED:
                        failures.append(f"{row[0]} ({type(exc).__name__}: {exc})")
                else:
                    decoded += 1
        if not rows:
            break
        after = rows[-1][0]
    report.checks["payloads"] = {"decoded": decoded, "failed": failed}
    if failed:
        report.problem("log.payloads", f"{failed} payloads do not decode: {'; '.join(failures)}")


# ---------------------------------------------------------------- projections


def check_projections(store: Store, report: CheckReport):
    """Checkpoints against code versions and the head; projection errors; quarantine. Returns the runner."""
    with store.db.read() as conn:
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
    report.checks["quarantine"] = {"lines": quarantined}
    try:
        from projections.runner import Runner
    except ImportError:
        report.checks["projections"] = {}
        return None
    runner = Runner.for_store(store)
    statuses = runner.status()
    found: dict[str, Any] = {}
    total_errors = 0
    for status in statuses:
        entry = {"version": status.version, "stored_version": status.stored_version, "position": status.position,
                 "head": status.head, "errors": status.errors, "built": status.stored_version is not None}
        found[status.name] = entry
        total_errors += status.errors
        if status.stored_version is None:
            continue  # never built: the next catch-up builds it; nothing is wrong with what exists
        if status.stored_version != status.version:
            report.problem("projections.version", f"projection {status.name} was built at version "
                           f"{status.stored_version!r}, the code is at {status.version!r}: "
                           f"run `eventstore replay --projection {status.name}`")
        if status.position > status.head:
            report.problem("projections.checkpoint", f"projection {status.name}'s checkpoint ({status.position}) is "
                           f"beyond the log head ({status.head}): it holds events the log does not; "
                           f"run `eventstore replay --projection {status.name}`")
        if status.errors:
            report.problem("projections.errors", f"projection {status.name} could not apply {status.errors} events "
                           "(table projection_errors says why); fix the projection, then replay it")
    with store.db.read() as conn:
        unknown = [name for (name,) in conn.execute("SELECT name FROM projection_checkpoints").fetchall()
                   if name not in runner.projections]
    report.checks["projections"] = found
    report.checks["projection_errors"] = total_errors
    if unknown:
        report.checks["uninstalled_projections"] = unknown
    return runner


def check_deep(store: Store, runner, report: CheckReport, say: Progress) -> None:
    """Rebuild each built, current projection into scratch tables and compare them with the live ones."""
    deep: dict[str, Any] = {}
    report.checks["deep"] = deep
    try:
        with _deep_lock(store.path):
            for name, projection in runner.projections.items():
                status = report.checks["projections"].get(name, {})
                if not status.get("built") or status.get("stored_version") != projection.version:
                    deep[name] = {"compared": False, "reason": "not built at its code version"}
                    continue
                say(f"deep {name}")
                result = compare_with_rebuild(store, projection, runner.batch_size)
                deep[name] = result
                for table, diff in result["tables"].items():
                    if diff["live_only"] or diff["rebuilt_only"]:
                        report.problem("deep", f"projection {name}: table {table} differs from a rebuild from the "
                                       f"log at position {result['position']} ({diff['live_only']} rows only live, "
                                       f"{diff['rebuilt_only']} only rebuilt); "
                                       f"run `eventstore replay --projection {name}`")
    except _DeepBusy:
        report.problem("deep", "another `check --deep` is running on this database; try again when it finishes")


class _DeepBusy(Exception):
    pass


@contextlib.contextmanager
def _deep_lock(path: Path) -> Iterator[None]:
    """One deep check at a time per database (they share the scratch prefix); released on a crash."""
    fd = os.open(f"{path}.check-lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _DeepBusy from None
        yield
    finally:
        os.close(fd)


def compare_with_rebuild(store: Store, projection, batch_size: int, attempts: int = 5) -> dict[str, Any]:
    """Build `projection` under the scratch prefix up to its live checkpoint and compare, table by table."""
    from projections.base import payload_types

    vectors = projection.name == "vectors"
    if vectors:
        from projections.vectors import embed_pending, ensure_sqlite_vec

        ensure_sqlite_vec(store)
    _drop_scratch(store, projection)
    with store.transaction() as tx:
        projection.create(tx, SCRATCH)
    try:
        built, failed = 0, []
        result: dict[str, Any] = {}
        for attempt in range(attempts + 1):
            final = attempt == attempts
            # The last attempt holds the write lock from catch-up to comparison: writers wait.
            guard = store.transaction() if final else contextlib.nullcontext()
            with guard:
                target = _live_position(store, projection.name)
                while built < target:
                    with store.transaction() as tx:
                        events = store.read_all(built, batch_size, types=projection.handles,
                                                payload_types=payload_types(projection))
                        events = [e for e in events if e.position <= target]
                        upto = events[-1].position if len(events) == batch_size else target
                        failed += _apply_isolated(tx, projection, events)
                    built = upto
                if vectors:
                    embed_pending(store)
                    embed_pending(store, prefix=SCRATCH)
                with store.db.read() as conn:
                    if not final and _live_position(store, projection.name) != target:
                        continue  # the live projection moved meanwhile: catch up again
                    result = {"compared": True, "position": target, "rebuild_failures": len(failed),
                              "tables": _compare_tables(conn, projection)}
                    break
        return result
    finally:
        _drop_scratch(store, projection)


def _live_position(store: Store, name: str) -> int:
    with store.db.read() as conn:
        rows = conn.execute("SELECT position FROM projection_checkpoints WHERE name = ?", (name,)).fetchall()
    return rows[0][0] if rows else 0


def _apply_isolated(tx, projection, events: Sequence) -> list[int]:
    """Apply a batch like the runner does: if it fails, event by event, skipping those that fail."""
    if not events:
        return []
    conn = tx.store.db.conn

    def undo(savepoint: str) -> None:
        if conn.in_transaction:  # a full disk or an I/O error rolls back the whole transaction
            tx.execute(f"ROLLBACK TO {savepoint}")
            tx.execute(f"RELEASE {savepoint}")

    tx.execute("SAVEPOINT check_batch")
    try:
        with translated(tx.store.path):
            projection.apply(tx, events, SCRATCH)
    except EventStoreError:
        undo("check_batch")
        raise
    except Exception:
        tx.execute("ROLLBACK TO check_batch")
    else:
        tx.execute("RELEASE check_batch")
        return []
    failed = []
    for event in events:
        tx.execute("SAVEPOINT check_event")
        try:
            with translated(tx.store.path):
                projection.apply(tx, [event], SCRATCH)
        except EventStoreError:
            undo("check_event")
            undo("check_batch")
            raise
        except Exception:
            tx.execute("ROLLBACK TO check_event")
            failed.append(event.position)
        tx.execute("RELEASE check_event")
    tx.execute("RELEASE check_batch")
    return failed


def _compare_tables(conn, projection) -> dict[str, dict[str, int]]:
    """For each table the projection owns: rows only in the live table, rows only in the rebuilt one."""
    out: dict[str, dict[str, int]] = {}
    comparable = getattr(projection, "comparable_rows", None)
    for table in projection.tables:
        live, rebuilt = table, SCRATCH + table
        rows = comparable(conn, table, "") if comparable is not None else None
        if rows is not None:  # stored rows that depend on how the log was split into batches
            again = comparable(conn, table, SCRATCH)
            out[table] = {"live_only": len(rows - again), "rebuilt_only": len(again - rows)}
            continue
        kind = _table_kind(conn, live)
        if kind == "fts5":
            out[table] = _compare_fts5(conn, live, rebuilt)
            continue
        where = ""
        if table == "vec_state":  # the vec0 table's name is generated anew by each create
            where = " WHERE key != 'index'"
        out[table] = _compare_rows(conn, f"SELECT * FROM {_quote(live)}{where}",
                                   f"SELECT * FROM {_quote(rebuilt)}{where}")
    if "vec_state" in projection.tables:
        live_index = _vec_index(conn, "")
        rebuilt_index = _vec_index(conn, SCRATCH)
        if live_index and rebuilt_index:
            columns = ", ".join(["rowid"] + [_quote(r[1]) for r in
                                             conn.execute(f"PRAGMA table_info({_quote(live_index)})").fetchall()])
            out["vec_index"] = _compare_rows(conn, f"SELECT {columns} FROM {_quote(live_index)}",
                                             f"SELECT {columns} FROM {_quote(rebuilt_index)}")
    return out


def _compare_rows(conn, left: str, right: str) -> dict[str, int]:
    live_only = conn.execute(f"SELECT count(*) FROM ({left} EXCEPT {right})").fetchall()[0][0]
    rebuilt_only = conn.execute(f"SELECT count(*) FROM ({right} EXCEPT {left})").fetchall()[0][0]
    return {"live_only": live_only, "rebuilt_only": rebuilt_only}


def _compare_fts5(conn, live: str, rebuilt: str) -> dict[str, int]:
    """Compare two FTS5 indexes by their term instances (their segment layout differs by history)."""
    vocab = []
    for i, table in enumerate((live, rebuilt)):
        name = f"chk_vocab_{i}"
        conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
        conn.execute(f"CREATE VIRTUAL TABLE temp.{name} USING fts5vocab(main, {_literal(table)}, 'instance')")
        vocab.append(f"temp.{name}")
    try:
        return _compare_rows(conn, f"SELECT * FROM {vocab[0]}", f"SELECT * FROM {vocab[1]}")
    finally:
        for name in vocab:
            conn.execute(f"DROP TABLE IF EXISTS {name}")


def _table_kind(conn, name: str) -> str:
    rows = conn.execute("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (name,)).fetchall()
    sql = (rows[0][0] or "") if rows else ""
    return "fts5" if sql.upper().startswith("CREATE VIRTUAL TABLE") and "USING FTS5" in sql.upper() else "table"


def _vec_index(conn, prefix: str) -> str | None:
    try:
        rows = conn.execute(f"SELECT value FROM {_quote(prefix + 'vec_state')} WHERE key = 'index'").fetchall()
    except Exception:  # no such table
        return None
    return rows[0][0] if rows else None


def _drop_scratch(store: Store, projection) -> None:
    """Drop a deep check's scratch tables for this projection (and its scratch vec0 index)."""
    with store.transaction() as tx:
        present = {name for (name,) in tx.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        if SCRATCH + "vec_state" in present:
            index = tx.execute(f"SELECT value FROM {_quote(SCRATCH + 'vec_state')} WHERE key = 'index'")
            live = _vec_index_tx(tx)
            if index and index[0][0] in present and index[0][0] != live:
                tx.execute(f"DROP TABLE {_quote(index[0][0])}")
        for table in projection.tables:
            if SCRATCH + table in present:
                tx.execute(f"DROP TABLE {_quote(SCRATCH + table)}")


def _vec_index_tx(tx) -> str | None:
    try:
        rows = tx.execute("SELECT value FROM vec_state WHERE key = 'index'")
    except Exception:
        return None
    return rows[0][0] if rows else None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
