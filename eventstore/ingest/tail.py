"""Tail: ingest, then follow the transcript roots and ingest each change as it happens."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import watchfiles

from eventstore.errors import StoreBusy
from eventstore.ingest.ingester import Ingester, IngestReport
from eventstore.ingest.sources import transcript_files

DEBOUNCE_MS = 50
STEP_MS = 5
IDLE_MS = 100
"""How soon after it starts the watcher reports being idle (the first idle report triggers a re-scan)."""
NO_ROOT_SECONDS = 1.0
"""How often to look for a root to appear while none exists."""


def tail(
    ingester: Ingester,
    roots: Sequence[Path],
    on_batch: Callable[[IngestReport], None],
    stop: threading.Event,
    on_idle: Callable[[], None] | None = None,
    on_busy: Callable[[str], None] | None = None,
) -> IngestReport:
    """Catch up on the roots, then ingest every changed transcript file until `stop` is set.

    Each change is ingested as one batch (one transaction unless it is very large) and
    reported through `on_batch`; the current batch always finishes before returning. A new
    directory (a project, a session's subagents) is read whole: files written in it before the
    watcher saw it send no event. A root deleted, replaced or made is watched anew and read
    again. When another process holds the database's write lock too long (StoreBusy), `on_busy`
    is told and the roots are read again once the watcher is idle, until that succeeds.
    `on_idle` runs whenever the watcher has been quiet for IDLE_MS: background work that must
    never delay ingestion (it should return within a few tens of milliseconds).
    """
    total = ingester.ingest(roots)
    on_batch(total)

    def step(work: Callable[[], IngestReport]) -> bool:
        try:
            report = work()
            total.add(report)
            on_batch(report)
        except StoreBusy as exc:
            if on_busy is not None:
                on_busy(str(exc))
            return False
        return True

    while not stop.is_set():
        seen = _identities(roots)
        watched = [str(root) for root, identity in zip(roots, seen) if identity is not None]
        if not watched:
            stop.wait(NO_ROOT_SECONDS)
            if _identities(roots) != seen:
                step(lambda: ingester.ingest(roots))
            continue
        rescan = True  # what changed before the watcher started, or while the database was busy
        for changes in watchfiles.watch(
            *watched,
            watch_filter=_transcript_or_new_directory,
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            stop_event=stop,
            raise_interrupt=False,
            rust_timeout=IDLE_MS,
            yield_on_timeout=True,
        ):
            if changes:
                paths = {Path(path) for _, path in changes}
                rescan = not step(lambda: _ingest_changed(ingester, paths)) or rescan
            elif rescan:
                rescan = not step(lambda: ingester.ingest(roots))
            elif _identities(roots) != seen:
                break  # a root was deleted, replaced or made: watch the roots as they are now
            elif on_idle is not None:
                on_idle()
            if stop.is_set():
                break
    return total


def _transcript_or_new_directory(change: watchfiles.Change, path: str) -> bool:
    return path.endswith(".jsonl") or (change == watchfiles.Change.added and os.path.isdir(path))


def _ingest_changed(ingester: Ingester, paths: set[Path]) -> IngestReport:
    report = IngestReport()
    files = {path for path in paths if path.suffix == ".jsonl" and path.is_file()}
    files.update(transcript_files(sorted(path for path in paths if path.is_dir()), report.warnings.append))
    return ingester.ingest_files(sorted(files), report)


def _identities(roots: Sequence[Path]) -> list[tuple[int, int] | None]:
    """Each root's (device, inode), None for one that does not exist."""
    out: list[tuple[int, int] | None] = []
    for root in roots:
        try:
            status = root.stat()
        except OSError:
            out.append(None)
        else:
            out.append((status.st_dev, status.st_ino))
    return out
