"""How event payloads are stored: one compressed frame per event, or blocks of neighbours.

A bulk append (ingesting a transcript tree) stores each run of consecutive events as a single
zstd frame in `blocks`: neighbouring transcript lines repeat each other (the
streamed lines of one response, a file read then edited), which per-line frames cannot exploit.
Blocks compress about 20% smaller and faster. Small appends (tail, commands) and large payloads
keep a frame of their own in `events.data`. Owns the `blocks` table (sql/0005_blocks.sql).

A block member's row has `block_id` set and an empty `data`; its payload is member
`position - first_position` of the block, whose `sizes` lists every member's length.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate

import apsw

from eventstore.codec import Codec
from eventstore.storage import select_in

BLOCK_EVENTS = 32
"""Events a block holds at most: bigger blocks leave fewer part-filled pages (the log of the
500 MB generated tree: 142.3 MB with 16, 134.8 MB with 32, 132.6 MB with 64) but cost more to
decompress for one event (about 80 KB for 32 transcript lines)."""
ALONE_BYTES = 32 * 1024
"""A payload this large is compressed on its own: reading it back should not cost its neighbours."""
BULK = 32
"""Appends of fewer events store every payload alone."""

Encode = Callable[[bytes], tuple[int | None, bytes]]
Row = tuple[int, int | None, bytes, int | None]
"""(position, dict_id, data, block_id) of an events row."""


def runs(sizes: Sequence[int]) -> list[range]:
    """Group events (given their payload sizes) into runs to store together: up to BLOCK_EVENTS
    consecutive events, each payload under ALONE_BYTES. A bulk append of transcripts holds long
    runs of one stream; a block may also join the end of one stream to the start of the next, or
    interleaved streams, which reading one stream pays for at most BLOCK_EVENTS times over."""
    n = len(sizes)
    if n < BULK:
        return [range(i, i + 1) for i in range(n)]
    alone = [i for i, size in enumerate(sizes) if size >= ALONE_BYTES] if max(sizes) >= ALONE_BYTES else []
    groups: list[range] = []
    start = 0
    for end in [*alone, n]:
        groups += [range(i, min(i + BLOCK_EVENTS, end)) for i in range(start, end, BLOCK_EVENTS)]
        if end < n:
            groups.append(range(end, end + 1))
        start = end + 1
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


def encoded_runs(codec: Codec, datas: Sequence[bytes], groups: list[range]
                 ) -> Iterator[tuple[list[range], list[tuple[int | None, bytes]]]]:
    """Start encoding the runs of these payloads (in a worker thread); the iterator returned
    yields them in chunks: (runs, their frames)."""
    payloads = [datas[group.start] if len(group) == 1 else b"".join(datas[group.start:group.stop])
                for group in groups]
    return ((groups[start:start + len(frames)], frames) for start, frames in codec.encode_chunks(payloads))


def read(conn: apsw.Connection, codec: Codec, rows: Sequence[Row]) -> list[bytes]:
    """The original payloads of events rows, decoding each needed block once.

    Rows come in position order, so a block's members are cut out of it as they are met,
    at offsets summed once per block; members no row asks for are never copied.
    """
    out = codec.decode_many([(dict_id, data) if block_id is None else (None, b"")
                             for _, dict_id, data, block_id in rows])
    wanted = sorted({block_id for *_, block_id in rows if block_id is not None})
    if not wanted:
        return out
    blocks: dict[int, tuple[int, bytes, list[int]]] = {}
    for start in range(0, len(wanted), 500):
        ids = wanted[start:start + 500]
        found = conn.execute(
            f"SELECT block_id, first_position, dict_id, sizes, data FROM blocks WHERE block_id IN ({','.join('?' * len(ids))})",
            ids,
        ).fetchall()
        decoded = codec.decode_many([(dict_id, data) for _, _, dict_id, _, data in found])
        for (block_id, first, _, sizes, _), payload in zip(found, decoded):
            blocks[block_id] = (first, payload, list(accumulate(unpack_sizes(sizes), initial=0)))
    for i, (position, _, _, block_id) in enumerate(rows):
        if block_id is not None:
            first, payload, offsets = blocks[block_id]
            member = position - first
            out[i] = payload[offsets[member]:offsets[member + 1]]
    return out


def read_positions(conn: apsw.Connection, codec: Codec, positions: Sequence[int]) -> dict[int, bytes]:
    """The original payloads of the events at these positions."""
    rows = select_in(conn, "SELECT position, dict_id, data, block_id FROM events WHERE position IN ({})", positions)
    return dict(zip((row[0] for row in rows), read(conn, codec, rows)))


def rewrite(conn: apsw.Connection, codec: Codec, replacements: dict[int, bytes], encode: Encode) -> None:
    """Replace the payloads of these events (a sanctioned rewrite: the caller has lifted the
    append-only triggers in this transaction). A block is re-encoded whole, so no copy of the
    old bytes stays behind in it."""
    positions = sorted(replacements)
    rows = select_in(conn, "SELECT position, block_id FROM events WHERE position IN ({})", positions)
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


def register_sql_function(conn: apsw.Connection, codec: Codec) -> None:
    """Add `event_payload(position)` to a connection: an event's original bytes, in SQL."""

    def event_payload(position: int | None) -> bytes | None:
        if position is None:
            return None
        return read_positions(conn, codec, [position]).get(position)

    conn.create_scalar_function("event_payload", event_payload, 1)


