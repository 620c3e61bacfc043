"""eventstore: an append-only event and audit log of AI coding-agent activity.

    from eventstore import Store, NewEvent
    with Store("events.db") as store:
        store.append([NewEvent(...)])

Names are imported on first use (PEP 562), so a command that needs none of them (a report
served straight from a read model) does not pay for them at start-up.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up

_EXPORTS = {
    "CorruptDatabase": "eventstore.errors",
    "DatabaseError": "eventstore.errors",
    "EventIdConflict": "eventstore.errors",
    "EventStoreError": "eventstore.errors",
    "NotADatabase": "eventstore.errors",
    "StorageFull": "eventstore.errors",
    "StoreBusy": "eventstore.errors",
    "TooNewDatabase": "eventstore.errors",
    "WrongExpectedVersion": "eventstore.errors",
    "Store": "eventstore.store",
    "Transaction": "eventstore.transaction",
    "Change": "schemas.envelope",
    "ExpectedVersion": "schemas.envelope",
    "NewEvent": "schemas.envelope",
    "RecordedEvent": "schemas.envelope",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from eventstore.errors import (
        CorruptDatabase,
        DatabaseError,
        EventIdConflict,
        EventStoreError,
        NotADatabase,
        StorageFull,
        StoreBusy,
        TooNewDatabase,
        WrongExpectedVersion,
    )
    from eventstore.store import Store
    from eventstore.transaction import Transaction
    from schemas.envelope import Change, ExpectedVersion, NewEvent, RecordedEvent


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eventstore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
