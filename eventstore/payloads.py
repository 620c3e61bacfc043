"""How event payloads are stored: one compressed frame per event, or blocks of neighbours.

A bulk append (ingesting a transcript tree) stores each run of consecutive events of one stream
as a single zstd frame in `blocks`: neighbouring transcript lines repeat each other (the
streamed lines of one response, a file read then edited), which per-line frames cannot exploit.
Blocks compress about 20% smaller and faster. Small appends (tail, commands) and large payloads
keep a frame of their own in `events.data`. Owns the `blocks` table (sql/0005_blocks.sql).

A block member's row has `block_id` set and an empty `data`; its payload is member
`position - first_position` of the block, whose `sizes` lists every member's length.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence

import apsw

from eventstore.codec import Codec
from schemas.envelope import NewEvent

BLOCK_EVENTS = 16
BLOCK_BYTES = 128 * 1024
ALONE_BYTES = 32 * 1024
"""A payload this large is compressed on its own: reading it back should not cost its neighbours."""
BULK = 32
"""Appends of fewer events store every payload alone."""

Encode = Callable[[bytes], tuple[int | None, bytes]]
Row = tuple[int, int | None, bytes, int | None]
"""(position, dict_id, data, block_id) of an events row."""


def runs(events: Sequence[NewEvent]) -> list[list[int]]:
    """Group event indexes into runs to store together: consecutive, one stream, bounded."""
    if len(events) < BULK:
        return [[i] for i in range(len(events))]
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i, event in enumerate(events):
        n = len(event.data)
        if n >= ALONE_BYTES:
            if current:
                groups.append(current)
                current, size = [], 0
            groups.append([i])
            continue
        if current and (event.stream != events[current[0]].stream or len(current) == BLOCK_EVENTS
                        or size + n > BLOCK_BYTES):
            groups.append(current)
            current, size = [], 0
        current.append(i)
        size += n
    if current:
        groups.append(current)
    return groups


def pack_sizes(sizes: Sequence[int]) -> bytes:
    """Members' lengths as the `sizes` column stores them."""
    return struct.pack(f"<{len(sizes)}I", *sizes)


def unpack_sizes(packed: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(packed) // 4}I", packed)


def split(payload: bytes, sizes: Sequence[int]) -> list[bytes]:
    """A block's payload cut back into its members."""
    members, offset = [], 0
    for size in sizes:
        members.append(payload[offset:offset + size])
        offset += size
    return members


def encoded_runs(codec: Codec, events: Sequence[NewEvent], groups: list[list[int]]
                 ) -> Iterator[tuple[int, list[list[int]], list[tuple[int | None, bytes]]]]:
    """Encode runs in chunks (compressing ahead in a worker thread): (first run index, runs, frames)."""
    payloads = [
        events[group[0]].data if len(group) == 1 else b"".join(events[i].data for i in group)
        for group in groups
    ]
    for start, frames in codec.encode_chunks(payloads):
        yield start, groups[start:start + len(frames)], frames


def read(conn: apsw.Connection, codec: Codec, rows: Sequence[Row]) -> list[bytes]:
    """The original payloads of events rows, decoding each needed block once."""
    out = codec.decode_many([(dict_id, data) if block_id is None else (None, b"")
                             for _, dict_id, data, block_id in rows])
    wanted = sorted({block_id for *_, block_id in rows if block_id is not None})
    if not wanted:
        return out
    blocks: dict[int, tuple[int, list[bytes]]] = {}
    for start in range(0, len(wanted), 500):
        ids = wanted[start:start + 500]
        found = conn.execute(
            f"SELECT block_id, first_position, dict_id, sizes, data FROM blocks WHERE block_id IN ({','.join('?' * len(ids))})",
            ids,
        ).fetchall()
        decoded = codec.decode_many([(dict_id, data) for _, _, dict_id, _, data in found])
        for (block_id, first, _, sizes, _), payload in zip(found, decoded):
            blocks[block_id] = (first, split(payload, unpack_sizes(sizes)))
    for i, (position, _, _, block_id) in enumerate(rows):
        if block_id is not None:
            first, members = blocks[block_id]
            out[i] = members[position - first]
    return out


def read_positions(conn: apsw.Connection, codec: Codec, positions: Sequence[int]) -> dict[int, bytes]:
    """The original payloads of the events at these positions."""
    rows: list[Row] = []
    for start in range(0, len(positions), 500):
        chunk = positions[start:start + 500]
        rows += conn.execute(
            f"SELECT position, dict_id, data, block_id FROM events WHERE position IN ({','.join('?' * len(chunk))})",
            chunk,
        ).fetchall()
    return dict(zip((row[0] for row in rows), read(conn, codec, rows)))


def rewrite(conn: apsw.Connection, codec: Codec, replacements: dict[int, bytes], encode: Encode) -> None:
    """Replace the payloads of these events (a sanctioned rewrite: the caller has lifted the
    append-only triggers in this transaction). A block is re-encoded whole, so no copy of the
    old bytes stays behind in it."""
    positions = sorted(replacements)
    rows = []
    for start in range(0, len(positions), 500):
        chunk = positions[start:start + 500]
        rows += conn.execute(
            f"SELECT position, block_id FROM events WHERE position IN ({','.join('?' * len(chunk))})", chunk
        ).fetchall()
    by_block: dict[int, list[int]] = {}
    for position, block_id in rows:
        if block_id is None:
            dict_id, stored = encode(replacements[position])
            conn.execute("UPDATE events SET dict_id = ?, data = ? WHERE position = ?", (dict_id, stored, position))
        else:
            by_block.setdefault(block_id, []).append(position)
    for block_id, members in by_block.items():
        reencode_block(conn, codec, block_id, encode, {p: replacements[p] for p in members})


def reencode_block(conn: apsw.Connection, codec: Codec, block_id: int, encode: Encode,
                   replacements: dict[int, bytes] | None = None) -> None:
    """Encode a block again (with `encode`), replacing some members' payloads first."""
    first, dict_id, sizes, data = conn.execute(
        "SELECT first_position, dict_id, sizes, data FROM blocks WHERE block_id = ?", (block_id,)
    ).fetchall()[0]
    members = split(codec.decode(dict_id, data), unpack_sizes(sizes))
    for position, payload in (replacements or {}).items():
        members[position - first] = payload
    new_dict_id, stored = encode(b"".join(members))
    conn.execute("UPDATE blocks SET dict_id = ?, sizes = ?, data = ? WHERE block_id = ?",
                 (new_dict_id, pack_sizes([len(m) for m in members]), stored, block_id))


def sample(conn: apsw.Connection, codec: Codec, count: int) -> list[bytes]:
    """Payloads of about `count` events picked at random (for training a dictionary)."""
    rows = conn.execute(
        "SELECT position, dict_id, data, block_id FROM events WHERE position IN "
        "(SELECT position FROM events ORDER BY random() LIMIT ?)",
        (count,),
    ).fetchall()
    return [payload for payload in read(conn, codec, rows) if payload]


def register_sql_function(conn: apsw.Connection, codec: Codec) -> None:
    """Add `event_payload(position)` to a connection: an event's original bytes, in SQL."""

    def event_payload(position: int | None) -> bytes | None:
        if position is None:
            return None
        return read_positions(conn, codec, [position]).get(position)

    conn.create_scalar_function("event_payload", event_payload, 1)
