"""Payload compression: zstd with a dictionary trained on the store's own events.

Transcript lines are repetitive JSON, so a dictionary learned from earlier lines compresses new
ones far better than zstd alone. Each event records which dictionary compressed it (`dict_id`:
NULL = stored as is, 0 = zstd without a dictionary, N = dictionary N), so a newer dictionary
applies to new events without rewriting old ones. Owns the `dictionaries` table.
"""

from __future__ import annotations

import ctypes
import os
import random
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import apsw
import zstandard

LEVEL = 3
DICT_SIZE = 1024 * 1024
"""A large dictionary: transcripts repeat long stretches (system prompts, tool schemas, file
contents), and 1 MiB compresses them 16-19% better than 112 KiB at the same level-3 speed."""
SAMPLE_BYTES = 64 * 1024
"""A training sample is a run of consecutive payloads joined, up to this size: shaped like the
blocks the dictionary will compress (on the 500 MB generated tree, blocks compress 5-8% smaller
with a dictionary learned from such runs than from the heads of single lines)."""
TRAINING_NICE = 10
"""How much lower than the appending threads' the training thread's priority is."""
SAMPLES = 600
"""Samples a dictionary learns from at most (about 38 MB, a second of training in the background).
More compress a little better and cost memory while the dictionary trains: ingesting the 500 MB
generated tree peaked at 196 MB RSS with 400, 235 MB with 600, 268 MB with 800."""
COVER_K, COVER_D = 1024, 8
"""Fixed fastcover segment and d-mer sizes: the same ratio on transcripts as zstd's own
parameter search, in a twentieth of the time (measured on the shared corpus: 4.24x either way)."""
FIRST_TRAINING_AT = 2_000
"""Train the first dictionary once the log holds this many events."""
RETRAIN_FACTOR = 8
"""Train a newer dictionary each time the log grows this many times past the last training."""
SMALLEST_COMPRESSED = 24
"""Payloads shorter than this are stored as they are: a zstd frame would not be smaller."""
CHUNK = 1_000
CHUNK_BYTES = 1024 * 1024
"""Large batches are compressed in chunks of at most this many payloads or bytes, ahead of the caller."""

_worker: ThreadPoolExecutor | None = None
_trainer: ThreadPoolExecutor | None = None


def _chunks(payloads: Sequence[bytes]) -> list[tuple[int, int]]:
    """(start, end) index ranges of at most CHUNK payloads or CHUNK_BYTES bytes (at least one
    payload). The first chunks are smaller, each twice the one before (from a sixteenth), so
    the caller waits little for the first and the worker keeps ahead of the caller after it."""
    ranges, start, size, limit = [], 0, 0, CHUNK_BYTES // 16
    for i, payload in enumerate(payloads):
        if i > start and (i - start >= CHUNK or size + len(payload) > limit):
            limit = min(2 * limit, CHUNK_BYTES)
            ranges.append((start, i))
            start, size = i, 0
        size += len(payload)
    ranges.append((start, len(payloads)))
    return ranges


def _compression_thread() -> ThreadPoolExecutor:
    global _worker
    if _worker is None:
        _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventstore-compress")
    return _worker


def _training_thread() -> ThreadPoolExecutor:
    global _trainer
    if _trainer is None:
        _trainer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventstore-train",
                                      initializer=_lower_priority)
    return _trainer


