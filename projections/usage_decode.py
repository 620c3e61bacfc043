"""Reading usage entries from event payloads fast, with exactly the rules of `usage_entries`.

`projections.usage_entries` states ccusage's rules as functions over a decoded record; run on
every assistant line of a log they cost most of a replay (a full JSON decode, then Python
checks through `Mapping` instance tests). `record_entries` gives the same entries from the
raw bytes in three steps, each falling back to the next:

1. typed: msgspec decodes a well-formed assistant record's few fields, checking their types
   in C and skipping the message content; a record it rejects goes on to
2. lean: the fields `entries_from_record` reads, as builtins, handed to its own functions;
3. full: the whole record, through `entries_from_record` itself.

Steps 1 and 2 skip `usage_entries`' walk for rejected nulls: they run only on bytes where
`has_rejected_null` found none. tests/test_usage.py checks on odd records that the result is
always that of `entries_from_record`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from projections.usage_entries import (
    _SEMVER_PREFIX,
    SYNTHETIC_MODEL,
    USAGE_MARKER,
    UsageEntry,
    _direct_entry,
    _progress_entry,
    entries_from_record,
    timestamp_ms,
)
from schemas.lean import Usage

__all__ = ["has_rejected_null", "record_entries", "timestamp_ms"]

# ccusage drops a record with one of these keys null anywhere in it; when none is, the typed
# and lean decoders below (which skip message content) see everything the rules read.
_NULL_REJECTED = frozenset((b"id", b"cwd", b"model", b"speed", b"costUSD", b"version", b"sessionId", b"requestId",
                            b"isApiErrorMessage", b"cache_read_input_tokens", b"cache_creation_input_tokens"))
_JSON_SPACE = b" \t\r\n"


def has_rejected_null(data: bytes) -> bool:
    """Whether a key ccusage rejects when null (`"id": null`, ...) is null anywhere in these JSON bytes.

    Scans each `null` back to its key; inside a JSON string a quote is escaped, so text that
    merely looks like such a key never counts, and a false alarm only costs the slow path.
    """
    find, rfind = data.find, data.rfind
    at = find(b"null")
    while at != -1:
        if data[at - 2:at] == b'":':  # the compact form, `"key":null`, checked without walking
            if data[rfind(b'"', 0, at - 2) + 1:at - 2] in _NULL_REJECTED:
                return True
            at = find(b"null", at + 4)
            continue
        j = at - 1
        while j >= 0 and data[j] in _JSON_SPACE:
            j -= 1
        if j > 0 and data[j] == 58:  # ':'
            j -= 1
            while j >= 0 and data[j] in _JSON_SPACE:
                j -= 1
            if j > 0 and data[j] == 34 and data[rfind(b'"', 0, j) + 1:j] in _NULL_REJECTED:  # '"'
                return True
        at = find(b"null", at + 4)
    return False


# The common case, typed: a well-formed assistant record. msgspec checks every type in C
# (skipping the message content); a record it rejects takes the general path below, so a
# record this path accepts gets exactly the entry `entries_from_record` would give it.

class _TypedMessage(msgspec.Struct, gc=False):
    usage: Usage
    id: str | None = None
    model: str | None = None


class _TypedRecord(msgspec.Struct, gc=False):
    message: _TypedMessage
    timestamp: str
    sessionId: str | None = None
    version: str | None = None
    requestId: str | None = None
    isSidechain: bool | None = None
    costUSD: float | None = None
    isApiErrorMessage: bool | None = None
    uuid: Any = None


_TYPED = msgspec.json.Decoder(_TypedRecord)


def _typed_entry(data: bytes) -> UsageEntry | None:
    """The entry of a well-formed assistant record; None: let the general path decide."""
    try:
        record = _TYPED.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    message = record.message
    version = record.version
    if (record.sessionId == "" or record.requestId == "" or message.id == "" or not message.model
            or message.model == SYNTHETIC_MODEL or record.isApiErrorMessage
            or (version is not None and not _SEMVER_PREFIX.match(version))):
        return None
    ms = timestamp_ms(record.timestamp)
    if ms is None:
        return None
    usage = message.usage
    split = usage.cache_creation
    if split is None:
        write_5m, write_1h = usage.cache_creation_input_tokens, 0
    else:
        write_5m, write_1h = split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens
    return UsageEntry(
        message_id=message.id, request_id=record.requestId, session_id=record.sessionId,
        is_sidechain=record.isSidechain is True, timestamp=record.timestamp, ms=ms, model=message.model,
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
        cache_creation_tokens=write_5m + write_1h, cache_read_tokens=usage.cache_read_input_tokens,
        cache_creation_5m_tokens=write_5m, cache_creation_1h_tokens=write_1h, speed=usage.speed,
        cost_usd=record.costUSD, from_progress=False, uuid=record.uuid if isinstance(record.uuid, str) else None,
    )


# The general path, lean: the fields `entries_from_record` reads, absent ones left out.


class _Message(msgspec.Struct, gc=False):
    id: Any = msgspec.UNSET
    model: Any = msgspec.UNSET
    usage: Any = msgspec.UNSET


class _Envelope(msgspec.Struct, gc=False):
    timestamp: Any = msgspec.UNSET
    requestId: Any = msgspec.UNSET
    isSidechain: Any = msgspec.UNSET
    costUSD: Any = msgspec.UNSET
    isApiErrorMessage: Any = msgspec.UNSET
    uuid: Any = msgspec.UNSET
    message: _Message | msgspec.UnsetType = msgspec.UNSET


class _Data(msgspec.Struct, gc=False):
    message: _Envelope | msgspec.UnsetType = msgspec.UNSET


class _Record(_Envelope, gc=False):
    """A top-level record: the envelope fields, plus these."""

    sessionId: Any = msgspec.UNSET
    version: Any = msgspec.UNSET
    data: _Data | msgspec.UnsetType = msgspec.UNSET


_LEAN = msgspec.json.Decoder(_Record)


def record_entries(data: bytes) -> list[UsageEntry]:
    """The usage entries of one event's payload, by ccusage's rules (its `"usage":{` prefilter included)."""
    if USAGE_MARKER not in data:
        return []
    if not has_rejected_null(data):
        entry = _typed_entry(data)
        if entry is not None:
            return [entry]
        try:
            lean = msgspec.to_builtins(_LEAN.decode(data))
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            pass  # an odd shape somewhere: read the whole record instead
        else:
            return _rules(_lean_entries, lean)
    try:
        record = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return []
    return _rules(entries_from_record, record) if isinstance(record, dict) else []


def _lean_entries(lean: dict[str, Any]) -> list[UsageEntry]:
    """`entries_from_record` without its walk for rejected nulls (the bytes have none)."""
    message = lean.get("message")
    entry = None
    if isinstance(message, dict) and isinstance(message.get("usage"), dict):
        entry = _direct_entry(lean, message)
    if entry is None:
        entry = _progress_entry(lean)
    return [] if entry is None else [entry]


def _rules(read, record: dict[str, Any]) -> list[UsageEntry]:
    try:
        return read(record)
    except TypeError:
        # usage_entries tests `speed in {...}`, which raises for a list or object `speed`;
        # ccusage rejects such a record, and so do we.
        return []
