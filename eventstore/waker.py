"""Wake a reader when another process commits to the database, without polling.

Every commit in WAL mode writes the `-wal` file, so a file-system notification on it (inotify on
Linux, through watchfiles) tells a subscriber within milliseconds that there is something new.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import watchfiles

HEARTBEAT_MS = 1_000
"""Return to the caller at least this often, so a missed notification costs at most a second."""


class Waker:
    """Blocks in `wait` until the database file or its WAL changes."""

    def __init__(self, db_path: Path, stop: threading.Event) -> None:
        prefix = str(db_path.resolve())
        self._watch = watchfiles.watch(
            db_path.resolve().parent,
            watch_filter=lambda _change, path: path.startswith(prefix),
            debounce=20,
            step=2,
            rust_timeout=HEARTBEAT_MS,
            yield_on_timeout=True,
            stop_event=stop,
            recursive=False,
        )
        self._stop = stop

    def __enter__(self) -> Waker:
        return self

    def __exit__(self, *exc: object) -> None:
        self._watch.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a change; True if one came, False at the timeout (or a heartbeat when None)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            try:
                if next(self._watch):
                    return True
            except StopIteration:
                return False
            if deadline is None or time.monotonic() >= deadline:
                return False
        return False
