"""How event payloads are stored: one compressed frame per event, or blocks of frames.

A bulk append (ingesting a transcript tree) compresses each run of up to BLOCK_EVENTS
consecutive events as one zstd frame: neighbouring transcript lines repeat each other (the
streamed lines of one response, a file read then edited), which per-line frames cannot exploit,
so runs compress about 20% smaller and faster. A payload of ALONE_BYTES or more is a frame of
its own. The frames of an append go side by side into `blocks` rows, up to FRAMES_PER_BLOCK a
row. Small appends (tail, commands) keep a frame per event in `events.data`. Owns the `blocks`
table (sql/0005_blocks.sql, 0009_block_frames.sql).

A block member's events row has `block_id` set and an empty `data`; its payload is member
`position - first_position` of the block, whose `sizes` lists every member's length and
`frames` each frame's member count and length (NULL: one frame). Each frame is decoded on its
own, so reading one event costs one frame.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate

import apsw

from eventstore.codec import Codec, new_decompressor
from eventstore.storage import select_in

BLOCK_EVENTS = 32
"""Events a block holds at most: bigger blocks leave fewer part-filled pages (the log of the
500 MB generated tree: 142.3 MB with 16, 134.8 MB with 32, 132.6 MB with 64) but cost more to
decompress for one event (about 80 KB for 32 transcript lines)."""
FRAMES_PER_BLOCK = 16
"""Frames a blocks row holds at most. Every row leaves part of a page empty (about 0.7 KB), so
fewer, longer rows waste less: on the 500 MB generated tree the blocks table was 86.4 MB with
one frame a row and 82.5 MB with up to eight."""
ALONE_BYTES = 32 * 1024
"""A payload this large is a frame of its own: reading it back should not cost its neighbours,
nor them it."""
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
    """Members' lengths as the `sizes` column stores them: uint16 when every one fits, else uint32
    (the member count in `frames` tells which)."""
    code = "H" if max(sizes, default=0) < 1 << 16 else "I"
    return struct.pack(f"<{len(sizes)}{code}", *sizes)


def pack_frames(frames: Sequence[tuple[int, int]]) -> bytes:
    """(member count, encoded length) of each frame, as the `frames` column stores them."""
    return struct.pack(f"<{2 * len(frames)}I", *(n for frame in frames for n in frame))


Span = tuple[int, int, int, int]
"""(first member, member stop, start, stop in `data`) of one frame of a block."""


def layout(sizes: bytes, frames: bytes | None, length: int) -> tuple[tuple[int, ...], list[Span]]:
    """A blocks row's member sizes and frames. A row without `frames` (written before they
    existed) is one frame with uint32 sizes."""
    if frames is None:
        member_sizes = struct.unpack(f"<{len(sizes) // 4}I", sizes)
        return member_sizes, [(0, len(member_sizes), 0, length)]
    numbers = struct.unpack(f"<{len(frames) // 4}I", frames)
    spans: list[Span] = []
    member = offset = 0
    for count, size in zip(numbers[::2], numbers[1::2]):
        spans.append((member, member + count, offset, offset + size))
        member, offset = member + count, offset + size
    code = "H" if len(sizes) == 2 * member else "I"
    return struct.unpack(f"<{member}{code}", sizes), spans


class BlockRows:
    """The blocks rows of one bulk append, built as its runs come out of the encoder: runs that
    follow each other and share a dictionary fill one row, up to FRAMES_PER_BLOCK of them (a
    payload of ALONE_BYTES or more is a run, and a frame, of its own). Rows are numbered from
    `next_id`, so the events of a row still open can name it."""

    def __init__(self, first_position: int, sizes: Sequence[int], next_id: int) -> None:
        self._first, self._sizes, self._id = first_position, sizes, next_id
        self._frames: list[tuple[int, int]] = []
        self._datas: list[bytes] = []
        self._start = self._stop = 0
        self._dict: int | None = None
        self._done: list[tuple] = []

    def add(self, runs: Sequence[range], encoded: Sequence[tuple[int | None, bytes]]) -> list[int]:
        """Add encoded runs (in order); returns the block id of each."""
        ids = []
        for run, (dict_id, data) in zip(runs, encoded):
            if (not self._frames or run.start != self._stop or dict_id != self._dict
                    or len(self._frames) == FRAMES_PER_BLOCK):
                self._close()
                self._start, self._dict = run.start, dict_id
            self._frames.append((len(run), len(data)))
            self._datas.append(data)
            self._stop = run.stop
            ids.append(self._id)
        return ids

    def take(self) -> list[tuple]:
        """The rows completed so far, (block_id, first_position, dict_id, sizes, frames, data)."""
        done, self._done = self._done, []
        return done

    def finish(self) -> list[tuple]:
        """The remaining rows, the open one included."""
        self._close()
        return self.take()

    def _close(self) -> None:
        if self._frames:
            self._done.append((self._id, self._first + self._start, self._dict,
                               pack_sizes(self._sizes[self._start:self._stop]), pack_frames(self._frames),
                               b"".join(self._datas)))
            self._id += 1
            self._frames, self._datas = [], []


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
    """The original payloads of events rows, decoding each needed frame once.

    Members are cut out of a frame at offsets summed once per frame; frames no row asks for are
    never decoded, and members no row asks for never copied.
    """
    out = codec.decode_many([(dict_id, data) if block_id is None else (None, b"")
                             for _, dict_id, data, block_id in rows])
    wanted: dict[int, list[int]] = {}
    for position, _, _, block_id in rows:
        if block_id is not None:
            wanted.setdefault(block_id, []).append(position)
    if not wanted:
        return out
    ids = sorted(wanted)
    # block_id -> (first position, each frame's first member, its members' offsets, its index in `frames`)
    located: dict[int, tuple[int, list[int], list[list[int]], list[int]]] = {}
    frames: list[tuple[int | None, bytes]] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for block_id, first, dict_id, sizes, frame_list, length in conn.execute(
            f"SELECT block_id, first_position, dict_id, sizes, frames, length(data) FROM blocks"
            f" WHERE block_id IN ({','.join('?' * len(chunk))})", chunk,
        ):
            member_sizes, spans = layout(sizes, frame_list, length)
            starts = [lo for lo, _, _, _ in spans]
            offsets: list[list[int]] = [[] for _ in spans]
            index = [-1] * len(spans)
            with conn.blob_open("main", "blocks", "data", block_id, False) as blob:  # only the frames needed
                for k in sorted({bisect_right(starts, position - first) - 1 for position in wanted[block_id]}):
                    lo, hi, begin, end = spans[k]
                    offsets[k] = list(accumulate(member_sizes[lo:hi], initial=0))
                    index[k] = len(frames)
                    blob.seek(begin)
                    frames.append((dict_id, blob.read(end - begin)))
            located[block_id] = (first, starts, offsets, index)
    decoded = codec.decode_many(frames)
    for block_id, (_, starts, offsets, index) in located.items():
        for k, i in enumerate(index):
            if i >= 0 and len(decoded[i]) != offsets[k][-1]:
                raise ValueError(f"block {block_id}: the frame from member {starts[k]} holds {len(decoded[i])}"
                                 f" bytes, its members' sizes add up to {offsets[k][-1]}")
    for i, (position, _, _, block_id) in enumerate(rows):
        if block_id is not None:
            first, starts, offsets, index = located[block_id]
            member = position - first
            k = bisect_right(starts, member) - 1
            cut, m = offsets[k], member - starts[k]
            out[i] = decoded[index[k]][cut[m]:cut[m + 1]]
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
    """Encode a block again (with `encode`), frame by frame, replacing some members' payloads first.
    Should its frames come back under different dictionaries, all are stored as they are."""
    first, dict_id, sizes, frame_list, data = conn.execute(
        "SELECT first_position, dict_id, sizes, frames, data FROM blocks WHERE block_id = ?", (block_id,)
    ).fetchall()[0]
    member_sizes, spans = layout(sizes, frame_list, len(data))
    members: list[bytes] = []
    for lo, hi, begin, end in spans:
        members += split(codec.decode(dict_id, data[begin:end]), member_sizes[lo:hi])
    for position, payload in (replacements or {}).items():
        members[position - first] = payload
    plain = [b"".join(members[lo:hi]) for lo, hi, _, _ in spans]
    encoded = [encode(frame) for frame in plain]
    if len({new_dict for new_dict, _ in encoded}) > 1:
        encoded = [(None, frame) for frame in plain]
    new_frames = pack_frames([(hi - lo, len(frame)) for (lo, hi, _, _), (_, frame) in zip(spans, encoded)])
    conn.execute("UPDATE blocks SET dict_id = ?, sizes = ?, frames = ?, data = ? WHERE block_id = ?",
                 (encoded[0][0], pack_sizes([len(m) for m in members]), new_frames,
                  b"".join(frame for _, frame in encoded), block_id))


def register_sql_function(conn: apsw.Connection, codec: Codec) -> None:
    """Add `event_payload(position)` to a connection: an event's original bytes, in SQL."""

    def event_payload(position: int | None) -> bytes | None:
        if position is None:
            return None
        return read_positions(conn, codec, [position]).get(position)

    conn.create_scalar_function("event_payload", event_payload, 1)


