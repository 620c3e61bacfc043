"""What of a transcript line is searchable: the text, its role, and the code and paths in it.

Also `NameTables`, the session and project number tables both search projections keep.

Shared by the full-text and vector projections (which index it) and by search (which reads an
event back from the log to build a snippet), so all three see the same text for an event.
Images and base64 payloads are never searchable, nor the line numbers the Read tool puts before
each line of a file (`   42→`: a tenth of the word index on the benchmark tree, and nobody
searches for them); tool results and tool inputs are truncated to a configurable size so one
huge file read cannot dominate the index.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from schemas.envelope import RecordedEvent
from schemas.transcript import (
    AssistantRecord,
    AwaySummaryRecord,
    ContentBlock,
    ImageBlock,
    SummaryRecord,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserRecord,
    decode_record,
)
from schemas.transcript_events import session_of_stream

__all__ = [
    "MESSAGE_TYPES", "NameTables", "ROLES", "SearchText", "TextOptions", "clip", "extract", "strip_base64",
    "strip_line_numbers",
]

MESSAGE_TYPES: frozenset[str] = frozenset(("claude.user", "claude.assistant", "claude.summary", "claude.system"))
"""Event types that may hold searchable text (others never do)."""

ROLES: tuple[str, ...] = ("user", "assistant", "tool", "summary", "memory")
"""Roles a search hit can have: a person's prompt, the model's text, a tool call or its result,
a summary (session summaries, compaction and away recaps), or a memory."""


class TextOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How much of each kind of text is indexed (part of the projections' versions)."""

    tool_result_bytes: int = 4096
    """Tool results are truncated to this many UTF-8 bytes."""
    tool_input_bytes: int = 4096
    """Tool-use inputs (commands, paths, edited code) are truncated to this many bytes."""
    message_bytes: int = 65536
    """Prompts and assistant text are truncated to this many bytes (pasted logs can be huge)."""
    code_bytes: int = 1024
    """Of a tool input, this many bytes go to the substring (trigram) index."""

    def identity(self) -> str:
        """A short string naming these options, for a projection version (`n`: line numbers left out)."""
        return f"r{self.tool_result_bytes}i{self.tool_input_bytes}m{self.message_bytes}c{self.code_bytes}n"


class SearchText(msgspec.Struct, frozen=True, kw_only=True):
    """The searchable part of one event."""

    role: str
    text: str
    """For the word index and snippets."""
    code: str = ""
    """Code and paths for the substring index ("" when the event has none)."""
    session_id: str | None = None
    project: str | None = None
    """The working directory the record was written in (None when the record has none)."""
    timestamp: int | None = None
    """Milliseconds since the epoch."""


# A base64 run (with an optional data: URI prefix): never text anyone searches for.
_BASE64 = re.compile(r"(?:data:[\w/+.-]+;base64,)?[A-Za-z0-9+/]{200,}={0,2}")
# Text's UTF-8 bytes mapped base64 character to "a", any other byte to " " (base64 is ASCII): a
# run of 200 "a"s then marks where the regex can match.
_RUN_TABLE = bytes(97 if byte in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" else 32
                   for byte in range(256))
_RUN = b"a" * 200


def strip_base64(text: str) -> str:
    """The text without base64 runs of 200 characters or more.

    Most text holds no such run, and the regex would try it at every character (two fifths of a
    full-text rebuild): a run is looked for first in C, with `bytes.translate` and a search."""
    if len(text) < 200 or _RUN not in text.encode("utf-8", "surrogatepass").translate(_RUN_TABLE):
        return text
    return _BASE64.sub(" ", text)


# The line numbers Read puts before each line of a file: "     1→", "   123→".
_LINE_NUMBER = re.compile(r"^ *\d+→", re.MULTILINE)


def strip_line_numbers(text: str) -> str:
    """The text without the line numbers the Read tool puts before each line."""
    return _LINE_NUMBER.sub("", text) if "→" in text else text


