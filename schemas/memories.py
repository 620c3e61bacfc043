"""Memory events: notes a person or an agent keeps, each change an event on stream `memory:<id>`.

Type strings are explicit and stable (they are stored in the log); a payload only ever gains
fields with defaults. `memory.updated` uses `msgspec.UNSET` for "unchanged", so a field left
out of the JSON keeps its value and `project: null` clears the project.

| type               | op     | payload           |
|--------------------|--------|-------------------|
| `memory.added`     | create | `MemoryAdded`     |
| `memory.updated`   | update | `MemoryUpdated`   |
| `memory.forgotten` | delete | `MemoryForgotten` |
| `memory.linked`    | link   | `MemoryLinked`    |
| `memory.unlinked`  | unlink | `MemoryUnlinked`  |
"""

from __future__ import annotations

from typing import Literal, Union

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "ADDED", "ENTITY", "FORGOTTEN", "LINKED", "LINK_TARGETS", "MemoryAdded", "MemoryForgotten",
    "MemoryLinked", "MemoryPayload", "MemoryUnlinked", "MemoryUpdated", "OPS", "PAYLOAD_TYPES",
    "STREAM_PREFIX", "TYPES", "UNLINKED", "UPDATED", "decode_payload", "encode_payload",
    "memory_of_stream", "memory_stream",
]

ENTITY = "memory"
STREAM_PREFIX = "memory:"

ADDED = "memory.added"
UPDATED = "memory.updated"
FORGOTTEN = "memory.forgotten"
LINKED = "memory.linked"
UNLINKED = "memory.unlinked"

LinkTarget = Literal["session", "task"]
LINK_TARGETS: tuple[str, ...] = ("session", "task")


class MemoryAdded(msgspec.Struct, frozen=True, kw_only=True):
    """A new memory: its text, tags and the project it belongs to (None: every project)."""

    memory_id: str
    text: str
    tags: tuple[str, ...] = ()
    project: str | None = None


class MemoryUpdated(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A change to a memory; a field left UNSET keeps its value."""

    memory_id: str
    text: str | UnsetType = UNSET
    tags: tuple[str, ...] | UnsetType = UNSET
    project: str | None | UnsetType = UNSET


class MemoryForgotten(msgspec.Struct, frozen=True, kw_only=True):
    """A soft delete: the memory leaves lists and search, its history stays in the log."""

    memory_id: str
    reason: str = ""


class MemoryLinked(msgspec.Struct, frozen=True, kw_only=True):
    """A link naming both ends: this memory and a session or a task."""

    memory_id: str
    target: LinkTarget
    target_id: str


class MemoryUnlinked(msgspec.Struct, frozen=True, kw_only=True):
    """The removal of a link made by `memory.linked`."""

    memory_id: str
    target: LinkTarget
    target_id: str


MemoryPayload = Union[MemoryAdded, MemoryUpdated, MemoryForgotten, MemoryLinked, MemoryUnlinked]

PAYLOAD_TYPES: dict[str, type] = {
    ADDED: MemoryAdded,
    UPDATED: MemoryUpdated,
    FORGOTTEN: MemoryForgotten,
    LINKED: MemoryLinked,
    UNLINKED: MemoryUnlinked,
}
"""Payload class per event type."""

TYPES: frozenset[str] = frozenset(PAYLOAD_TYPES)
"""Every memory event type (what a memory-aware projection handles)."""

OPS: dict[str, str] = {
    ADDED: "create",
    UPDATED: "update",
    FORGOTTEN: "delete",
    LINKED: "link",
    UNLINKED: "unlink",
}
"""The sync_log op of each event type."""

_TYPE_OF: dict[type, str] = {cls: name for name, cls in PAYLOAD_TYPES.items()}
_DECODERS = {name: msgspec.json.Decoder(cls) for name, cls in PAYLOAD_TYPES.items()}
_ENCODER = msgspec.json.Encoder()


def type_of(payload: MemoryPayload) -> str:
    """The stable event type string of a payload."""
    return _TYPE_OF[type(payload)]


def encode_payload(payload: MemoryPayload) -> bytes:
    """The payload as the JSON bytes stored in the event's `data`."""
    return _ENCODER.encode(payload)


def decode_payload(event_type: str, data: bytes) -> MemoryPayload:
    """The payload of a memory event (raises KeyError for a type that is not a memory event)."""
    return _DECODERS[event_type].decode(data)


def memory_stream(memory_id: str) -> str:
    """The stream holding every change to one memory."""
    return STREAM_PREFIX + memory_id


def memory_of_stream(stream: str) -> str | None:
    """The memory id of a memory stream, or None for other streams."""
    return stream[len(STREAM_PREFIX):] if stream.startswith(STREAM_PREFIX) else None
