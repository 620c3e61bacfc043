"""One lean decode of a transcript line, shared by every projection that reads it in a batch.

A replay hands the same payload bytes to several projections (sessions, usage, tasks); each
decoding its own struct of the line costs a full scan of the bytes per projection. `line`
decodes the union of the few fields they read once, and remembers the result for the bytes
object it came from, so the next projection given the same event gets it for free.

The memo cannot go stale: it is keyed by the identity of the `data` object and holds a
reference to it (an identity is never reused while its object is alive), and it is bounded
(two generations of `GENERATION` entries). Decoded values are immutable in effect: callers
read them and never change them.

Typed where a reader needs the type checked in C (usage: token counts are non-negative
integers, `speed` is one of two strings); any line those types reject decodes to None, and
each reader then takes its own tolerant path. msgspec types only, no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

__all__ = ["Block", "CacheCreation", "Line", "Message", "Usage", "line"]

GENERATION = 8_192
"""Entries per memo generation: more than the lines of one runner batch (5,000 events)."""

_Count = Annotated[int, msgspec.Meta(ge=0)]


class CacheCreation(msgspec.Struct, gc=False):
    ephemeral_5m_input_tokens: _Count = 0
    ephemeral_1h_input_tokens: _Count = 0


class Usage(msgspec.Struct, gc=False):
    input_tokens: _Count
    output_tokens: _Count
    cache_creation_input_tokens: _Count = 0
    cache_read_input_tokens: _Count = 0
    cache_creation: CacheCreation | None = None
    speed: Literal["standard", "fast"] | None = None


class Block(msgspec.Struct, gc=False):
    """A content block: its kind, the tool a tool_use calls, the tool use a tool_result answers."""

    type: Any = None
    name: Any = None
    tool_use_id: Any = None


class Message(msgspec.Struct, gc=False):
    id: str | None = None
    model: str | None = None
    usage: Usage | None = None
    content: str | list[Block] | None = None


class Line(msgspec.Struct, gc=False):
    """The fields of a user, assistant or progress record that the built-in projections read."""

    uuid: Any = None
    parentUuid: Any = None
    isSidechain: bool | None = None
    isMeta: Any = None
    agentId: Any = None
    cwd: Any = None
    gitBranch: Any = None
    timestamp: str | None = None
    sessionId: str | None = None
    version: str | None = None
    requestId: str | None = None
    costUSD: float | None = None
    isApiErrorMessage: bool | None = None
    message: Message | None = None


_decode = msgspec.json.Decoder(Line).decode
_current: dict[int, tuple[bytes, Line | None]] = {}
_previous: dict[int, tuple[bytes, Line | None]] = {}


def line(data: bytes) -> Line | None:
    """The lean decode of a line's bytes; None when they are not a record of these types."""
    global _current, _previous
    key = id(data)
    hit = _current.get(key)
    if hit is None:
        hit = _previous.get(key)
    if hit is not None and hit[0] is data:
        return hit[1]
    try:
        decoded = _decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        decoded = None
    if len(_current) >= GENERATION:
        _previous, _current = _current, {}
    _current[key] = (data, decoded)
    return decoded
