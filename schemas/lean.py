"""One lean decode of an assistant line, shared by the projections that read it in a batch.

A replay hands the same payload bytes to several projections; sessions, usage and tasks all
read every assistant line, sessions and tasks every user line, and each decoding its own
struct of it costs a full scan of the bytes per projection. `assistant` and `user` decode the
union of the few fields they read once, and remember the result for the bytes object it came
from, so the next projection given the same event gets it for free. Of the content, only each
block's kind is decoded (which tools a response calls, which calls a user line answers).

The memo cannot go stale: it is keyed by the identity of the `data` object and holds a
reference to it (an identity is never reused while its object is alive); the runner empties it
after every batch, and it never holds more than `LIMIT` lines. Decoded values are immutable in
effect: callers read them and never change them.

Typed where a reader needs the type checked in C (usage: token counts are non-negative
integers, `speed` is one of two strings); any line those types reject decodes to None, and
each reader then takes its own tolerant path. msgspec types only, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

__all__ = ["Assistant", "AssistantMessage", "Block", "CacheCreation", "Message", "Usage", "User", "assistant",
           "forget", "take_assistant", "take_user", "user"]

LIMIT = 32_768
"""Entries a memo holds at most: more than the lines of a rebuild's batch (20,000 events)."""

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


class AssistantMessage(msgspec.Struct, gc=False):
    id: str | None = None
    model: str | None = None
    usage: Usage | None = None
    content: str | list[Block] | None = None


class Block(msgspec.Struct, gc=False):
    """A content block: its kind, a `tool_use`'s id and the tool it calls, the call a `tool_result` answers."""

    type: Any = None
    id: Any = None
    name: Any = None
    tool_use_id: Any = None


class Message(msgspec.Struct, gc=False):
    content: str | list[Block] | None = None


class User(msgspec.Struct, gc=False):
    """The fields of a user record that the built-in projections read (of its content, the blocks' kinds)."""

    uuid: Any = None
    parentUuid: Any = None
    isSidechain: Any = None
    isMeta: Any = None
    agentId: Any = None
    cwd: Any = None
    gitBranch: Any = None
    message: Message | None = None


class Assistant(msgspec.Struct, gc=False):
    """The fields of an assistant record that the built-in projections read (of its content, the blocks' kinds)."""

    uuid: Any = None
    parentUuid: Any = None
    isSidechain: bool | None = None
    agentId: Any = None
    cwd: Any = None
    gitBranch: Any = None
    timestamp: str | None = None
    sessionId: str | None = None
    version: str | None = None
    requestId: str | None = None
    costUSD: float | None = None
    isApiErrorMessage: bool | None = None
    message: AssistantMessage | None = None


def _memo(decode: Callable[[bytes], Any]) -> tuple[Callable[[bytes], Any], Callable[[bytes], Any]]:
    """`decode` remembered by the identity of the bytes: (get, take). `get` decodes and
    remembers; `take` gives what `get` remembered and forgets it (or decodes without
    remembering), for the last reader of a line, so the memo drains.

    An entry holds its bytes, so their identity cannot be reused while it stands. The runner
    empties the memo after every batch (`forget`); `LIMIT` bounds it for callers that do not.
    """
    memo: dict[int, tuple[bytes, Any]] = {}

    def get(data: bytes) -> Any:
        entry = memo.get(id(data))
        if entry is not None and entry[0] is data:
            return entry[1]
        try:
            value = decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            value = None
        if len(memo) >= LIMIT:
            memo.clear()
        memo[id(data)] = (data, value)
        return value

    def take(data: bytes) -> Any:
        entry = memo.pop(id(data), None)
        if entry is not None and entry[0] is data:
            return entry[1]
        try:
            return decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None

    _forgetters.append(memo.clear)
    return get, take


_forgetters: list[Callable[[], None]] = []


def forget() -> None:
    """Forget every remembered decode. The runner calls it after each batch, so the memo never
    keeps payloads alive past the batch that holds them (a projection that only `get`s, with no
    later reader to `take`, would otherwise keep up to `LIMIT` lines)."""
    for forget_one in _forgetters:
        forget_one()


assistant, take_assistant = _memo(msgspec.json.Decoder(Assistant).decode)
"""`assistant(data)`: the lean decode of an assistant line (None when these types reject it),
remembered; `take_assistant(data)`: the same for the last reader, which forgets it."""
user, take_user = _memo(msgspec.json.Decoder(User).decode)
"""The same for a user line."""
