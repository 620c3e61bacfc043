"""Tail: ingest, then follow the transcript roots and ingest each change as it happens."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import watchfiles

from eventstore.ingest.ingester import Ingester, IngestReport

DEBOUNCE_MS = 50
STEP_MS = 5
IDLE_MS = 100
"""How soon after it starts the watcher reports being idle (the first idle report triggers a re-scan)."""


def tail(
    ingester: Ingester,
    roots: Sequence[Path],
    on_batch: Callable[[IngestReport], None],
    stop: threading.Event,
    on_idle: Callable[[], None] | None = None,
) -> IngestReport:
    """Catch up on the roots, then ingest every changed transcript file until `stop` is set.

    Each change is ingested as one batch (one transaction unless it is very large) and
    reported through `on_batch`; the current batch always finishes before returning.
    `on_idle` runs whenever the watcher has been quiet for IDLE_MS: background work that must
    never delay ingestion (it should return within a few tens of milliseconds).
    """
    total = ingester.ingest(roots)
    on_batch(total)
    watched = [str(root) for root in roots if root.exists()]
    if not watched:
        return total
    gap_covered = False
    for changes in watchfiles.watch(
        *watched,
        watch_filter=lambda _change, path: path.endswith(".jsonl"),
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        stop_event=stop,
        raise_interrupt=False,
        rust_timeout=IDLE_MS,
        yield_on_timeout=True,
    ):
        if changes:
            paths = sorted({Path(path) for _, path in changes})
            report = ingester.ingest_files([p for p in paths if p.is_file()])
        elif not gap_covered:
            # The watcher started after the first catch-up: pick up what changed in between.
            report, gap_covered = ingester.ingest(roots), True
        else:
            if on_idle is not None:
                on_idle()
            continue
        total.add(report)
        on_batch(report)
        if stop.is_set():
            break
    return total
