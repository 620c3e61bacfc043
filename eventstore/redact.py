"""`eventstore redact`: the one sanctioned rewrite of stored payloads.

A secret pasted into a session (an API key, a password) is in the log forever unless it is
taken out. `redact(store, pattern)` finds every payload a regular expression matches and
replaces each match with `[REDACTED]`. In a payload that is JSON (every transcript line the log
keeps, every event of this tool's own) the pattern is matched against each string, keys too, as
the text reads, escapes decoded, and a match is replaced inside its string: the line stays the
JSON it was, and a secret is found as it was typed, quotes and backslashes included. In any
other payload (a damaged line, a quarantined one) it is matched against the raw bytes. Then:

1. events are rewritten in batches, one transaction each: the append-only triggers are dropped,
   the payloads re-encoded and updated, each event marked in `redacted_events`, and the
   triggers re-created from their own stored SQL, all in that one transaction (no other
   writer ever sees the table without its triggers, and a crash leaves it whole);
2. quarantined lines are redacted too (they are raw transcript bytes);
3. a compression dictionary is trained from samples of payloads, so it may hold the secret
   itself: such a dictionary is replaced by a newly trained one, every event it compressed is
   re-encoded, and it is deleted (the new one is inserted first, so its id is higher and every
   process switches to it at its next write);
4. the operation is recorded as an `audit.redact` event: a SHA-256 of the pattern, never the
   pattern (it may be the secret itself), how many events, by whom, when;
5. every projection that reads the affected event types is rebuilt, so no read model keeps the
   text;
6. `PRAGMA secure_delete` is on throughout (freed content is zeroed), then VACUUM rewrites the
   file and a TRUNCATE checkpoint empties the WAL, so the bytes are gone from the database
   file and its WAL, not only from its tables.

An event's id is left as it is: ids are identities, not checksums, even where a transcript
line's id was derived from its content. A later copy of the original line (the file read
again, an import) is then recognised as the event it is, and not stored again.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable

import apsw
import msgspec
import zstandard

from eventstore import audit, payloads
from eventstore.codec import LEVEL, SMALLEST_COMPRESSED
from eventstore.errors import EventStoreError, StoreBusy
from eventstore.storage import translated
from eventstore.store import Store

REPLACEMENT = b"[REDACTED]"
BATCH = 1_000
SCAN_BATCH = 5_000
LISTED_POSITIONS = 1_000
"""The audit event lists at most this many positions (its count is always complete)."""
WAIT_SECONDS = 60.0
"""How long to wait for another process's rebuild, or for readers to leave the WAL."""

Progress = Callable[[str], None]


class RedactError(EventStoreError):
    """A redaction that cannot be done as asked (the message says why)."""


class RedactReport(msgspec.Struct, kw_only=True):
    """What a redaction did, or with `dry_run` would do (the `redact --json` document)."""

    pattern_sha256: str
    dry_run: bool
    events: int = 0
    matches: int = 0
    positions: list[int] = msgspec.field(default_factory=list)
    event_types: list[str] = msgspec.field(default_factory=list)
    quarantined_lines: int = 0
    dictionaries_replaced: int = 0
    events_reencoded: int = 0
    projections_rebuilt: list[str] = msgspec.field(default_factory=list)
    audit_position: int | None = None
    vacuumed: bool = False
    wal_truncated: bool = False
    seconds: float = 0.0


def pattern_hash(pattern: str) -> str:
    """How the audit trail names a pattern: SHA-256 of its UTF-8 bytes (verifiable, not reversible)."""
    return "sha256:" + hashlib.sha256(pattern.encode("utf-8")).hexdigest()


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
"""A string of a JSON text, quotes and escapes included (outside strings JSON has no quotes)."""
_NOT_JSON = object()
SEEN_TEXTS = 10_000
"""Distinct matched texts kept to look for in compression dictionaries (a dictionary holds raw
JSON, where a text with a quote or a backslash is written escaped)."""


