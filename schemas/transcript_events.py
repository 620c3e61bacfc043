"""How a transcript line is stored as an event: stable type strings and stream names.

One event per JSON object on a transcript line. Its `data` is the object's exact bytes; its
type is `claude.<record type>` for the record types Claude Code is known to write and
`claude.other` for anything else, so a projection can pick the lines it needs without
decoding the rest.
"""

from __future__ import annotations

RECORD_TYPES: frozenset[str] = frozenset((
    "user", "assistant", "system", "progress", "attachment", "summary",
    "file-history-snapshot", "file-history-delta", "queue-operation",
    "custom-title", "agent-name", "ai-title", "last-prompt", "mode", "permission-mode",
    "bridge-session", "pr-link",
))

OTHER = "claude.other"
SHARED_LINE_PREFIX = "line:"
"""The correlation id of every object on a line that held several (`line:<hash of the line>`)."""
ENTITY = "transcript_record"
ACTOR = "claude-code"
SESSION_STREAM_PREFIX = "claude:session:"


def event_type(record_type: object) -> str:
    """The event type for a record's `type` field (`claude.other` when unknown or absent)."""
    if isinstance(record_type, str) and record_type in RECORD_TYPES:
        return "claude." + record_type
    return OTHER


def session_stream(session_id: str) -> str:
    """The stream holding every line of one session (subagent lines carry the parent's id)."""
    return SESSION_STREAM_PREFIX + session_id


def session_of_stream(stream: str) -> str | None:
    """The session id of a session stream, or None for other streams."""
    if stream.startswith(SESSION_STREAM_PREFIX):
        return stream[len(SESSION_STREAM_PREFIX):]
    return None


def shared_line_id(line: bytes) -> str:
    """The correlation id that ties together the objects written on one line."""
    from hashlib import blake2b

    return SHARED_LINE_PREFIX + blake2b(line, digest_size=8).hexdigest()


def from_shared_line(correlation_id: str | None) -> bool:
    """Whether an event is one of several objects found on one transcript line."""
    return correlation_id is not None and correlation_id.startswith(SHARED_LINE_PREFIX)
