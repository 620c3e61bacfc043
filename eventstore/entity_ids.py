"""How `events.entity_id` is stored: a canonical UUID as its 16 bytes, anything else as text.

Nearly every transcript line names its record by a lowercase UUID; 36 characters of text took a
fifth of every events row. Only the exact canonical form (lowercase, dashes at 8-13-18-23) is
stored as bytes, so turning the bytes back into text always gives the original string; a
database written before keeps its text ids, and both forms read the same (the `event_log`
view, sql/0008_entity_ids.sql, shows both as text).
"""

from __future__ import annotations

__all__ = ["stored", "text"]


def stored(entity_id: str) -> str | bytes:
    """The value to store for an entity id."""
    if len(entity_id) == 36 and entity_id[8] == entity_id[13] == entity_id[18] == entity_id[23] == "-":
        digits = entity_id.replace("-", "")
        if len(digits) == 32:
            try:
                packed = bytes.fromhex(digits)
            except ValueError:
                return entity_id
            if packed.hex() == digits:  # lowercase hex digits only, nothing fromhex skipped
                return packed
    return entity_id


def text(value: str | bytes) -> str:
    """The entity id a stored value stands for."""
    if type(value) is bytes:
        return f"{value[:4].hex()}-{value[4:10].hex('-', 2)}-{value[10:].hex()}"  # 8-4-4-4-12 hex digits
    return value  # type: ignore[return-value]
