"""Helper processes that read the log and work out projections' facts, for a rebuild.

A projection may split its `apply` in two (see projections.base): `facts(events)`, what a
batch contributes, worked out from the events alone, and `apply_facts(tx, facts, prefix)`,
which folds that into its tables. Reading, decompressing and decoding the log is most of a
rebuild, and none of it needs the database's write lock, so a rebuild hands ranges of the log
to helper processes (one per core): each opens the store read-only, reads its range `CHUNK`
events at a time, hands each chunk to every projection being rebuilt (`facts_builder`), and
returns their facts of the whole range. The runner applies them in log order, in one process,
as it would have applied the events.

Helpers are forked, so they start in milliseconds with the projections already loaded
(pricing included). Where forking is not safe (a thread other than the store's idle pools, a
rebuild started off the main thread, no fork on this platform) there are no helpers: the other
start methods run the program's main module again in each child, which a script calling
`rebuild` may not expect. Results come back in order, at most `AHEAD` ranges ahead of the one
being applied, so memory stays bounded whatever the log's size. A helper that dies, or facts
that will not pickle, cost only speed: the runner reads those ranges itself.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from collections.abc import Iterator, Sequence
from pathlib import Path

from projections.base import Projection
from schemas import lean

__all__ = ["Failed", "FactsPool", "RangeFacts", "fork_is_safe", "has_facts", "helper_count"]

AHEAD = 3
"""Ranges handed out per helper before the oldest result is taken."""
CHUNK = 1_000
"""Events a helper reads at a time and hands to the projections before reading more: about 2.5 MB
of transcript lines, which the decoders then find in the processor's cache (a range of 5,000 at
once cost the helpers 5% more)."""


class Failed:
    """Facts a helper could not work out for one projection (the runner then applies the range's
    events itself, one by one where needed, and records what fails)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


RangeFacts = tuple[int, int, int, list[object]]
"""(after, through, events read, the facts of each projection or a `Failed`)."""


def has_facts(projection: Projection) -> bool:
    """Whether a projection's batches can be worked out apart from its tables."""
    return callable(getattr(projection, "facts", None)) and callable(getattr(projection, "apply_facts", None))


def helper_count() -> int:
    """Helper processes worth starting: one per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# In a helper process: its read-only store and what it works out.
_reader = None
_projections: Sequence[Projection] = ()


def _start_helper(path: str, projections: Sequence[Projection], reading: dict, runner: int) -> None:
    global _reader, _projections
    from eventstore.store import BatchReader, Store

    _die_with(runner)
    # Ctrl-C reaches the whole process group: the runner stops the rebuild and waits for the
    # helpers' ranges, whereas a helper interrupted while sending one left a message cut short
    # on the pipe (the runner then waited forever) and printed a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.disable()  # a helper lives for one rebuild (what it leaves goes with it); collecting cost it 4%
    _reader = BatchReader(Store(path, read_only=True), -1, **reading)  # spans bound what is read
    _projections = projections


def _die_with(runner: int) -> None:
    """Have the kernel kill this helper when the runner's process dies (Linux's parent-death
    signal), however it dies (kill -9, the terminal closed, the OOM killer). An orphaned helper
    would wait forever on its queues, and since the fork it shares the runner's rebuild lock, so
    every later replay would be refused as busy."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: helpers are only forked on Linux (fork_is_safe)
        return
    if os.getppid() != runner:  # the runner died before the call: nobody would send the signal
        os._exit(1)


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _facts_of(span: tuple[int, int]) -> RangeFacts:
    """The facts of each projection for the events in (after, through], read and handed to the
    projections `CHUNK` events at a time."""
    after, through = span
    builders: list[object] = [_builder(projection) for projection in _projections]
    count = 0
    for start in range(after, through, CHUNK):
        events = _reader.read_span(start, min(start + CHUNK, through))
        count += len(events)
        for i, (projection, builder) in enumerate(zip(_projections, builders)):
            if isinstance(builder, Failed):
                continue
            handles = projection.handles
            try:
                builder.add(events if handles is None else [event for event in events if event.type in handles])
            except Exception as exc:  # the runner applies this range's events itself and records the culprit
                builders[i] = Failed(f"{type(exc).__name__}: {exc}")
        lean.forget()
    out: list[object] = []
    for builder in builders:
        try:
            out.append(builder if isinstance(builder, Failed) else builder.result())
        except Exception as exc:
            out.append(Failed(f"{type(exc).__name__}: {exc}"))
    return after, through, count, out


def _builder(projection: Projection):
    """`facts_builder()` of a projection that has one, else one that keeps the events and hands
    them all to `facts` at the end; a `Failed` if it cannot be made."""
    make = getattr(projection, "facts_builder", None)
    if not callable(make):
        return _AllAtOnce(projection)
    try:
        return make()
    except Exception as exc:
        return Failed(f"{type(exc).__name__}: {exc}")


class _AllAtOnce:
    """The builder of a projection with `facts` alone."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.events: list = []

    def add(self, events: list) -> None:
        self.events += events

    def result(self) -> object:
        return self.projection.facts(self.events)


class FactsPool:
    """Helper processes working out the facts of ranges of the log, handed back in order."""

    def __init__(self, path: Path, projections: Sequence[Projection], *, types: set[str] | None,
                 payload_types: set[str] | None, helpers: int) -> None:
        context = multiprocessing.get_context("fork")
        reading = {"types": None if types is None else sorted(types),
                   "payload_types": None if payload_types is None else sorted(payload_types)}
        self.helpers = helpers
        self._pool = ProcessPoolExecutor(helpers, mp_context=context, initializer=_start_helper,
                                         initargs=(str(path), list(projections), reading, os.getpid()))

    def facts(self, spans: Sequence[tuple[int, int]]) -> Iterator[RangeFacts | tuple[int, int, int, None]]:
        """The facts of each (after, through] range, in the order given. A range whose facts could
        not come back (a helper died, or its facts would not pickle) comes as (after, through, 0,
        None): the caller reads it itself.

        The helpers are forked at the first request, here, so call this before opening any
        transaction: SQLite keeps the locks of a process's connections in memory a child copies,
        and a child must not believe it holds locks it does not."""
        waiting: deque = deque()
        todo = iter(spans)
        for span in todo:
            waiting.append((span, self._submit(span)))
            if len(waiting) >= AHEAD * self.helpers:
                break
        while waiting:
            span, future = waiting.popleft()
            try:
                result = future.result()
            except Exception:  # a dead helper fails this range and, the pool broken, every later one
                result = (*span, 0, None)
            for following in todo:
                waiting.append((following, self._submit(following)))
                break
            yield result

    def _submit(self, span: tuple[int, int]) -> Future:
        try:
            return self._pool.submit(_facts_of, span)
        except BrokenExecutor as exc:
            future: Future = Future()
            future.set_exception(exc)
            return future

    def close(self) -> None:
        """Stop the helpers once the ranges they are working on are done (a fraction of a second)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> FactsPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fork_is_safe() -> bool:
    """Fork only when no other thread could hold a lock the child would need (SQLite's, say):
    the only threads besides this one are the store's own pools (read-ahead, compression,
    dictionary training), which wait idle between calls. The caller makes sure no training is
    under way."""
    if not sys.platform.startswith("linux"):  # elsewhere fork is missing, or unsafe with system libraries
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    return all(t.name.startswith("eventstore-") for t in others)