def _lower_priority() -> None:
    """Train on what CPU appends leave idle: on Linux a thread has a nice value of its own."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), TRAINING_NICE)
    except (AttributeError, OSError):
        pass


def _samples(payloads: Sequence[bytes]) -> list[bytes]:
    """At most SAMPLES runs of consecutive payloads, each joined and cut at SAMPLE_BYTES (or
    smaller, so that a little data still makes a hundred samples), spread evenly over `payloads`."""
    cut = min(SAMPLE_BYTES, max(256, sum(map(len, payloads)) // 100))
    runs: list[bytes] = []
    run: list[bytes] = []
    size = 0
    for payload in payloads:
        run.append(payload)
        size += len(payload)
        if size >= cut:
            runs.append(b"".join(run)[:cut])
            run, size = [], 0
    if run:
        runs.append(b"".join(run))
    return runs[::max(1, len(runs) // SAMPLES)][:SAMPLES]


def _enough(samples: list[bytes]) -> list[bytes] | None:
    """The samples, or None when they hold too little to learn from."""
    return samples if len(samples) >= 64 and sum(map(len, samples)) >= 64 * 1024 else None


def _train_from_log(path: str, head: int) -> tuple[zstandard.ZstdCompressionDict | None, int]:
    """In the training thread: sample the log through a connection of its own (what is committed
    so far), then train; returns the dictionary and how many samples it learnt from."""
    conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
    try:
        with conn:  # one read snapshot
            samples = _enough(_samples(_stored_samples(conn, Codec(conn, compress=False), head)))
    finally:
        conn.close()
    return _learn(samples) if samples else (None, 0)


def _learn(samples: list[bytes]) -> tuple[zstandard.ZstdCompressionDict | None, int]:
    """In the training thread: train, let the samples go, and give the memory back."""
    count = len(samples)
    zdict = _train(samples)
    samples.clear()
    _release_free_memory()
    return zdict, count


def _release_free_memory() -> None:
    """Return freed heap memory to the system. glibc keeps what a thread frees in that thread's
    arena, where the appending thread never reuses it: tens of MB of samples and of zstd's copy
    of them stayed in the process's RSS to its end. Elsewhere (no malloc_trim) nothing to do."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def _train(samples: list[bytes]) -> zstandard.ZstdCompressionDict | None:
    """Train a dictionary (zstd releases the GIL meanwhile); None when the samples are too uniform."""
    try:
        return zstandard.train_dictionary(
            min(DICT_SIZE, sum(map(len, samples)) // 10), samples, k=COVER_K, d=COVER_D, level=LEVEL
        )
    except zstandard.ZstdError:
        return None


class Codec:
    """Encodes payloads for storage and decodes them back to the exact original bytes."""

    def __init__(self, conn: apsw.Connection, *, compress: bool = True) -> None:
        self._conn = conn
        self.compress = compress
        self._decompressors: dict[int, zstandard.ZstdDecompressor] = {0: zstandard.ZstdDecompressor()}
        self._compressor: zstandard.ZstdCompressor | None = None  # built on first use (see `_encoder`)
        self._dictionary: bytes | None = None
        self._dict_id = 0
        self._trained_at = 0
        self._newest: tuple | None = None  # (dict_id, created_at, trained_at, length) of the newest row, as last read
        self._training: tuple[Future, int] | None = None  # ((dictionary, samples), trained_at)
        self.reload()

    def reload(self) -> None:
        """Use the newest dictionary in the database (another process may have trained one, or a
        rolled-back transaction may have discarded the one this process trained). Every write
        transaction asks, so the dictionary itself (1 MiB) is read only when it is not the one
        in use."""
        rows = self._conn.execute(
            "SELECT dict_id, created_at, trained_at, length(data) FROM dictionaries ORDER BY dict_id DESC LIMIT 1"
        ).fetchall()
        fingerprint = tuple(rows[0]) if rows else (0, 0, 0, 0)
        if fingerprint == self._newest:
            return
        newest = fingerprint[0]
        row = self._conn.execute(
            "SELECT dict_id, trained_at, data FROM dictionaries WHERE dict_id = ?", (newest,)
        ).fetchall()
        # An id may be used again for another dictionary (the newest deleted, or its transaction
        # rolled back): the id alone does not tell which one a cached decompressor was built from.
        for stale in [d for d in self._decompressors if d >= newest and d != 0]:
            del self._decompressors[stale]
        self._newest = fingerprint
        self._compressor = None
        if row:
            self._dictionary, self._dict_id, self._trained_at = row[0][2], newest, row[0][1]
        else:
            self._dictionary, self._dict_id, self._trained_at = None, 0, 0

    def _encoder(self) -> zstandard.ZstdCompressor:
        """The compressor for the current dictionary, built when first needed: digesting a
        dictionary costs milliseconds that a reader (a query, a rebuild's helper) never needs."""
        if self._compressor is None:
            zdict = None if self._dictionary is None else zstandard.ZstdCompressionDict(self._dictionary)
            self._compressor = _compressor(zdict)
        return self._compressor

    def encode(self, data: bytes) -> tuple[int | None, bytes]:
        """Return (dict_id, stored bytes) for a payload: compressed when that is smaller."""
        if len(data) < SMALLEST_COMPRESSED or not self.compress:
            return None, data
        packed = (self._compressor or self._encoder()).compress(data)
        if len(packed) >= len(data):
            return None, data
        return self._dict_id, packed

    def encode_chunks(self, payloads: Sequence[bytes]) -> Iterator[tuple[int, list[tuple[int | None, bytes]]]]:
        """Start encoding payloads in chunks of about a megabyte; the iterator returned yields
        (start index, encoded chunk) in order.

        A worker thread compresses the chunks in C without holding the GIL, starting now, while
        the caller prepares and stores them, so compression and SQLite's writes overlap on two cores.
        """
        chunks = _chunks(payloads)
        if len(chunks) == 1 or not self.compress or not all(payloads):
            return iter([(0, [self.encode(p) for p in payloads])])
        compressor, dict_id = self._encoder(), self._dict_id
        pool = _compression_thread()
        futures = [pool.submit(compressor.multi_compress_to_buffer, payloads[start:end], threads=1)
                   for start, end in chunks]

        def results() -> Iterator[tuple[int, list[tuple[int | None, bytes]]]]:
            for (start, end), future in zip(chunks, futures):
                packed = future.result()
                encoded = []
                for i, data in enumerate(payloads[start:end]):
                    frame = packed[i]  # a buffer SQLite binds as a blob without copying it to bytes first
                    small = len(data) < SMALLEST_COMPRESSED or len(frame) >= len(data)
                    encoded.append((None, data) if small else (dict_id, frame))
                yield start, encoded

        return results()

    def decode(self, dict_id: int | None, stored: bytes) -> bytes:
        """Return the original payload of a stored one."""
        if dict_id is None:
            return stored
        decompressor = self._decompressors.get(dict_id)
        if decompressor is None:
            decompressor = self._load_decompressor(dict_id)
        return decompressor.decompress(stored)

    def decode_many(self, stored: Sequence[tuple[int | None, bytes]]) -> list[bytes]:
        """Decode many payloads; large groups are decompressed by two threads, outside the GIL."""
        out: list[bytes] = [b""] * len(stored)
        groups: dict[int, list[int]] = {}
        for i, (dict_id, data) in enumerate(stored):
            if dict_id is None:
                out[i] = data
            else:
                groups.setdefault(dict_id, []).append(i)
        for dict_id, indexes in groups.items():
            decompressor = self._decompressors.get(dict_id) or self._load_decompressor(dict_id)
            if len(indexes) < 64:
                for i in indexes:
                    out[i] = decompressor.decompress(stored[i][1])
                continue
            frames = decompressor.multi_decompress_to_buffer([stored[i][1] for i in indexes], threads=2)
            for n, i in enumerate(indexes):
                out[i] = frames[n].tobytes()
        return out

    def _load_decompressor(self, dict_id: int) -> zstandard.ZstdDecompressor:
        decompressor = self._decompressors[dict_id] = new_decompressor(self._conn, dict_id)
        return decompressor

    def training_due(self, head: int) -> bool:
        """Whether the log has grown enough since the last dictionary to train a new one."""
        if not self.compress or self._training is not None:
            return False
        if self._dict_id == 0:
            return head >= FIRST_TRAINING_AT
        return head >= self._trained_at * RETRAIN_FACTOR

    def training(self) -> bool:
        """Whether a dictionary is being trained in the background, not yet stored."""
        return self._training is not None

    def has_dictionary(self) -> bool:
        """Whether a trained dictionary compresses new payloads (or one is being trained)."""
        return self._dict_id != 0 or self._training is not None

    def train(self, conn: apsw.Connection, head: int, now: int) -> int | None:
        """Train a dictionary from a sample of stored payloads and use it, inside a write transaction."""
        samples = _enough(_samples(_stored_samples(conn, self, head)))
        zdict = _train(samples) if samples else None
        return None if zdict is None else self._install(conn, zdict, head, len(samples or ()), now)

    def train_later(self, conn: apsw.Connection, head: int, recent: Sequence[bytes] = ()) -> None:
        """Start training a dictionary in the background; `adopt` stores it, and appends carry on
        meanwhile with the dictionary they have. It learns from `recent` payloads (a bulk
        append's, in memory already) when they make a full sample or the log has no dictionary
        yet, else from a sample of the stored ones, which the training thread reads through a
        connection of its own; `head` is the log's size counting them."""
        samples = _enough(_samples(recent)) if _full_sample(recent) or self._dict_id == 0 else None
        if samples is not None:
            self._training = (_training_thread().submit(_learn, samples), head)
        elif conn.filename:
            self._training = (_training_thread().submit(_train_from_log, conn.filename, head), head)

    def adopt(self, conn: apsw.Connection, now: int, *, wait: bool = False) -> int | None:
        """Store a dictionary trained in the background and use it from now on, inside a write
        transaction. It waits for a training still running when told to, or once the log has
        doubled since."""
        if self._training is None:
            return None
        future, trained_at = self._training
        if not future.done() and not wait and _head(conn) < 2 * trained_at:
            return None
        self._training = None
        zdict, samples = future.result()
        return None if zdict is None else self._install(conn, zdict, trained_at, samples, now)

    def _install(self, conn: apsw.Connection, zdict: zstandard.ZstdCompressionDict, trained_at: int,
                 samples: int, now: int) -> int:
        conn.execute(
            "INSERT INTO dictionaries (created_at, trained_at, samples, data) VALUES (?, ?, ?, ?)",
            (now, trained_at, samples, zdict.as_bytes()),
        )
        dict_id = conn.last_insert_rowid()
        self._compressor, self._dictionary = _compressor(zdict), zdict.as_bytes()
        self._dict_id, self._trained_at = dict_id, trained_at
        self._newest = (dict_id, now, trained_at, len(self._dictionary))
        self._decompressors.pop(dict_id, None)
        return dict_id


def new_decompressor(conn: apsw.Connection, dict_id: int) -> zstandard.ZstdDecompressor:
    """A decompressor for payloads stored with `dict_id` (0: zstd without a dictionary). Each
    thread needs its own: one is not safe to use from two at once."""
    if dict_id == 0:
        return zstandard.ZstdDecompressor()
    rows = conn.execute("SELECT data FROM dictionaries WHERE dict_id = ?", (dict_id,)).fetchall()
    if not rows:
        raise LookupError(f"compression dictionary {dict_id} is missing from the database")
    return zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(rows[0][0]))


