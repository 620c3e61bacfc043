"""Turning transcript bytes into events: complete lines, concatenated objects, the envelope.

A line is complete only with its newline. A line may hold several JSON objects written back to
back; each becomes its own event, and together their bytes are exactly the line. Bytes that do
not decode as JSON are returned as quarantine entries with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from hashlib import blake2b

import msgspec

from schemas.envelope import NewEvent
from schemas.transcript import decode_header
from schemas.transcript_events import (
    ACTOR,
    ENTITY,
    OTHER,
    RECORD_TYPES,
    event_type,
    session_stream,
    shared_line_id,
)

MAX_LINE = 64 * 1024 * 1024
"""A line longer than this is quarantined instead of decoded (bounds memory on broken files)."""


class Piece(msgspec.Struct, frozen=True):
    """One JSON object of a line, at a byte offset in its file."""

    offset: int
    event: NewEvent


class Bad(msgspec.Struct, frozen=True):
    """Bytes at an offset that could not be decoded, and why."""

    offset: int
    reason: str
    data: bytes


def complete_lines(buffer: bytes, base: int) -> tuple[list[tuple[int, bytes]], int]:
    """Split off every newline-terminated line: ([(file offset, line without \\n)], bytes consumed)."""
    end = buffer.rfind(b"\n") + 1
    if end == 0:
        return [], 0
    lines = []
    offset = base
    for line in buffer[: end - 1].split(b"\n"):
        lines.append((offset, line))
        offset += len(line) + 1
    return lines, end


def line_pieces(offset: int, line: bytes, fallback_session: str) -> Iterator[Piece | Bad]:
    """Decode one line into events (one per JSON object), or quarantine entries."""
    if not line.strip():
        return
    if len(line) > MAX_LINE:
        yield Bad(offset, f"line of {len(line)} bytes is longer than the {MAX_LINE}-byte limit", line)
        return
    try:
        header = decode_header(line)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError):
        yield from _split_concatenated(offset, line, fallback_session)
        return
    yield Piece(offset, _event(line, header, fallback_session))


def line_event(line: bytes, fallback_session: str) -> NewEvent | None:
    """The event of a line holding exactly one JSON value; None for every other case (blank,
    too long, several objects, not JSON), which `line_pieces` sorts out."""
    if len(line) > MAX_LINE:
        return None
    try:
        header = decode_header(line)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError):
        return None
    return _event(line, header, fallback_session)


def _split_concatenated(offset: int, line: bytes, fallback_session: str) -> Iterator[Piece | Bad]:
    """The rare path: several objects on one line, or bytes that are not JSON at all."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield Bad(offset, f"not UTF-8 ({exc.reason} at byte {exc.start})", line)
        return
    decoder = json.JSONDecoder()
    starts = []
    index = 0
    while index < len(text):
        while index < len(text) and text[index] in " \t\r":
            index += 1
        if index >= len(text):
            break
        try:
            _, end = decoder.raw_decode(text, index)
        except (json.JSONDecodeError, RecursionError) as exc:
            reason = _json_reason(exc) if isinstance(exc, json.JSONDecodeError) else "not JSON: nested too deeply"
            if not starts:
                yield Bad(offset, reason, line)
                return
            starts.append((index, reason))
            break
        starts.append((index, None))
        index = end
    cuts = [len(text[:start].encode("utf-8")) for start, _ in starts] + [len(line)]
    shared = shared_line_id(line) if len(starts) > 1 else None
    for (start, failure), begin, finish in zip(starts, cuts, cuts[1:]):
        data = line[begin:finish]
        if failure is not None:
            yield Bad(offset + begin, failure, data)
            continue
        try:
            header = decode_header(data)
        except (msgspec.DecodeError, RecursionError, ValueError) as exc:
            yield Bad(offset + begin, f"not JSON: {exc}", data)
            continue
        yield Piece(offset + begin, _event(data, header, fallback_session, shared))


_stream_prefixes: dict[str, tuple[str, object]] = {}
"""Session id -> (stream name, hash state of the stream's id prefix), reused line after line."""
_EVENT_TYPES = {record_type: event_type(record_type) for record_type in RECORD_TYPES}


def _json_reason(exc: json.JSONDecodeError) -> str:
    """Why a line is not JSON, where: `Invalid control character at character 81`."""
    where = "character" if exc.msg.endswith(" at") else "at character"  # some messages end in "at"
    return f"not JSON: {exc.msg} {where} {exc.pos}"


def _event(data: bytes, header, fallback_session: str, shared_line: str | None = None) -> NewEvent:
    session = header.session_id if isinstance(header.session_id, str) and header.session_id else fallback_session
    known = _stream_prefixes.get(session)
    if known is None:
        if len(_stream_prefixes) > 100_000:
            _stream_prefixes.clear()
        stream = session_stream(session)
        prefix = blake2b(stream.encode(), digest_size=16)
        prefix.update(b"\n")
        known = _stream_prefixes[session] = (stream, prefix)
    stream, prefix = known
    digest = prefix.copy()
    digest.update(data)
    event_id = digest.hexdigest()
    entity_id = header.uuid if isinstance(header.uuid, str) and header.uuid else event_id
    # Positional, in NewEvent's field order: event_id, stream, type, entity, entity_id, op, data,
    # schema_version, actor, occurred_at, causation_id, correlation_id.
    return NewEvent(event_id, stream, _EVENT_TYPES.get(header.type, OTHER), ENTITY, entity_id, "create", data, 1, ACTOR,
                    parse_timestamp(header.timestamp), None, shared_line)


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAYS: dict[str, int] = {}


def parse_timestamp(value: object) -> int | None:
    """An ISO-8601 timestamp as epoch milliseconds; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    if len(value) == 24 and value[23] == "Z" and value[10] == "T" and value[19] == ".":
        # Claude Code's own form, 2026-05-01T10:00:00.000Z: the day from a cache, the rest by hand.
        day = _DAYS.get(value[:10])
        if day is None:
            try:
                day = _DAYS[value[:10]] = date.fromisoformat(value[:10]).toordinal() - _EPOCH_ORDINAL
            except ValueError:
                return None
        hours, minutes, seconds, millis = value[11:13], value[14:16], value[17:19], value[20:23]
        if value[13] == value[16] == ":" and (hours + minutes + seconds + millis).isascii() \
                and (hours + minutes + seconds + millis).isdigit():
            h, m, sec = int(hours), int(minutes), int(seconds)
            if h < 24 and m < 60 and sec < 60:
                return (((day * 24 + h) * 60 + m) * 60 + sec) * 1000 + int(millis)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return round(moment.timestamp() * 1000)
