"""The named errors of the store. Driver errors are translated into these in `storage`."""


class EventStoreError(Exception):
    """Base class: every error the library raises on purpose."""


class WrongExpectedVersion(EventStoreError):
    """An append's expected stream version did not hold."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        self.stream, self.expected, self.actual = stream, expected, actual
        super().__init__(
            f"stream {stream!r} is at version {actual}, expected {_describe(expected)}"
        )


class EventIdConflict(EventStoreError):
    """An event id is already stored with different content."""

    def __init__(self, event_id: str, position: int) -> None:
        self.event_id, self.position = event_id, position
        super().__init__(
            f"event {event_id} is already stored at position {position} with different content"
        )


class DatabaseError(EventStoreError):
    """The database cannot be used as it is; the message says what to do."""


class NotADatabase(DatabaseError):
    """The file is not a SQLite database, or not an eventstore one."""


class CorruptDatabase(DatabaseError):
    """SQLite reports the database file damaged."""


class TooNewDatabase(DatabaseError):
    """The database was written by a newer version of eventstore."""


class StoreBusy(EventStoreError):
    """Another process held the write lock for longer than we were willing to wait."""


class StorageFull(EventStoreError):
    """The disk (or the database's page limit) is full; nothing of the failed write was kept."""


def _describe(expected: int) -> str:
    from schemas.envelope import ExpectedVersion

    return {
        ExpectedVersion.NO_STREAM: "no stream",
        ExpectedVersion.EXISTS: "an existing stream",
        ExpectedVersion.ANY: "any version",
    }.get(expected, str(expected))