class Pattern:
    """A redaction pattern, applied as the module docstring says."""

    def __init__(self, pattern: str) -> None:
        try:
            self.text = re.compile(pattern)
            self.raw = re.compile(pattern.encode("utf-8"))
        except re.error as exc:
            raise RedactError(f"the pattern is not a regular expression: {exc}") from None
        if self.text.search("") is not None or self.raw.search(b"") is not None:
            raise RedactError("the pattern matches the empty string, so it would redact between every byte; "
                              "make it match at least one character")
        self.seen: set[str] = set()

    def count(self, payload: bytes) -> int:
        """How many matches redacting this payload replaces."""
        value = _json(payload)
        if value is _NOT_JSON:
            return len(self.raw.findall(payload))
        matches = 0
        stack = [value]
        while stack:
            item = stack.pop()
            if type(item) is str:
                found = self.text.findall(item)
                if found:
                    matches += len(found)
                    self._remember(item)
            elif type(item) is dict:
                stack.extend(item)
                stack.extend(item.values())
            elif type(item) is list:
                stack.extend(item)
        return matches

    def redact(self, payload: bytes) -> tuple[bytes, int]:
        """The payload with every match replaced, and how many there were."""
        if _json(payload) is _NOT_JSON:
            return self.raw.subn(REPLACEMENT, payload)
        matches = 0

        def clean(string: re.Match[bytes]) -> bytes:
            nonlocal matches
            text = msgspec.json.decode(string.group())
            cleaned, n = self.text.subn(REPLACEMENT.decode(), text)
            if not n:
                return string.group()
            matches += n
            return _json_string(cleaned)

        return _JSON_STRING.sub(clean, payload), matches

    def taints(self, data: bytes) -> bool:
        """Whether raw bytes (a compression dictionary) may hold a matched text."""
        return self.raw.search(data) is not None or any(
            form in data for text in self.seen for form in (text.encode("utf-8", "surrogatepass"), _json_string(text)[1:-1]))

    def _remember(self, text: str) -> None:
        if len(self.seen) < SEEN_TEXTS:
            self.seen.update(self.text.findall(text) if self.text.groups == 0 else
                             (m.group() for m in self.text.finditer(text)))


def _json(payload: bytes) -> object:
    try:
        return msgspec.json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return _NOT_JSON


def _json_string(text: str) -> bytes:
    """A text as a JSON string."""
    try:
        return msgspec.json.encode(text)
    except UnicodeEncodeError:  # a lone surrogate (from a \ud800 escape): written as an escape again
        return json.dumps(text).encode("ascii")


def redact(store: Store, pattern: str, *, dry_run: bool = False, progress: Progress | None = None) -> RedactReport:
    """Replace every match of `pattern` in stored payloads with [REDACTED], everywhere it is kept."""
    started = time.perf_counter()
    say = progress or (lambda _step: None)
    regex = Pattern(pattern)
    report = RedactReport(pattern_sha256=pattern_hash(pattern), dry_run=dry_run)
    say("scanning")
    found, types, head, matches = _scan_events(store, regex, 0)
    quarantined = _scan_quarantine(store, regex)
    tainted = _tainted_dictionaries(store, regex)
    report.quarantined_lines = len(quarantined)
    report.dictionaries_replaced = len(tainted)
    if dry_run:
        report.events, report.positions = len(found), found[:LISTED_POSITIONS]
        report.matches = matches
        report.event_types = sorted(types)
        report.projections_rebuilt = _affected_projections(store, types)
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    audit_id = audit.new_event_id()
    conn = store.db.conn
    previous = conn.execute("PRAGMA secure_delete").fetchall()[0][0]
    conn.execute("PRAGMA secure_delete = ON")  # https://www.sqlite.org/pragma.html#pragma_secure_delete
    try:
        redacted: list[int] = []
        while found:
            say(f"redacting {len(found)} events")
            report.matches += _rewrite(store, regex, found, tainted, audit_id)
            redacted.extend(found)
            # A writer may have appended more of it since the scan (a transcript still being written).
            found, more_types, head, _ = _scan_events(store, regex, head)
            types |= more_types
        report.events, report.positions = len(redacted), redacted[:LISTED_POSITIONS]
        report.event_types = sorted(types)
        if quarantined:
            _rewrite_quarantine(store, regex, quarantined)
        if tainted:
            say("replacing compression dictionaries")
            report.events_reencoded = _replace_dictionaries(store, regex, tainted)
        report.projections_rebuilt = _affected_projections(store, types)
        report.audit_position = audit.record_now(store, "redact", {
            "pattern_sha256": report.pattern_sha256, "events": report.events, "matches": report.matches,
            "positions": report.positions, "positions_listed": len(report.positions),
            "event_types": report.event_types, "quarantined_lines": report.quarantined_lines,
            "dictionaries_replaced": report.dictionaries_replaced, "events_reencoded": report.events_reencoded,
            "projections_rebuilt": report.projections_rebuilt,
        }, event_id=audit_id)
        if report.projections_rebuilt:
            say(f"rebuilding {', '.join(report.projections_rebuilt)}")
            _rebuild(store, report.projections_rebuilt)
        say("vacuuming")
        report.vacuumed = _vacuum(store)
        report.wal_truncated = _truncate_wal(store)
    finally:
        conn.execute(f"PRAGMA secure_delete = {int(previous)}")
    report.seconds = round(time.perf_counter() - started, 3)
    return report