def _full_sample(payloads: Sequence[bytes]) -> bool:
    """Whether these payloads alone make SAMPLES samples."""
    return sum(map(len, payloads)) >= SAMPLES * SAMPLE_BYTES


def _head(conn: apsw.Connection) -> int:
    return conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchall()[0][0]


def _stored_samples(conn: apsw.Connection, codec: Codec, head: int) -> list[bytes]:
    """Stored payloads to sample from: SAMPLES runs of a block's worth of neighbours from random
    places in the log, in log order (a run shares its blocks, so it costs little to read however
    large the log). The places depend only on `head`: the same log trains the same dictionary."""
    from eventstore.payloads import BLOCK_EVENTS, read_positions  # payloads builds on this module

    run = BLOCK_EVENTS
    starts = sorted(random.Random(head).sample(range(head // run), min(SAMPLES, head // run))) or [0]
    found: list[bytes] = []
    size = 0
    for i in range(0, len(starts), 32):  # a few runs at a time, until they fill SAMPLES samples
        wanted = [p for k in starts[i:i + 32] for p in range(k * run + 1, min((k + 1) * run, head) + 1)]
        read = [payload for payload in read_positions(conn, codec, wanted).values() if payload]
        found += read
        size += sum(map(len, read))
        if size >= SAMPLES * SAMPLE_BYTES:
            break
    return found


def _compressor(zdict: zstandard.ZstdCompressionDict | None) -> zstandard.ZstdCompressor:
    if zdict is not None:
        zdict.precompute_compress(level=LEVEL)
    return zstandard.ZstdCompressor(
        level=LEVEL, dict_data=zdict, write_checksum=False, write_dict_id=False, write_content_size=True
    )
