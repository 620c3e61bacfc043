"""The projection runner: keeps every read model at the head of the log, exactly once.

A `Runner` drives a list of projections over one `Store`:

* `catch_up()` applies what each projection has not seen, in batches of `batch_size` events,
  one write transaction per batch. The projection's rows and its checkpoint (name, version,
  position, generation) commit together, so a crash repeats and loses nothing. A long way
  behind, it is helped as a rebuild is (below).
* Inline projections also run in the append transaction itself (a `store.after_append`
  hook), when their checkpoint is exactly at the start of what is being appended and the
  append is smaller than `INLINE_MAX` events; otherwise they are left to `catch_up`.
* `rebuild(names)` (the `replay` command, or a projection whose `version` changed) builds
  fresh tables under the prefix `r<generation>_` in batches (of `rebuild_batch_size`) while
  writers carry on, then in
  one final transaction applies what arrived meanwhile, drops the live tables and renames the
  new ones into their place. Readers see the old tables until that commit. When every
  projection rebuilt has `facts`/`apply_facts` (projections.base), forked helper processes read
  and decode ranges of the log in parallel, and the runner applies their facts in log order
  (projections.facts).
* An event whose `apply` raises is isolated (the batch is retried one event at a time inside
  savepoints), recorded in `projection_errors` with the reason, and skipped; other events and
  other projections carry on.

Projections are found through the entry-point group `eventstore.projections` (each entry
point is a projection class or a zero-argument factory). Owns the tables
`projection_checkpoints`, `projection_errors` and `projection_rebuilds` (DDL below).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib.metadata
import os
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path

import msgspec

from eventstore.errors import EventStoreError
from eventstore.storage import now_ms, translated
from eventstore.store import BatchReader, Store
from eventstore.transaction import Transaction
from projections.base import ENTRY_POINT_GROUP, Projection, payload_types
from projections.facts import Failed, FactsPool, fork_is_safe, has_facts, helper_count
from schemas import lean
from schemas.envelope import RecordedEvent

__all__ = [
    "BATCH_SIZE",
    "INLINE_MAX",
    "REBUILD_BATCH_SIZE",
    "CatchUpReport",
    "ProjectionError",
    "ProjectionStatus",
    "RebuildBusy",
    "ReplayReport",
    "Runner",
    "UnknownProjection",
    "check_tables",
    "discover",
    "reserved_tables",
]

BATCH_SIZE = 5_000
"""Events per write transaction: large enough to amortise a commit, small enough not to hold
the write lock for long."""
INLINE_MAX = 1_000
"""Appends of this many events or more are left to `catch_up` (a bulk ingest's batches; a tail's
never are): applied afterwards, with helper processes when the log behind is long, they cost
less than here, one batch at a time in the ingesting process, and the append's write
transaction stays short."""
REBUILD_BATCH_SIZE = 20_000
"""Events per write transaction of a rebuild (unless the runner was given a batch size of its
own): every commit rewrites each page its batch touched, and keys spread at random
(usage_entries' id index) touch most pages of their tables in any batch, so fewer, larger
batches write far less. On the 500 MB tree such a batch holds the write lock
about half a second."""

DDL = """
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name       TEXT PRIMARY KEY,
    version    TEXT NOT NULL,     -- the projection's version when its tables were built
    position   INTEGER NOT NULL,  -- every event up to here has been applied
    generation INTEGER NOT NULL,  -- the rebuild that built the live tables (0: built in place)
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Events a projection could not apply: skipped, kept here with the reason.
CREATE TABLE IF NOT EXISTS projection_errors (
    name        TEXT NOT NULL,
    position    INTEGER NOT NULL,
    generation  INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (name, position)
) WITHOUT ROWID;

-- Rebuilds under way: which generation, how far, of which version. A row left by an interrupted
-- rebuild for a new version is resumed by the next one for the same versions; any other
-- rebuild drops it, with the tables it names.
CREATE TABLE IF NOT EXISTS projection_rebuilds (
    name       TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version    TEXT
) WITHOUT ROWID;
"""

_OWN_TABLES = ("projection_checkpoints", "projection_errors", "projection_rebuilds")
_GENERATION_TABLE = re.compile(r"^r(\d+)_(.+)$")
_CREATE_TABLE = re.compile(r"CREATE\s+(?:VIRTUAL\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[\"`\[]?(\w+)", re.IGNORECASE)
_REASON_MAX = 1_000


class ReplayReport(msgspec.Struct, kw_only=True):
    """What a rebuild did (the `replay --json` document)."""

    events: int
    seconds: float
    events_per_second: float
    projections: list[str]
    helpers: int = 0
    """Helper processes that read the log (projections.facts); 0: the rebuild read it alone."""


class CatchUpReport(msgspec.Struct, kw_only=True):
    """What a catch-up did: events read, projections rebuilt for a new version, errors recorded."""

    events: int = 0
    seconds: float = 0.0
    rebuilt: list[str] = msgspec.field(default_factory=list)
    skipped: list[str] = msgspec.field(default_factory=list)
    errors: int = 0


class ProjectionStatus(msgspec.Struct, kw_only=True):
    """Where one projection stands."""

    name: str
    version: str
    stored_version: str | None
    position: int
    head: int
    generation: int
    inline: bool
    errors: int


class ProjectionError(msgspec.Struct, frozen=True, kw_only=True):
    """An event a projection could not apply, and why."""

    name: str
    position: int
    reason: str
    recorded_at: int


class UnknownProjection(EventStoreError):
    """A projection name that no installed projection has."""

    def __init__(self, names: Iterable[str], known: Iterable[str]) -> None:
        super().__init__(
            f"no projection named {', '.join(sorted(names))}; "
            f"known: {', '.join(sorted(known)) or '(none installed)'}"
        )


class RebuildBusy(EventStoreError):
    """Another process is rebuilding projections of this database."""


class _Checkpoint(msgspec.Struct):
    version: str
    position: int
    generation: int


def discover() -> list[Projection]:
    """Instantiate every projection registered under the `eventstore.projections` entry points.

    A broken entry point is reported as a warning and left out, so one faulty plug-in cannot
    stop ingestion or the other projections.
    """
    found: dict[str, Projection] = {}
    for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            target = entry.load()
            projection = target() if callable(target) else target
        except Exception as exc:  # a plug-in's own bug: report, do not crash
            warnings.warn(f"projection entry point {entry.name!r} failed to load: {exc}", RuntimeWarning,
                          stacklevel=2)
            continue
        if not isinstance(projection, Projection):
            warnings.warn(f"projection entry point {entry.name!r} is not a Projection; ignored",
                          RuntimeWarning, stacklevel=2)
            continue
        if projection.name in found:
            warnings.warn(f"two projections are named {projection.name!r}; keeping the first",
                          RuntimeWarning, stacklevel=2)
            continue
        try:
            check_tables([*found.values(), projection])
        except ValueError as exc:
            warnings.warn(f"projection entry point {entry.name!r} ignored: {exc}", RuntimeWarning, stacklevel=2)
            continue
        found[projection.name] = projection
    return list(found.values())


def reserved_tables() -> frozenset[str]:
    """Tables no projection may own: the log's (from its migrations) and the runner's."""
    from eventstore.storage import migrations

    names = {m.group(1).lower() for _, _, sql in migrations() for m in _CREATE_TABLE.finditer(sql)}
    return frozenset(names | {"migrations"} | set(_OWN_TABLES))


def check_tables(projections: Iterable[Projection]) -> None:
    """Refuse projections whose tables are the log's, the runner's, SQLite's or another projection's.

    The runner drops a projection's tables when it builds or swaps them; the append-only
    triggers do not stop DROP TABLE, so this check is what keeps a projection off the log.
    """
    reserved = reserved_tables()
    owners: dict[str, str] = {}
    for projection in projections:
        if not projection.tables:
            raise ValueError(f"projection {projection.name!r} declares no tables")
        for table in projection.tables:
            lowered = table.lower()
            if lowered in reserved or lowered.startswith("sqlite_") or _GENERATION_TABLE.match(lowered):
                raise ValueError(f"projection {projection.name!r} may not own table {table!r}")
            if lowered in owners and owners[lowered] != projection.name:
                raise ValueError(f"projections {owners[lowered]!r} and {projection.name!r} both own table {table!r}")
            owners[lowered] = projection.name


class Runner:
    """Keeps a set of projections of one store up to date: catch-up, inline apply, rebuild."""

    def __init__(
        self,
        store: Store,
        projections: Iterable[Projection],
        *,
        batch_size: int = BATCH_SIZE,
        rebuild_batch_size: int | None = None,
        helpers: int | None = None,
    ) -> None:
        self.store = store
        self.projections: dict[str, Projection] = {}
        for projection in projections:
            if projection.name in self.projections:
                raise ValueError(f"two projections are named {projection.name!r}")
            self.projections[projection.name] = projection
        check_tables(self.projections.values())
        self.batch_size = batch_size
        self.rebuild_batch_size = rebuild_batch_size or (REBUILD_BATCH_SIZE if batch_size == BATCH_SIZE else batch_size)
        self.helpers = helper_count() if helpers is None else helpers
        """Processes a rebuild reads the log with (see projections.facts); fewer than two: none."""
        self._ensure_schema()
        store.after_append.append(self._after_append)

    @classmethod
    def for_store(cls, store: Store, *, batch_size: int = BATCH_SIZE) -> Runner:
        """The runner attached to a store, made (with the installed projections) on first use.

        Returns the same runner for the same store, so its inline hook is registered once.
        """
        for hook in store.after_append:
            runner = getattr(hook, "__self__", None)
            if isinstance(runner, Runner):
                return runner
        return cls(store, discover(), batch_size=batch_size)

    def close(self) -> None:
        """Detach the inline hook from the store."""
        with contextlib.suppress(ValueError):
            self.store.after_append.remove(self._after_append)

    def names(self) -> list[str]:
        """The names of the projections this runner drives."""
        return list(self.projections)

    # Catching up

    def catch_up(self, names: Collection[str] | None = None, stop: threading.Event | None = None) -> CatchUpReport:
        """Bring projections (all, or those named) to the head of the log.

        A projection never built gets empty tables at position 0. One far behind the head (a
        first build, a large ingest) is advanced in place with helper processes working out what
        each range adds, when the gap is long enough for them and it can be helped
        (`_helpers_for`); the rest batch by batch. One whose stored version differs from its code is
        rebuilt into fresh tables and swapped in (unless another process is already rebuilding,
        in which case it is left as it is and listed in `skipped`).

        Once `stop` is set (Ctrl-C), catching up ends at its next commit, within a range or a
        batch: what was applied stays, and the next catch-up goes on from there. That holds for a
        rebuild for a new version too: its half-built tables stay aside, the live ones are left as
        they were, and the next catch-up resumes the rebuild where it stopped.
        """
        stop = stop or threading.Event()
        started = time.perf_counter()
        report = CatchUpReport()
        chosen = self._select(names)
        checkpoints = self._checkpoints()
        stale = [p for p in chosen if p.name in checkpoints and checkpoints[p.name].version != p.version]
        if stale and not stop.is_set():
            try:
                rebuilt = self._rebuild(stale, stop=stop, resume=True)
            except RebuildBusy:
                report.skipped.extend(p.name for p in stale)
            else:
                if not stop.is_set():  # else it stopped short, to be resumed
                    report.rebuilt.extend(rebuilt.projections)
                report.events += rebuilt.events
            checkpoints = self._checkpoints()
        fresh = [p for p in chosen if p.name not in checkpoints]
        if fresh:
            with self.store.transaction() as tx:
                checkpoints = self._checkpoints(tx)
                for projection in fresh:
                    if projection.name in checkpoints:  # another process got there first
                        continue
                    _drop_tables(tx, projection.tables, "")
                    projection.create(tx, "")
                    self._save_checkpoint(tx, projection, 0, 0)
            checkpoints = self._checkpoints()
        groups: dict[int, list[Projection]] = {}
        for projection in chosen:
            checkpoint = checkpoints.get(projection.name)
            if checkpoint is not None and checkpoint.version == projection.version:
                groups.setdefault(checkpoint.position, []).append(projection)
        for position, group in sorted(groups.items()):
            if stop.is_set():
                break
            for events, errors in (self._catch_up_helped(group, position, stop), self._catch_up_group(group, stop)):
                report.events += events
                report.errors += errors
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _catch_up_group(self, group: list[Projection], stop: threading.Event) -> tuple[int, int]:
        """Advance projections that share a checkpoint position to the head, batch by batch."""
        total = errors = 0
        active = list(group)
        while active and not stop.is_set():
            if not self.behind([p.name for p in active]):  # a read: having nothing to do takes no write lock
                break
            with self.store.transaction() as tx:
                checkpoints = self._checkpoints(tx)
                # Another process (or the inline hook) may have moved some of them meanwhile.
                positions = {p.name: checkpoints[p.name].position for p in active
                             if p.name in checkpoints and checkpoints[p.name].version == p.version}
                active = [p for p in active if p.name in positions]
                if not active:
                    break
                after = min(positions.values())
                behind = [p for p in active if positions[p.name] == after]
                head = tx.head()
                if after >= head:
                    break
                events = self._read(behind, after)
                done = len(events) < self.batch_size
                upto = head if done else events[-1].position
                total += len(events)
                for projection in behind:
                    generation = checkpoints[projection.name].generation
                    errors += self._apply(tx, projection, _handled(projection, events), "", generation)
                    self._save_checkpoint(tx, projection, upto, generation)
                lean.forget()
            if done and len(behind) == len(active):
                break
        return total, errors

    # Inline

    def _after_append(self, tx: Transaction) -> None:
        """Apply newly appended events to inline projections inside the append transaction."""
        inline = [p for p in self.projections.values() if p.inline]
        span = tx.appended_range()
        if not inline or span is None or span[1] - span[0] + 1 >= INLINE_MAX:
            return
        first, last = span
        wanted: set[str] | None = set()
        for projection in inline:
            if projection.handles is None:
                wanted = None
                break
            wanted |= set(projection.handles)
        appended = tx.appended_events(wanted)
        checkpoints = self._checkpoints(tx)
        for projection in inline:
            checkpoint = checkpoints.get(projection.name)
            if checkpoint is None or checkpoint.version != projection.version or checkpoint.position != first - 1:
                continue  # not built, stale, or behind: catch_up's business
            tx.execute("SAVEPOINT projection_inline")
            try:
                self._apply(tx, projection, _handled(projection, appended), "", checkpoint.generation)
                self._save_checkpoint(tx, projection, last, checkpoint.generation)
            except Exception:
                if not tx.in_transaction:
                    raise  # SQLite rolled everything back (a full disk): the append itself failed
                # Never fail an append because of a read model: leave these events to catch_up.
                tx.execute("ROLLBACK TO projection_inline")
            tx.execute("RELEASE projection_inline")
        lean.forget()

    # Rebuilding

    def rebuild(
        self,
        names: Collection[str] | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReplayReport:
        """Rebuild projections (all, or those named) from position 0 into fresh tables, then swap.

        Raises `RebuildBusy` if another process is rebuilding. `progress` is called after each
        batch with (position reached, head).
        """
        return self._rebuild(self._select(names), progress)

    def _rebuild(self, chosen: list[Projection], progress: Callable[[int, int], None] | None = None, *,
                 stop: threading.Event | None = None, resume: bool = False) -> ReplayReport:
        """Rebuild `chosen` into fresh tables and swap them in. Once `stop` is set, stop at the next
        commit without swapping (the report then counts the events read so far). With `resume`,
        go on with the tables of an earlier rebuild of the same projections and versions that
        stopped short, from where it stopped."""
        started = time.perf_counter()
        stop = stop or threading.Event()
        with self._rebuild_lock():
            generation, after = self._start_rebuild(chosen, resume)
            helpers = self._helpers_for(chosen, self.store.head() - after)
            after, total = self._rebuild_from_facts(chosen, generation, progress, helpers, after, stop)
            if not stop.is_set():
                reader = self._reader(chosen)
                try:
                    total += self._rebuild_batches(chosen, reader, generation, progress, after, stop)
                finally:
                    reader.close()
        seconds = time.perf_counter() - started
        return ReplayReport(
            events=total, seconds=round(seconds, 3),
            events_per_second=round(total / seconds, 1) if seconds > 0 else 0.0,
            projections=[p.name for p in chosen], helpers=helpers,
        )

    def _rebuild_batches(self, chosen: list[Projection], reader: BatchReader, generation: int,
                         progress: Callable[[int, int], None] | None, after: int,
                         stop: threading.Event) -> int:
        """Apply the log after `after` to the new tables batch by batch, then swap them in (unless
        `stop` is set first: then stop at the next commit); returns the events read."""
        prefix = f"r{generation}_"
        total = 0
        while True:
            with self.store.transaction() as tx:
                head = tx.head()
                events = reader.read(after)
                total += len(events)
                done = len(events) < self.rebuild_batch_size
                upto = head if done else events[-1].position
                for projection in chosen:
                    self._apply(tx, projection, _handled(projection, events), prefix, generation)
                lean.forget()
                if done:
                    self._swap(tx, chosen, generation, upto)
                else:
                    tx.execute(
                        "UPDATE projection_rebuilds SET position = ?, updated_at = ? WHERE generation = ?",
                        (upto, tx.now, generation),
                    )
            after = upto
            if progress is not None:
                progress(after, max(after, head))
            if done or stop.is_set():
                return total

    def _rebuild_from_facts(self, chosen: list[Projection], generation: int,
                            progress: Callable[[int, int], None] | None, helpers: int, after: int,
                            stop: threading.Event) -> tuple[int, int]:
        """Apply the log after `after` up to the head as it is now with the help of `helpers`
        other processes, which read it and work out each range's facts (projections.facts), or
        until the first commit after `stop` is set; returns (position reached, events read).
        Does nothing, (after, 0), without helpers (`_helpers_for`: a short log, a single core, a
        projection that cannot be helped, or no safe fork)."""
        if not helpers:
            return after, 0
        head = self.store.head()
        prefix = f"r{generation}_"
        generations = dict.fromkeys((p.name for p in chosen), generation)
        total = 0
        with contextlib.closing(self._facts_of_ranges(chosen, after, head, helpers)) as ranges, \
                contextlib.ExitStack() as open_transaction:
            # Ranges are applied as they arrive, into a transaction committed every
            # `rebuild_batch_size` events: the last ranges cost only their own apply after the helpers end.
            tx, applied = None, 0
            for start, through, count, facts in ranges:
                if tx is None:
                    tx = open_transaction.enter_context(self.store.transaction())
                count, _ = self._apply_range(tx, chosen, (start, through), count, facts, prefix, generations)
                total += count
                applied += count
                after = through
                if applied >= self.rebuild_batch_size or through == head:
                    tx.execute("UPDATE projection_rebuilds SET position = ?, updated_at = ? WHERE generation = ?",
                               (after, tx.now, generation))
                    open_transaction.close()  # commits
                    tx, applied = None, 0
                    if progress is not None:
                        progress(after, head)
                    if stop.is_set():
                        break
        return after, total

    def _catch_up_helped(self, group: list[Projection], after: int, stop: threading.Event) -> tuple[int, int]:
        """Advance those of the projections whose checkpoints all stand at `after` that can be
        helped, far behind the head (a first build, a large ingest), in place, with helper
        processes working out each range's facts as a rebuild does; returns (events read, errors
        recorded). Does nothing when helpers would not pay (`_helpers_for` on the gap); stops
        when another process moves one of their checkpoints, or after the range in hand once
        `stop` is set. `_catch_up_group` does the rest."""
        group = [p for p in group if has_facts(p)]
        head = self.store.head()
        helpers = self._helpers_for(group, head - after) if group else 0
        if not helpers:
            return 0, 0
        total = errors = 0
        with contextlib.closing(self._facts_of_ranges(group, after, head, helpers)) as ranges, \
                contextlib.ExitStack() as open_transaction:
            tx, applied, generations = None, 0, {}
            for start, through, count, facts in ranges:
                if tx is None:
                    tx = open_transaction.enter_context(self.store.transaction())
                    checkpoints = self._checkpoints(tx)
                    if any(p.name not in checkpoints or checkpoints[p.name].version != p.version
                           or checkpoints[p.name].position != start for p in group):
                        break  # another process got there first
                    generations = {p.name: checkpoints[p.name].generation for p in group}
                count, failed = self._apply_range(tx, group, (start, through), count, facts, "", generations)
                total += count
                errors += failed
                applied += count
                if applied >= self.rebuild_batch_size or through == head or stop.is_set():
                    for projection in group:
                        self._save_checkpoint(tx, projection, through, generations[projection.name])
                    open_transaction.close()  # commits
                    tx, applied = None, 0
                    if stop.is_set():
                        break
        return total, errors

    def _facts_of_ranges(self, chosen: list[Projection], after: int, head: int,
                         helpers: int) -> Iterator[tuple[int, int, int, list[object] | None]]:
        """(start, through, events read, facts) of each range of the log in (after, head], in log
        order, worked out by `helpers` forked processes (facts None: none could; read it here).
        Call before opening a transaction (see `FactsPool.facts`), and close when done."""
        step = max(1, self.rebuild_batch_size // 4)
        if self.store.codec.training():  # a training thread must not be forked mid-query
            with self.store.db.write() as conn:
                self.store.codec.adopt(conn, now_ms(), wait=True)
        types, payloads = _wanted(chosen)
        spans = [(start, min(start + step, head)) for start in range(after, head, step)]
        with _collector_paused(), \
                FactsPool(self.store.path, chosen, types=types, payload_types=payloads, helpers=helpers) as pool:
            yield from pool.facts(spans)

    def _apply_range(self, tx: Transaction, chosen: list[Projection], span: tuple[int, int], count: int,
                     facts: list[object] | None, prefix: str, generations: dict[str, int]) -> tuple[int, int]:
        """Apply one range of the log to each projection from its facts, or from the events read
        here when no helper could give them (facts None); returns (events read, errors recorded)."""
        errors = 0
        if facts is None:
            types, payloads = _wanted(chosen)
            events = self.store.read_all(span[0], through=span[1], types=types, payload_types=payloads)
            count = len(events)
            for projection in chosen:
                errors += self._apply(tx, projection, _handled(projection, events), prefix,
                                      generations[projection.name])
            lean.forget()
        else:
            for projection, found in zip(chosen, facts):
                errors += self._apply_facts(tx, projection, found, span, prefix, generations[projection.name])
        return count, errors

    def helpers_for(self, names: Collection[str] | None = None) -> int:
        """How many helper processes a rebuild of these projections (all, or those named) would
        read the log with now; 0: it would read it alone."""
        return self._helpers_for(self._select(names), self.store.head())

    def _helpers_for(self, chosen: list[Projection], head: int) -> int:
        if self.helpers < 2 or head <= self.rebuild_batch_size // 4 or not all(has_facts(p) for p in chosen):
            return 0
        return self.helpers if fork_is_safe() else 0

    def _apply_facts(self, tx: Transaction, projection: Projection, facts: object, span: tuple[int, int],
                     prefix: str, generation: int) -> int:
        """Apply one range's facts; if a helper could not work them out or they do not apply, apply
        the range's events here instead (isolating the ones that fail). Returns how many failed."""
        if not isinstance(facts, Failed):
            tx.execute("SAVEPOINT projection_facts")
            try:
                with translated(self.store.path):
                    projection.apply_facts(tx, facts, prefix)
            except EventStoreError:
                if tx.in_transaction:
                    tx.execute("ROLLBACK TO projection_facts")
                    tx.execute("RELEASE projection_facts")
                raise
            except Exception:
                tx.execute("ROLLBACK TO projection_facts")
                tx.execute("RELEASE projection_facts")
            else:
                tx.execute("RELEASE projection_facts")
                return 0
        types, payloads = _wanted([projection])
        events = self.store.read_all(span[0], through=span[1], types=types, payload_types=payloads)
        failed = self._apply(tx, projection, events, prefix, generation)
        lean.forget()
        return failed

    def _start_rebuild(self, chosen: list[Projection], resume: bool) -> tuple[int, int]:
        """The generation to build and the position it stands at. With `resume`, those of an
        earlier rebuild of these projections at these versions that stopped short, if there is
        one; else drop what earlier rebuilds left, pick a fresh generation and create its tables
        (position 0)."""
        with self.store.transaction() as tx:
            if not any(name == "version" for _, name, *_ in tx.execute("PRAGMA table_info(projection_rebuilds)")):
                tx.execute("ALTER TABLE projection_rebuilds ADD COLUMN version TEXT")  # made before resuming existed
            resumable = self._resumable(tx, chosen) if resume else None
            if resumable is not None:
                tx.execute("UPDATE projection_rebuilds SET host = ?, pid = ?, updated_at = ?",
                           (socket.gethostname(), os.getpid(), tx.now))
                return resumable
            self._drop_leftovers(tx)
            generation = 1 + max(
                tx.execute("SELECT coalesce(max(generation), 0) FROM projection_checkpoints")[0][0],
                tx.execute("SELECT coalesce(max(generation), 0) FROM projection_rebuilds")[0][0],
            )
            prefix = f"r{generation}_"
            host, pid = socket.gethostname(), os.getpid()
            for projection in chosen:
                _drop_tables(tx, projection.tables, prefix)
                projection.create(tx, prefix)
                tx.execute(
                    "INSERT OR REPLACE INTO projection_rebuilds"
                    " (name, generation, position, host, pid, started_at, updated_at, version)"
                    " VALUES (?, ?, 0, ?, ?, ?, ?, ?)",
                    (projection.name, generation, host, pid, tx.now, tx.now, projection.version),
                )
        return generation, 0

    def _resumable(self, tx: Transaction, chosen: list[Projection]) -> tuple[int, int] | None:
        """(generation, position) of a rebuild that stopped short, if it was of exactly these
        projections at these versions and its tables are all there (we hold the rebuild lock, so
        nobody is working on it)."""
        rows = tx.execute("SELECT name, generation, position, version FROM projection_rebuilds")
        if {name: version for name, _, _, version in rows} != {p.name: p.version for p in chosen}:
            return None
        if len({(generation, position) for _, generation, position, _ in rows}) != 1:
            return None
        generation, position = rows[0][1], rows[0][2]
        tables = [f"r{generation}_{table}" for p in chosen for table in p.tables]
        found = tx.execute(f"SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN "
                           f"({', '.join('?' * len(tables))})", tables)[0][0]
        return (generation, position) if found == len(tables) else None

    def _drop_leftovers(self, tx: Transaction) -> None:
        """Drop tables of rebuilds that did not finish (a crash, a kill); we hold the rebuild lock."""
        ours = {table for p in self.projections.values() for table in p.tables}
        abandoned = {(name, generation) for name, generation in
                     tx.execute("SELECT name, generation FROM projection_rebuilds")}
        for name, generation in abandoned:
            projection = self.projections.get(name)
            if projection is not None:
                ours.update(projection.tables)
        tables = [name for (name,) in tx.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB 'r[0-9]*_*'")]
        for table in tables:
            match = _GENERATION_TABLE.match(table)
            if match and match.group(2) in ours:
                tx.execute(f"DROP TABLE IF EXISTS {_quote(table)}")
        tx.execute("DELETE FROM projection_rebuilds")

    def _swap(self, tx: Transaction, chosen: list[Projection], generation: int, position: int) -> None:
        """Replace the live tables with the rebuilt ones and store the checkpoint, atomically."""
        prefix = f"r{generation}_"
        for projection in chosen:
            _drop_tables(tx, projection.tables, "")
            for table in projection.tables:
                tx.execute(f"ALTER TABLE {_quote(prefix + table)} RENAME TO {_quote(table)}")
            self._save_checkpoint(tx, projection, position, generation)
            tx.execute("DELETE FROM projection_errors WHERE name = ? AND generation != ?",
                       (projection.name, generation))
            tx.execute("DELETE FROM projection_rebuilds WHERE name = ?", (projection.name,))

    @contextlib.contextmanager
    def _rebuild_lock(self) -> Iterator[None]:
        """One rebuild at a time per database, across processes; released by the OS on a crash."""
        path = Path(f"{self.store.path}.rebuild-lock")
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RebuildBusy(
                    f"{self.store.path}: another process is rebuilding projections; try again when it finishes"
                ) from None
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # Applying

    def _read(self, projections: Sequence[Projection], after: int) -> list[RecordedEvent]:
        """The next batch of events any of these projections handles, payloads only where needed."""
        types, payloads = _wanted(projections)
        return self.store.read_all(after, self.batch_size, types=types, payload_types=payloads)

    def _reader(self, projections: Sequence[Projection]) -> BatchReader:
        """`_read` for a rebuild: one batch ahead, the next batch decompressing while this one applies."""
        types, payloads = _wanted(projections)
        return BatchReader(self.store, self.rebuild_batch_size, types=types, payload_types=payloads)

    def _apply(self, tx: Transaction, projection: Projection, events: Sequence[RecordedEvent],
               prefix: str, generation: int) -> int:
        """Apply a batch; if it fails, isolate the failing events. Returns how many failed."""
        if not events:
            return 0
        tx.execute("SAVEPOINT projection_batch")
        try:
            with translated(self.store.path):
                projection.apply(tx, events, prefix)
        except EventStoreError:
            if tx.in_transaction:  # a full disk rolls back the whole transaction, savepoints too
                tx.execute("ROLLBACK TO projection_batch")
                tx.execute("RELEASE projection_batch")
            raise  # the database itself is in trouble (full, corrupt): not the event's fault
        except Exception:
            tx.execute("ROLLBACK TO projection_batch")
        else:
            tx.execute("RELEASE projection_batch")
            return 0
        failed = []
        for event in events:
            tx.execute("SAVEPOINT projection_event")
            try:
                with translated(self.store.path):
                    projection.apply(tx, [event], prefix)
            except EventStoreError:
                if tx.in_transaction:
                    tx.execute("ROLLBACK TO projection_event")
                    tx.execute("RELEASE projection_event")
                    tx.execute("RELEASE projection_batch")
                raise
            except Exception as exc:
                tx.execute("ROLLBACK TO projection_event")
                failed.append((projection.name, event.position, generation,
                               f"{type(exc).__name__}: {exc}"[:_REASON_MAX], tx.now))
            tx.execute("RELEASE projection_event")
        tx.execute("RELEASE projection_batch")
        tx.executemany(
            "INSERT OR REPLACE INTO projection_errors (name, position, generation, reason, recorded_at)"
            " VALUES (?, ?, ?, ?, ?)",
            failed,
        )
        return len(failed)

    # Checkpoints and status

    def _save_checkpoint(self, tx: Transaction, projection: Projection, position: int, generation: int) -> None:
        tx.execute(
            "INSERT INTO projection_checkpoints (name, version, position, generation, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET version = excluded.version,"
            " position = excluded.position, generation = excluded.generation, updated_at = excluded.updated_at",
            (projection.name, projection.version, position, generation, tx.now),
        )

    def _checkpoints(self, tx: Transaction | None = None) -> dict[str, _Checkpoint]:
        sql = "SELECT name, version, position, generation FROM projection_checkpoints"
        if tx is not None:
            rows = tx.execute(sql)
        else:
            with self.store.db.read() as conn:
                rows = conn.execute(sql).fetchall()
        return {name: _Checkpoint(version, position, generation) for name, version, position, generation in rows}

    def behind(self, names: Collection[str] | None = None) -> dict[str, int]:
        """The events of the log each projection (all, or those named) has yet to read, for those
        with any: the whole log for one never built or built by another version."""
        chosen = self._select(names)
        head = self.store.head()
        checkpoints = self._checkpoints()
        out = {}
        for projection in chosen:
            checkpoint = checkpoints.get(projection.name)
            current = checkpoint is not None and checkpoint.version == projection.version
            left = head - checkpoint.position if current else head
            if left > 0:
                out[projection.name] = left
        return out

    def status(self) -> list[ProjectionStatus]:
        """Where each projection stands: stored version and position against the code and the head."""
        with self.store.db.read() as conn:
            head = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchall()[0][0]
            errors = dict(conn.execute("SELECT name, count(*) FROM projection_errors GROUP BY name").fetchall())
            checkpoints = self._checkpoints()
        out = []
        for projection in self.projections.values():
            checkpoint = checkpoints.get(projection.name)
            out.append(ProjectionStatus(
                name=projection.name, version=projection.version,
                stored_version=checkpoint.version if checkpoint else None,
                position=checkpoint.position if checkpoint else 0, head=head,
                generation=checkpoint.generation if checkpoint else 0,
                inline=bool(projection.inline), errors=errors.get(projection.name, 0),
            ))
        return out

    def errors(self, name: str | None = None) -> list[ProjectionError]:
        """Events that projections (all, or one) could not apply, in log order."""
        sql = "SELECT name, position, reason, recorded_at FROM projection_errors"
        params: tuple = ()
        if name is not None:
            sql += " WHERE name = ?"
            params = (name,)
        with self.store.db.read() as conn:
            rows = conn.execute(sql + " ORDER BY position, name", params).fetchall()
        return [ProjectionError(name=r[0], position=r[1], reason=r[2], recorded_at=r[3]) for r in rows]

    # Internals

    def _select(self, names: Collection[str] | None) -> list[Projection]:
        if names is None:
            return list(self.projections.values())
        unknown = [n for n in names if n not in self.projections]
        if unknown:
            raise UnknownProjection(unknown, self.projections)
        wanted = set(names)
        return [p for p in self.projections.values() if p.name in wanted]

    def _ensure_schema(self) -> None:
        with self.store.db.read() as conn:
            present = {name for (name,) in conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name IN (?, ?, ?)", _OWN_TABLES)}
        if present != set(_OWN_TABLES):
            with self.store.transaction() as tx:
                tx.execute(DDL)


def _wanted(projections: Sequence[Projection]) -> tuple[set[str] | None, set[str] | None]:
    """The event types these projections handle, and those whose payloads they read (None: all)."""
    types: set[str] | None = set()
    payloads: set[str] | None = set()
    for projection in projections:
        if types is not None:
            types = None if projection.handles is None else types | projection.handles
        wanted = payload_types(projection)
        if payloads is not None:
            payloads = None if wanted is None else payloads | wanted
    return types, payloads


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off meanwhile (as it is in the helpers): applying ranges' facts
    allocates millions of short-lived containers and makes no cycles, and collections cost the
    runner 3% of its work."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _handled(projection: Projection, events: list[RecordedEvent]) -> list[RecordedEvent]:
    handles = projection.handles
    if handles is None:
        return events
    return [event for event in events if event.type in handles]


def _drop_tables(tx: Transaction, tables: Iterable[str], prefix: str) -> None:
    for table in tables:
        tx.execute(f"DROP TABLE IF EXISTS {_quote(prefix + table)}")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