# ---------------------------------------------------------------- finding


def _scan_events(store: Store, regex: Pattern, after: int) -> tuple[list[int], set[str], int, int]:
    """Positions (after `after`) whose payload matches, their types, the last position read, and
    how many matches redacting them replaces."""
    found: list[int] = []
    matches = 0
    types: set[str] = set()
    codec = store.codec
    while True:
        with store.db.read() as conn:
            rows = conn.execute("SELECT position, type_no, dict_id, data, block_id FROM events WHERE position > ?"
                                " ORDER BY position LIMIT ?", (after, SCAN_BATCH)).fetchall()
            decoded = payloads.read(conn, codec, [(p, d, data, b) for p, _, d, data, b in rows])
        if not rows:
            return found, types, after, matches
        for (position, type_no, *_), payload in zip(rows, decoded):
            count = regex.count(payload)
            if count:
                matches += count
                found.append(position)
                types.add(store.names.name(store.db.conn, type_no))
        after = rows[-1][0]


def _scan_quarantine(store: Store, regex: Pattern) -> list[int]:
    """Quarantined lines holding a match: raw bytes, since they did not decode."""
    with store.db.read() as conn:
        return [qid for qid, line in conn.execute("SELECT quarantine_id, line FROM quarantine")
                if regex.raw.search(line)]


def _tainted_dictionaries(store: Store, regex: Pattern) -> list[int]:
    with store.db.read() as conn:
        return [dict_id for dict_id, data in conn.execute("SELECT dict_id, data FROM dictionaries")
                if regex.taints(data)]


def _affected_projections(store: Store, types: Iterable[str]) -> list[str]:
    """Installed projections that read any of these event types (and so may hold their text)."""
    types = set(types)
    if not types:
        return []
    try:
        from projections.runner import Runner
    except ImportError:
        return []
    runner = Runner.for_store(store)
    return [name for name, p in runner.projections.items() if p.handles is None or types & set(p.handles)]


# ---------------------------------------------------------------- rewriting


class _Encoder:
    """Encodes rewritten payloads like the codec does, but never with a dictionary that holds the secret."""

    def __init__(self, conn: apsw.Connection, avoid: Iterable[int]) -> None:
        avoid = list(avoid)
        sql = "SELECT dict_id, data FROM dictionaries"
        if avoid:
            sql += f" WHERE dict_id NOT IN ({','.join('?' * len(avoid))})"
        rows = conn.execute(sql + " ORDER BY dict_id DESC LIMIT 1", avoid).fetchall()
        zdict = None
        self.dict_id = 0
        if rows:
            self.dict_id, data = rows[0]
            zdict = zstandard.ZstdCompressionDict(data)
        self._compressor = zstandard.ZstdCompressor(level=LEVEL, dict_data=zdict, write_checksum=False,
                                                    write_dict_id=False, write_content_size=True)

    def encode(self, data: bytes) -> tuple[int | None, bytes]:
        if len(data) < SMALLEST_COMPRESSED:
            return None, data
        packed = self._compressor.compress(data)
        if len(packed) >= len(data):
            return None, data
        return self.dict_id, packed


