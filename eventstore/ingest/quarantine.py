"""Quarantine: bytes from transcript files that could not be decoded, kept whole with the reason.

Nothing is dropped silently: a bad line is stored here (owning table `quarantine`, DDL in
eventstore/sql/0002_ingest.sql), counted in the ingest summary and listed by
`eventstore quarantine`.
"""

from __future__ import annotations

import msgspec


class QuarantinedLine(msgspec.Struct, frozen=True, kw_only=True):
    """A line that could not be decoded: where it was, why, and its size."""

    file: str
    offset: int
    reason: str
    bytes: int
    recorded_at: int


def add(tx, rows: list[tuple[int, int, str, bytes]], now: int) -> int:
    """Quarantine (source_id, offset, reason, line) rows; return how many were new."""
    before = tx.execute("SELECT count(*) FROM quarantine")[0][0]
    tx.executemany(
        "INSERT OR IGNORE INTO quarantine (source_id, offset, reason, line, recorded_at) VALUES (?, ?, ?, ?, ?)",
        [(source_id, offset, reason, line, now) for source_id, offset, reason, line in rows],
    )
    return tx.execute("SELECT count(*) FROM quarantine")[0][0] - before


def listing(conn) -> list[QuarantinedLine]:
    """Every quarantined line, oldest first."""
    return [
        QuarantinedLine(file=path, offset=offset, reason=reason, bytes=size, recorded_at=recorded_at)
        for path, offset, reason, size, recorded_at in conn.execute(
            "SELECT s.path, q.offset, q.reason, length(q.line), q.recorded_at"
            " FROM quarantine q JOIN sources s USING (source_id) ORDER BY q.quarantine_id"
        )
    ]


def count(conn) -> int:
    """How many lines are in quarantine."""
    return conn.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
