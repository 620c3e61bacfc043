"""Where each stream's events are: one row per stream per append, not an index entry per event.

An append records, for every stream it extends, the versions it added and their positions
(nothing but the first position when they are consecutive, as a transcript's lines are).
`read_stream` finds a stream's positions here. Owns the `stream_index` table
(sql/0006_compact_events.sql).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import apsw

_INSERT = ("INSERT INTO stream_index (stream_no, first_version, last_version, first_position, positions)"
           " VALUES (?, ?, ?, ?, ?)")


def entry(stream_no: int, first_version: int, positions: Sequence[int]) -> tuple:
    """The stream_index row of versions first_version.. of a stream, at these increasing positions."""
    first = positions[0]
    consecutive = positions[-1] - first == len(positions) - 1
    packed = None if consecutive else struct.pack(f"<{len(positions)}q", *positions)
    return (stream_no, first_version, first_version + len(positions) - 1, first, packed)


def record(conn: apsw.Connection, entries: Iterable[tuple]) -> None:
    """Insert rows made by `entry`."""
    conn.executemany(_INSERT, entries)


def positions(conn: apsw.Connection, stream_no: int, from_version: int = 1) -> list[int]:
    """The positions of a stream's events from a version on, in version order."""
    rows = conn.execute(
        "SELECT first_version, last_version, first_position, positions FROM stream_index"
        " WHERE stream_no = ?1 AND first_version >= coalesce("
        "  (SELECT max(first_version) FROM stream_index WHERE stream_no = ?1 AND first_version <= ?2), 0)"
        " ORDER BY first_version",
        (stream_no, from_version),
    ).fetchall()
    found: list[int] = []
    for first_version, last_version, first_position, packed in rows:
        if packed is None:
            run: Sequence[int] = range(first_position, first_position + last_version - first_version + 1)
        else:
            run = struct.unpack(f"<{len(packed) // 8}q", packed)
        found.extend(run[max(0, from_version - first_version):])
    return found