_ahead_pool = None


def read_later(conn: apsw.Connection, rows: Sequence[Row],
               decompressors: dict[int, object]) -> Callable[[], list[bytes]]:
    """Like `read`, with the decompression moved to a worker thread: returns a function that
    waits for it and gives the payloads.

    The caller fetches every row here (on its own connection); the worker only runs zstd, one
    call per dictionary for all of the rows' frames, which releases the GIL throughout, so a
    replay applies one batch while the next one decompresses. `decompressors` is the caller's
    cache (dict_id -> ZstdDecompressor), never shared with the store's codec.
    """
    import zstandard
    from concurrent.futures import ThreadPoolExecutor

    global _ahead_pool
    n = len(rows)
    out: list[bytes] = [b""] * n
    frames: dict[int, list[bytes]] = {}
    singles: list[tuple[int, int]] = []  # (row index, dict_id) of frames stored in events.data
    wanted = []
    last_block = None
    for i, (_, dict_id, data, block_id) in enumerate(rows):
        if block_id is not None:
            if block_id != last_block:
                wanted.append(block_id)
                last_block = block_id
        elif dict_id is None:
            out[i] = data
        else:
            frames.setdefault(dict_id, []).append(data)
            singles.append((i, dict_id))
    found = select_in(conn, "SELECT block_id, first_position, dict_id, sizes, data FROM blocks"
                            " WHERE block_id IN ({}) ORDER BY block_id", sorted(set(wanted))) if wanted else []
    block_slots: list[tuple[int, int]] = []  # (dict_id, index in its frames) per block in `found`, -1: raw
    for _, _, dict_id, _, data in found:
        if dict_id is None:
            block_slots.append((-1, 0))
        else:
            group = frames.setdefault(dict_id, [])
            block_slots.append((dict_id, len(group)))
            group.append(data)
    for dict_id in frames:
        if dict_id not in decompressors:
            if dict_id == 0:
                decompressors[0] = zstandard.ZstdDecompressor()
            else:
                stored = conn.execute("SELECT data FROM dictionaries WHERE dict_id = ?", (dict_id,)).fetchall()
                if not stored:
                    raise LookupError(f"compression dictionary {dict_id} is missing from the database")
                decompressors[dict_id] = zstandard.ZstdDecompressor(
                    dict_data=zstandard.ZstdCompressionDict(stored[0][0]))
    jobs = [(dict_id, decompressors[dict_id], group) for dict_id, group in frames.items()]
    if _ahead_pool is None:
        _ahead_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventstore-read-ahead")
    future = _ahead_pool.submit(_decompress_all, jobs)

    def finish() -> list[bytes]:
        done = future.result()
        seen: dict[int, int] = {}
        for i, dict_id in singles:
            k = seen.get(dict_id, 0)
            seen[dict_id] = k + 1
            out[i] = done[dict_id][k].tobytes()
        if not found:
            return out
        # Cut every block into its members (C loops: map over slices), laid out by position.
        base, last = rows[0][0], rows[-1][0]
        flat: list[bytes] = [b""] * (last - base + 1)
        for (_, first, _, sizes, data), (dict_id, k) in zip(found, block_slots):
            payload = data if dict_id < 0 else done[dict_id][k].tobytes()
            offsets = list(accumulate(unpack_sizes(sizes), initial=0))
            members = list(map(payload.__getitem__, map(slice, offsets, offsets[1:])))
            start = first - base
            if start < 0:
                members, start = members[-start:], 0
            flat[start:start + len(members)] = members[:len(flat) - start]
        for i, (position, _, _, block_id) in enumerate(rows):
            if block_id is None:  # a payload of its own, or one the caller does not want
                flat[position - base] = out[i]
        if len(rows) == len(flat):  # consecutive positions: the common case of a replay
            return flat
        return [flat[row[0] - base] for row in rows]

    return finish


def _decompress_all(jobs: list[tuple[int, object, list[bytes]]]) -> dict[int, object]:
    """Run in the worker: every frame of each dictionary in one zstd call (no GIL held inside)."""
    return {dict_id: decompressor.multi_decompress_to_buffer(group, threads=1)
            for dict_id, decompressor, group in jobs}
