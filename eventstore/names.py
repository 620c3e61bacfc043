"""The envelope's repeated strings (types, entities, ops, actors), stored once, by number.

A transcript log repeats a handful of these strings on every row ("claude.assistant",
"transcript_record", "create", "claude-code": about 50 bytes an event); the events table keeps
their numbers instead. Owns the `names` table (sql/0006_compact_events.sql); the view `event_log`
shows the log with the strings, for SQL users.
"""

from __future__ import annotations

from collections.abc import Iterable

import apsw

from eventstore.storage import select_in


class Names:
    """A cache of the `names` table, in both directions.

    A number learned inside a write transaction that rolls back must be forgotten (the row went
    with it, and another writer may give its number to another name): `forget()` after any failure.
    """

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}
        self._names: dict[int, str] = {}

    def numbers(self, conn: apsw.Connection, names: Iterable[str]) -> dict[str, int]:
        """The numbers of these names, adding the new ones (inside a write transaction)."""
        known = self._numbers
        missing = [name for name in names if name not in known]
        if missing:
            for name, number in select_in(conn, "SELECT name, name_no FROM names WHERE name IN ({})", missing):
                self._learn(name, number)
            for name in missing:
                if name not in known:
                    conn.execute("INSERT INTO names (name) VALUES (?)", (name,))
                    self._learn(name, conn.last_insert_rowid())
        return known

    def known(self, conn: apsw.Connection, names: Iterable[str]) -> list[int]:
        """The numbers of those of these names that are in the table (adding none)."""
        numbers = self._numbers
        if any(name not in numbers for name in names):
            self.names(conn)
        return [numbers[name] for name in names if name in numbers]

    def strings(self, conn: apsw.Connection) -> dict[int, str]:
        """Names by number, as cached: a number missing from it is a name added since (see `names`)."""
        return self._names or self.names(conn)

    def names(self, conn: apsw.Connection) -> dict[int, str]:
        """Every name by its number, read afresh (the table holds a few dozen rows)."""
        for number, name in conn.execute("SELECT name_no, name FROM names"):
            self._learn(name, number)
        return self._names

    def name(self, conn: apsw.Connection, number: int) -> str:
        """The name of a number."""
        found = self._names.get(number)
        return found if found is not None else self.names(conn)[number]

    def forget(self) -> None:
        """Drop everything cached (after a rollback)."""
        self._numbers = {}
        self._names = {}

    def _learn(self, name: str, number: int) -> None:
        self._numbers[name] = number
        self._names[number] = name
