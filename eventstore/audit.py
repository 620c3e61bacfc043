"""The audit trail: administrative operations recorded as events in the log itself.

Replay, import, redaction and schema migrations each append one event to the stream `audit`
(type `audit.<operation>`, entity `operation`, op `create`), with the user who ran it
(`$USER`) as the actor and what it did as JSON details. Details never hold a secret: a
redaction records a hash of its pattern, never the pattern or the bytes it removed.

A database created from nothing records no migration: there is no earlier schema to audit, and
a new log starts with its own events. Upgrading an existing database's schema is recorded.
"""

from __future__ import annotations

import getpass
import os
import uuid
from typing import Any

import msgspec

from schemas.envelope import NewEvent

AUDIT_STREAM = "audit"
ENTITY = "operation"
TYPE_PREFIX = "audit."


class AuditEntry(msgspec.Struct, kw_only=True):
    """One administrative operation (the `audit --json` item)."""

    position: int
    operation: str
    actor: str
    recorded_at: str
    details: dict[str, Any]
    client_id: str


def actor() -> str:
    """Who is running this process: $USER, else the login name, else the numeric uid."""
    name = os.environ.get("USER")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's uid)
        return f"uid:{os.getuid()}"


def new_event_id() -> str:
    """A fresh audit event id (an operation may need to name its audit event before recording it)."""
    return uuid.uuid4().hex


def audit_event(operation: str, details: dict[str, Any], event_id: str | None, occurred_at: int) -> NewEvent:
    """The event recording one administrative operation."""
    event_id = event_id or new_event_id()
    return NewEvent(
        event_id=event_id, stream=AUDIT_STREAM, type=TYPE_PREFIX + operation, entity=ENTITY,
        entity_id=event_id, op="create", data=msgspec.json.encode(details), actor=actor(),
        occurred_at=occurred_at,
    )


def record(tx, operation: str, details: dict[str, Any], event_id: str | None = None) -> int:
    """Append an audit event inside the caller's transaction (so it commits with the operation).
    It occurred when the transaction began, the time its append is recorded at: stamped later,
    it read as recorded before it occurred."""
    return tx.append([audit_event(operation, details, event_id, tx.now)])[0]


def record_now(store, operation: str, details: dict[str, Any], event_id: str | None = None) -> int:
    """Append an audit event in a transaction of its own; return its position."""
    with store.transaction() as tx:
        return record(tx, operation, details, event_id)


def record_migrations(store) -> int | None:
    """Record the schema migrations the store's database applied when it was opened, if any.

    Called by `Store.__init__`. Nothing is recorded for a database created from nothing.
    """
    db = store.db
    applied = getattr(db, "applied_migrations", [])
    if not applied or getattr(db, "migrated_from", 0) == 0:
        return None
    return record_now(store, "migrate", {
        "from_version": db.migrated_from,
        "to_version": applied[-1][0],
        "applied": [{"version": version, "name": name} for version, name in applied],
    })


def listing(store) -> list[AuditEntry]:
    """Every administrative operation in the log, oldest first."""
    from eventstore.feed import iso

    out = []
    for event in store.read_stream(AUDIT_STREAM):
        try:
            details = msgspec.json.decode(event.data)
        except msgspec.DecodeError:
            details = {"unreadable": True}
        if not isinstance(details, dict):
            details = {"value": details}
        operation = event.type[len(TYPE_PREFIX):] if event.type.startswith(TYPE_PREFIX) else event.type
        out.append(AuditEntry(position=event.position, operation=operation, actor=event.actor,
                              recorded_at=iso(event.recorded_at), details=details, client_id=event.client_id))
    return out