def clip(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes of the text, cut on a character boundary."""
    if len(text) * 4 <= limit:
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def _clean(text: str, limit: int) -> str:
    return clip(strip_base64(text), limit)


PROSE_KEYS = frozenset(("description", "prompt", "subject", "activeForm", "todos", "output_mode"))
"""Tool-input fields holding prose or options, not code or paths: in the word index only, not
in the substring index (a ninth of its bytes on the benchmark tree: subagent prompts, command
descriptions, todo lists)."""


def _strings(value: Any, out: list[tuple[bool, str]], budget: list[int], prose: bool = False) -> None:
    """Collect the string leaves of a JSON value (tool inputs), depth first, within a budget,
    each with whether it sits under one of PROSE_KEYS."""
    if budget[0] <= 0:
        return
    if isinstance(value, str):
        out.append((prose, value))
        budget[0] -= len(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _strings(item, out, budget, prose or key in PROSE_KEYS)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out, budget, prose)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out.append((prose, str(value)))


def _tool_result_text(block: ToolResultBlock, options: TextOptions) -> str:
    content = block.content
    if not isinstance(content, str):
        content = "\n".join(b.text for b in content or () if isinstance(b, TextBlock) and b.text)
    return _clean(strip_line_numbers(content), options.tool_result_bytes)


def _tool_use_text(block: ToolUseBlock, options: TextOptions) -> tuple[str, str]:
    values: list[tuple[bool, str]] = []
    _strings(block.input or {}, values, [options.tool_input_bytes * 2])
    joined = strip_base64("\n".join(value for _, value in values))
    text = clip(f"{block.name or ''}\n{joined}", options.tool_input_bytes)
    code = strip_base64("\n".join(value for prose, value in values if not prose))
    return text, clip(code, options.code_bytes)


class _MessageText(msgspec.Struct, frozen=True, kw_only=True):
    content: str | list[ContentBlock] | None = None


class _UserText(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of a user line that extraction reads, typed as `UserRecord` types them."""

    session_id: str | None = msgspec.field(default=None, name="sessionId")
    cwd: str | None = None
    is_meta: bool | None = msgspec.field(default=None, name="isMeta")
    is_compact_summary: bool | None = msgspec.field(default=None, name="isCompactSummary")
    message: _MessageText | None = None


class _AssistantText(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of an assistant line that extraction reads, typed as `AssistantRecord` types them."""

    session_id: str | None = msgspec.field(default=None, name="sessionId")
    cwd: str | None = None
    message: _MessageText | None = None


_TEXT_DECODERS = {"claude.user": msgspec.json.Decoder(_UserText),
                  "claude.assistant": msgspec.json.Decoder(_AssistantText)}


def _decoded(event: RecordedEvent) -> object:
    """An event's record as extraction reads it. A user or assistant line is decoded for the
    fields extraction reads alone: its whole record (`toolUseResult` above all: a third of the
    log's bytes) cost three quarters of extraction. A line those fields' types reject, and
    every other type, get `decode_record`, which repairs what it can; where the fields are
    well typed, both give the same values."""
    decoder = _TEXT_DECODERS.get(event.type)
    if decoder is not None:
        try:
            return decoder.decode(event.data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # incl. ValidationError
            pass
    return decode_record(event.data)


def extract(event: RecordedEvent, options: TextOptions = TextOptions()) -> SearchText | None:
    """The searchable text of a transcript event, or None when it has none worth indexing."""
    if event.type not in MESSAGE_TYPES or not event.data:
        return None
    try:
        record = _decoded(event)
    except msgspec.DecodeError:
        return None
    role, text, code = _record_text(record, options)
    if not text.strip():
        return None
    session = getattr(record, "session_id", None) or session_of_stream(event.stream)
    return SearchText(
        role=role, text=text, code=code, session_id=session,
        project=getattr(record, "cwd", None) or None,
        timestamp=event.occurred_at if event.occurred_at is not None else event.recorded_at,
    )


def _record_text(record: object, options: TextOptions) -> tuple[str, str, str]:
    """(role, text, code) of a decoded record; text is "" when nothing is searchable."""
    if isinstance(record, (UserRecord, _UserText)):
        message = record.message
        if record.is_meta or message is None:
            return "user", "", ""
        role = "summary" if record.is_compact_summary else "user"
        content = message.content
        if isinstance(content, str):
            return role, _clean(content, options.message_bytes), ""
        texts, results = [], []
        for block in content or ():
            if isinstance(block, TextBlock) and block.text:
                texts.append(block.text)
            elif isinstance(block, ToolResultBlock):
                results.append(_tool_result_text(block, options))
        if results:
            return "tool", "\n".join(results + texts), ""
        return role, _clean("\n".join(texts), options.message_bytes), ""
    if isinstance(record, (AssistantRecord, _AssistantText)):
        content = record.message.content if record.message else None
        if isinstance(content, str):
            return "assistant", _clean(content, options.message_bytes), ""
        texts, tools, codes = [], [], []
        for block in content or ():
            if isinstance(block, TextBlock) and block.text:
                texts.append(block.text)
            elif isinstance(block, ToolUseBlock):
                text, code = _tool_use_text(block, options)
                tools.append(text)
                codes.append(code)
            elif isinstance(block, ImageBlock):
                continue
        if texts:
            return "assistant", _clean("\n".join(texts + tools), options.message_bytes), "\n".join(codes)
        return "tool", "\n".join(tools), "\n".join(codes)
    if isinstance(record, SummaryRecord):
        return "summary", _clean(record.summary or "", options.message_bytes), ""
    if isinstance(record, AwaySummaryRecord):
        return "summary", _clean(record.content or "", options.message_bytes), ""
    return "", "", ""


class NameTables:
    """Numbers for session ids and project paths in a projection's `<base>sessions` and
    `<base>projects` tables, looked up or added as they appear (cached for one batch)."""

    def __init__(self, tx: Any, prefix: str, base: str) -> None:
        self.tx = tx
        self.sessions_table = f"{prefix}{base}sessions"
        self.projects_table = f"{prefix}{base}projects"
        self.sessions: dict[str, tuple[int, int | None]] = {}
        self.projects: dict[str, int] = {}

    def project(self, path: str | None) -> int | None:
        """The number of a project path (None for None)."""
        if not path:
            return None
        number = self.projects.get(path)
        if number is None:
            rows = self.tx.execute(f"SELECT project_no FROM {self.projects_table} WHERE path = ?", (path,))
            if rows:
                number = rows[0][0]
            else:
                number = self._insert(f"INSERT INTO {self.projects_table} (path) VALUES (?)", (path,))
            self.projects[path] = number
        return number

    def session(self, session_id: str | None, path: str | None) -> tuple[int | None, int | None]:
        """(session_no, project_no) of a record; one without a cwd takes its session's project."""
        project_no = self.project(path)
        if session_id is None:
            return None, project_no
        known = self.sessions.get(session_id)
        if known is None:
            rows = self.tx.execute(
                f"SELECT session_no, project_no FROM {self.sessions_table} WHERE session_id = ?", (session_id,))
            if rows:
                known = (rows[0][0], rows[0][1])
            else:
                number = self._insert(f"INSERT INTO {self.sessions_table} (session_id, project_no) VALUES (?, ?)",
                                      (session_id, project_no))
                known = (number, project_no)
        if project_no is not None and known[1] != project_no:
            self.tx.execute(f"UPDATE {self.sessions_table} SET project_no = ? WHERE session_no = ?",
                            (project_no, known[0]))
            known = (known[0], project_no)
        self.sessions[session_id] = known
        return known[0], project_no if project_no is not None else known[1]

    def _insert(self, sql: str, params: tuple) -> int:
        """Insert a row and return its rowid. Not with RETURNING: SQLite runs that as a trigger,
        which inside the runner's savepoint took 0.65 ms a row on the 500 MB tree's store, a
        plain insert and `last_insert_rowid()` a few microseconds."""
        self.tx.execute(sql, params)
        return self.tx.execute("SELECT last_insert_rowid()")[0][0]
