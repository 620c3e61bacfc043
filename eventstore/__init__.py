"""eventstore: an append-only event and audit log of AI coding-agent activity.

    from eventstore import Store, NewEvent
    with Store("events.db") as store:
        store.append([NewEvent(...)])
"""

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
from eventstore.store import Store, Transaction
from schemas.envelope import Change, ExpectedVersion, NewEvent, RecordedEvent

__all__ = [
    "Change",
    "CorruptDatabase",
    "DatabaseError",
    "EventIdConflict",
    "EventStoreError",
    "ExpectedVersion",
    "NewEvent",
    "NotADatabase",
    "RecordedEvent",
    "StorageFull",
    "Store",
    "StoreBusy",
    "TooNewDatabase",
    "Transaction",
    "WrongExpectedVersion",
]
