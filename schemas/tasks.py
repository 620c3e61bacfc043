"""Task events: what a person records about their own tasks (`eventstore tasks add|set`).

Each task is a stream `task:<task_id>`; its first event is `task.created` (op create), later
ones `task.updated` (op update), so the stream version is the task's version and
`--expect-version` is the store's optimistic concurrency check. Tasks Claude Code keeps
(TodoWrite, TaskCreate/TaskUpdate) are derived from transcript events by the tasks projection
and are not recorded here; a person's `task.updated` may still target one of them.

Type strings are stable: never rename them. New fields get defaults.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "ENTITY",
    "PRIORITIES",
    "STATUSES",
    "STREAM_PREFIX",
    "TASK_CREATED",
    "TASK_UPDATED",
    "TYPES",
    "TaskCreated",
    "TaskUpdated",
    "decode",
    "encode",
    "task_stream",
]

TASK_CREATED = "task.created"
TASK_UPDATED = "task.updated"
TYPES: frozenset[str] = frozenset((TASK_CREATED, TASK_UPDATED))
ENTITY = "task"
STREAM_PREFIX = "task:"

STATUSES: tuple[str, ...] = ("pending", "in_progress", "completed", "deleted")
"""Claude Code's task statuses; `deleted` also marks a TodoWrite item dropped from its list."""

PRIORITIES: tuple[str, ...] = ("high", "medium", "low")
"""In display order; a task without one sorts after `low` ("none")."""

Priority = Literal["high", "medium", "low", "none"]


class TaskCreated(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag=TASK_CREATED,
                  tag_field="type"):
    """A person created a task."""

    task_id: str
    title: str
    status: str = "pending"
    priority: str | None = None
    session_id: str | None = None


class TaskUpdated(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag=TASK_UPDATED,
                  tag_field="type"):
    """A person changed a task; None leaves a field as it was, priority "none" clears it."""

    task_id: str
    status: str | None = None
    priority: str | None = None
    title: str | None = None


TaskEvent = TaskCreated | TaskUpdated

_DECODER = msgspec.json.Decoder(TaskEvent)


def task_stream(task_id: str) -> str:
    """The stream of one task's events."""
    return STREAM_PREFIX + task_id


def encode(event: TaskEvent) -> bytes:
    """An event's payload bytes (JSON, with its type tag)."""
    return msgspec.json.encode(event)


def decode(data: bytes) -> TaskEvent:
    """A payload back into its event (by its `type` tag)."""
    return _DECODER.decode(data)