_ahead_pool = None


def read_later(conn: apsw.Connection, rows: Sequence[Row],
               decompressors: dict[int, object], *, in_thread: bool = True) -> Callable[[], list[bytes]]:
    """Like `read`, for a run of rows read whole: returns a function that gives the payloads.

    The caller fetches every row here (on its own connection). With `in_thread`, a worker thread
    decompresses meanwhile: one zstd call per dictionary for all of the rows' frames, which
    releases the GIL throughout, so a replay applies one batch while the next one decompresses.
    Without it, the function decompresses frame by frame when called, each frame just before it
    is cut into its members, while it is in the cache: a third faster, for a caller with nothing
    else to do meanwhile (one call a frame would make a busy thread wait for the GIL after every
    frame). `decompressors` is the caller's cache (dict_id ->
    ZstdDecompressor), never shared with the store's codec.
    """
    from concurrent.futures import ThreadPoolExecutor

    global _ahead_pool
    n = len(rows)
    out: list[bytes] = [b""] * n
    frames: dict[int, list[bytes]] = {}
    singles: list[tuple[int, int]] = []  # (row index, dict_id) of frames stored in events.data
    reach: dict[int, list[int]] = {}  # block_id -> [first, last] position of the rows it holds
    for i, (position, dict_id, data, block_id) in enumerate(rows):
        if block_id is not None:
            span = reach.get(block_id)
            if span is None:
                reach[block_id] = [position, position]
            else:
                span[1] = position
        elif dict_id is None:
            out[i] = data
        else:
            frames.setdefault(dict_id, []).append(data)
            singles.append((i, dict_id))
    found = select_in(conn, "SELECT block_id, first_position, dict_id, sizes, frames, data FROM blocks"
                            " WHERE block_id IN ({}) ORDER BY block_id", sorted(reach)) if reach else []
    # Per block in `found`, per frame: (dict_id, index in its group, -1: stored as is, -2: not
    # wanted; the frame's bytes, its first member, its member stop). A frame holding none of the
    # rows (a block reaching past either end of them) is not decoded.
    block_slots: list[list[tuple[int, int, bytes, int, int]]] = []
    for block_id, first, dict_id, sizes, frame_list, data in found:
        slots = []
        spans = layout(sizes, frame_list, len(data))[1]
        low, high = reach[block_id]
        low, high = low - first, high - first
        for lo, hi, begin, end in spans:
            frame = data if len(spans) == 1 else data[begin:end]
            if hi <= low or lo > high:
                slots.append((None, -2, b"", lo, hi))
            elif dict_id is None:
                slots.append((-1, -1, frame, lo, hi))
            else:
                group = frames.setdefault(dict_id, [])
                slots.append((dict_id, len(group), frame, lo, hi))
                group.append(frame)
        block_slots.append(slots)
    for dict_id in frames:
        if dict_id not in decompressors:
            decompressors[dict_id] = new_decompressor(conn, dict_id)
    if in_thread:
        if _ahead_pool is None:
            _ahead_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventstore-read-ahead")
        future = _ahead_pool.submit(_decompress_all, [(dict_id, decompressors[dict_id], group)
                                                      for dict_id, group in frames.items()])

        def frame_of(dict_id: int, k: int) -> bytes:
            return bytes(future.result()[dict_id][k])
    else:
        def frame_of(dict_id: int, k: int) -> bytes:
            return decompressors[dict_id].decompress(frames[dict_id][k])

    def finish() -> list[bytes]:
        seen: dict[int, int] = {}
        for i, dict_id in singles:
            k = seen.get(dict_id, 0)
            seen[dict_id] = k + 1
            out[i] = frame_of(dict_id, k)
        if not found:
            return out
        # Cut every block into its members (C loops: map over slices), laid out by position.
        base, last = rows[0][0], rows[-1][0]
        flat: list[bytes] = [b""] * (last - base + 1)
        for (_, first, _, sizes, frame_list, data), slots in zip(found, block_slots):
            member_sizes = layout(sizes, frame_list, len(data))[0]
            members = []
            for dict_id, k, frame, lo, hi in slots:
                if k == -2:
                    members += [b""] * (hi - lo)
                    continue
                payload = frame if k < 0 else frame_of(dict_id, k)
                offsets = list(accumulate(member_sizes[lo:hi], initial=0))
                members += map(payload.__getitem__, map(slice, offsets, offsets[1:]))
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