def _without_triggers(tx) -> list[str]:
    """Drop the append-only triggers inside `tx`; return their SQL to re-create them in the same `tx`."""
    triggers = tx.execute(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND tbl_name IN ('events', 'blocks')")
    for name, _ in triggers:
        tx.execute(f'DROP TRIGGER "{name}"')
    return [sql for _, sql in triggers]


def _restore_triggers(tx, statements: list[str]) -> None:
    for sql in statements:
        tx.execute(sql)


def _rewrite(store: Store, regex: Pattern, positions: list[int], avoid: list[int], audit_id: str) -> int:
    """Redact the payloads at these positions, one transaction per batch; return how many matches."""
    matches = 0
    for start in range(0, len(positions), BATCH):
        chunk = positions[start:start + BATCH]
        with store.transaction() as tx:
            encoder = _Encoder(store.db.conn, avoid)
            triggers = _without_triggers(tx)
            replacements = {}
            for position, original in payloads.read_positions(store.db.conn, store.codec, chunk).items():
                clean, count = regex.redact(original)
                if not count:
                    continue
                matches += count
                replacements[position] = clean
                tx.execute("INSERT OR IGNORE INTO redacted_events (position, redacted_at, audit_id) VALUES (?, ?, ?)",
                           (position, tx.now, audit_id))
            payloads.rewrite(store.db.conn, store.codec, replacements, encoder.encode)
            _restore_triggers(tx, triggers)
    return matches


def _rewrite_quarantine(store: Store, regex: Pattern, ids: list[int]) -> None:
    for start in range(0, len(ids), BATCH):
        with store.transaction() as tx:
            for qid in ids[start:start + BATCH]:
                line = tx.execute("SELECT line FROM quarantine WHERE quarantine_id = ?", (qid,))[0][0]
                tx.execute("UPDATE quarantine SET line = ? WHERE quarantine_id = ?", (regex.raw.sub(REPLACEMENT, line), qid))


def _replace_dictionaries(store: Store, regex: Pattern, tainted: list[int]) -> int:
    """Replace dictionaries that hold the secret: train a clean one, re-encode their events, delete them."""
    with store.transaction() as tx:
        new_id = store.codec.train(store.db.conn, tx.head(), tx.now)
        clean = new_id is not None and not regex.taints(
            tx.execute("SELECT data FROM dictionaries WHERE dict_id = ?", (new_id,))[0][0])
        if not clean:
            # Too little to train from, or the new one holds the secret too: a small raw-content
            # dictionary still takes the highest id, so every process stops compressing with the
            # old one at its next write. It is inserted before a tainted new one is deleted, so it
            # never takes that one's id (a process would go on compressing with the deleted one).
            tx.execute("INSERT INTO dictionaries (created_at, trained_at, samples, data) VALUES (?, ?, 0, ?)",
                       (tx.now, tx.head(), b'{"type":"user","message":{"role":"assistant","content":[{"type":"text",'
                                           b'"text":"'))
            if new_id is not None:
                tx.execute("DELETE FROM dictionaries WHERE dict_id = ?", (new_id,))
    store.codec.reload()
    reencoded = 0
    marks = ",".join("?" * len(tainted))
    while True:
        with store.transaction() as tx:
            rows = tx.execute(f"SELECT position, dict_id, data FROM events WHERE dict_id IN ({marks}) LIMIT ?",
                              (*tainted, BATCH))
            blocks = tx.execute(f"SELECT block_id FROM blocks WHERE dict_id IN ({marks}) LIMIT ?", (*tainted, BATCH))
            if not rows and not blocks:
                tx.execute(f"DELETE FROM dictionaries WHERE dict_id IN ({marks})", tainted)
                return reencoded
            encoder = _Encoder(store.db.conn, tainted)
            triggers = _without_triggers(tx)
            for position, dict_id, data in rows:
                new_dict_id, stored = encoder.encode(store.codec.decode(dict_id, data))
                tx.execute("UPDATE events SET dict_id = ?, data = ? WHERE position = ?", (new_dict_id, stored, position))
            for (block_id,) in blocks:
                payloads.reencode_block(store.db.conn, store.codec, block_id, encoder.encode)
            _restore_triggers(tx, triggers)
            reencoded += len(rows) + len(blocks)


# ---------------------------------------------------------------- read models and the file


def _rebuild(store: Store, names: list[str]) -> None:
    """Rebuild these projections from the (now redacted) log; wait for another process's rebuild."""
    from projections.runner import RebuildBusy, Runner

    runner = Runner.for_store(store)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            runner.rebuild(names)
            break
        except RebuildBusy:
            if time.monotonic() > deadline:
                raise RedactError("the log is redacted, but another process kept rebuilding projections, so "
                                  f"{', '.join(names)} may still hold the text: run "
                                  f"`eventstore replay {' '.join('--projection ' + n for n in names)}`") from None
            time.sleep(0.5)
    if "vectors" in names:
        try:
            from projections.vectors import drop_orphans, ensure_sqlite_vec
        except ImportError:
            return
        ensure_sqlite_vec(store)
        with store.transaction() as tx:
            drop_orphans(tx)  # the replaced vector index, now referred to by nothing


def _vacuum(store: Store) -> bool:
    """Rewrite the whole database file, so no freed page keeps old bytes (https://www.sqlite.org/lang_vacuum.html)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            with translated(store.path):
                store.db.conn.execute("VACUUM")
            return True
        except StoreBusy:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


def _truncate_wal(store: Store) -> bool:
    """Copy the WAL into the database and truncate it to nothing; False if readers kept it in use."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with translated(store.path):
            busy, _, _ = store.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()[0]
        if not busy:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
