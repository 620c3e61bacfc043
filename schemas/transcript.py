"""msgspec types for Claude Code transcript records (one JSONL line = one record).

Tolerance rules: every field is optional with a default, unknown keys are ignored, and a
record, content block or progress payload whose ``type`` is unknown decodes to an opaque
value (`UnknownRecord`, `UnknownBlock`, `UnknownProgress`) that keeps the type string.
A value of an unexpected type (a number where a string was expected, say) is dropped and
its field keeps the default, so `decode_record` and `decode_header` never raise for valid
JSON; only input that is not one JSON value raises ``msgspec.DecodeError``.

Attribute names are snake_case; ``msgspec.field(name=...)`` maps them to the camelCase
JSON keys, while API payloads (``message``, ``usage``, content blocks) keep snake_case keys.
Timestamps stay strings: parsing them is the consumer's business.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgspec
import msgspec.inspect as mi

__all__ = [
    "AgentNameRecord", "AgentProgress", "AiTitleRecord", "ApiErrorRecord", "AssistantMessage",
    "AssistantRecord", "Attachment", "AttachmentRecord", "AwaySummaryRecord", "BaseRecord",
    "BashProgress", "BridgeSessionRecord", "BridgeStatusRecord", "CacheCreation",
    "CompactBoundaryRecord", "CompactMetadata", "ContentBlock", "CustomTitleRecord",
    "EnvelopeRecord", "FileBackup", "FileHistoryDeltaRecord", "FileHistorySnapshot",
    "FileHistorySnapshotRecord", "Header", "HookInfo", "HookProgress", "ImageBlock",
    "ImageSource", "LastPromptRecord", "LocalCommandRecord", "McpProgress",
    "MicrocompactBoundaryRecord", "MicrocompactMetadata", "ModeRecord", "NotARecord",
    "PermissionModeRecord", "PrLinkRecord", "ProgressData", "ProgressRecord", "QueryUpdate",
    "QueueOperationRecord", "RECORD_TYPES", "Record", "RedactedThinkingBlock",
    "SYSTEM_SUBTYPES", "SearchResultsReceived", "ServerToolUse", "StopHookSummaryRecord",
    "SummaryRecord", "SystemRecord", "TextBlock", "ThinkingBlock", "TodoItem",
    "ToolReferenceBlock", "ToolResultBlock", "ToolResultContent", "ToolUseBlock",
    "ToolUseResult", "TurnDurationRecord", "UnknownBlock", "UnknownProgress", "UnknownRecord",
    "Usage", "UsageIteration", "UserMessage", "UserRecord", "WaitingForTask",
    "as_utf8", "decode_header", "decode_record",
]


def _k(name: str) -> Any:
    """A field stored under the JSON key `name`, default None (explicit, so renames are visible)."""
    return msgspec.field(default=None, name=name)


class _Struct(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every type here: immutable, unknown keys ignored.

    msgspec does not inherit ``kw_only``, so every class below repeats it.
    """


class _Tagged(_Struct, kw_only=True):
    """Base of the types dispatched on their JSON ``type`` (records, blocks, progress data)."""

    @property
    def type(self) -> str | None:
        """The JSON ``type`` string this class stands for."""
        return self.__struct_config__.tag  # type: ignore[return-value]


# ---------------------------------------------------------------- header (hot path)


class Header(_Struct, gc=False, kw_only=True):
    """The few keys ingestion reads on every line; msgspec skips everything else."""

    type: str | None = None
    subtype: str | None = None
    session_id: str | None = _k("sessionId")
    uuid: str | None = None
    timestamp: str | None = None
    is_sidechain: bool | None = _k("isSidechain")


class _Kind(_Struct, gc=False, kw_only=True):
    """The dispatch keys of a record."""

    type: str | None = None
    subtype: str | None = None


# ---------------------------------------------------------------- content blocks


class TextBlock(_Tagged, tag="text", kw_only=True):
    text: str | None = None


class ThinkingBlock(_Tagged, tag="thinking", kw_only=True):
    thinking: str | None = None  # "" from 2.1.78 on: only the signature is persisted
    signature: str | None = None


class RedactedThinkingBlock(_Tagged, tag="redacted_thinking", kw_only=True):
    data: str | None = None


class ToolUseBlock(_Tagged, tag="tool_use", kw_only=True):
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None


class ImageSource(_Struct, kw_only=True):
    type: str | None = None
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class ImageBlock(_Tagged, tag="image", kw_only=True):
    source: ImageSource | None = None


class ToolReferenceBlock(_Tagged, tag="tool_reference", kw_only=True):
    tool_name: str | None = None


ToolResultContent = TextBlock | ImageBlock | ToolReferenceBlock
"""Blocks allowed inside a ``tool_result`` list; others decode to `UnknownBlock`."""


class ToolResultBlock(_Tagged, tag="tool_result", kw_only=True):
    tool_use_id: str | None = None
    content: str | list[ToolResultContent] | None = None
    is_error: bool | None = None


class UnknownBlock(_Struct, kw_only=True):
    """A content block of a type this module does not know; only its type is kept."""

    type: str | None = None


ContentBlock = (
    TextBlock | ThinkingBlock | RedactedThinkingBlock | ToolUseBlock | ToolResultBlock
    | ImageBlock | ToolReferenceBlock
)
"""Known content blocks; an unknown block type decodes to `UnknownBlock`."""


# ---------------------------------------------------------------- API messages and usage


class CacheCreation(_Struct, kw_only=True):
    ephemeral_5m_input_tokens: int | None = None
    ephemeral_1h_input_tokens: int | None = None


class ServerToolUse(_Struct, kw_only=True):
    web_search_requests: int | None = None
    web_fetch_requests: int | None = None


class UsageIteration(_Struct, kw_only=True):
    """One entry of ``usage.iterations``: equals the top-level figures; never add them."""

    type: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: CacheCreation | None = None


class Usage(_Struct, kw_only=True):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: CacheCreation | None = None
    server_tool_use: ServerToolUse | None = None
    service_tier: str | None = None
    inference_geo: str | None = None
    speed: str | None = None
    iterations: list[UsageIteration] | None = None


class UserMessage(_Struct, kw_only=True):
    role: str | None = None
    content: str | list[ContentBlock] | None = None


class AssistantMessage(_Struct, kw_only=True):
    """The Anthropic API message; each transcript line carries one content block of it."""

    id: str | None = None
    model: str | None = None
    role: str | None = None
    type: str | None = None
    content: str | list[ContentBlock] | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None
    stop_details: dict[str, Any] | None = None
    usage: Usage | None = None


ToolUseResult = str | list[Any] | dict[str, Any] | None
"""``toolUseResult``: an object per tool, a string for errors, a list for some MCP tools."""


class TodoItem(_Struct, kw_only=True):
    content: str | None = None
    status: str | None = None
    active_form: str | None = _k("activeForm")
    priority: str | None = None
    id: str | int | None = None


# ---------------------------------------------------------------- records


class BaseRecord(_Tagged, kw_only=True):
    """Fields every record may carry (the small metadata records carry only these)."""

    session_id: str | None = _k("sessionId")
    timestamp: str | None = None


class EnvelopeRecord(BaseRecord, kw_only=True):
    """Records linked into the conversation tree (user, assistant, system, progress, ...)."""

    uuid: str | None = None
    parent_uuid: str | None = _k("parentUuid")
    is_sidechain: bool | None = _k("isSidechain")
    agent_id: str | None = _k("agentId")
    cwd: str | None = None
    git_branch: str | None = _k("gitBranch")
    version: str | None = None
    user_type: str | None = _k("userType")
    entrypoint: str | None = None
    slug: str | None = None
    is_meta: bool | None = _k("isMeta")
    team_name: str | None = _k("teamName")


class UserRecord(EnvelopeRecord, tag="user", kw_only=True):
    """A prompt, command output, compact summary or tool result (one block per record)."""

    message: UserMessage | None = None
    tool_use_result: ToolUseResult = _k("toolUseResult")
    source_tool_assistant_uuid: str | None = _k("sourceToolAssistantUUID")
    source_tool_use_id: str | None = _k("sourceToolUseID")
    is_compact_summary: bool | None = _k("isCompactSummary")
    is_visible_in_transcript_only: bool | None = _k("isVisibleInTranscriptOnly")
    permission_mode: str | None = _k("permissionMode")
    prompt_id: str | None = _k("promptId")
    prompt_source: str | None = _k("promptSource")
    plan_content: str | None = _k("planContent")
    origin: dict[str, Any] | None = None
    todos: list[TodoItem] | None = None


class AssistantRecord(EnvelopeRecord, tag="assistant", kw_only=True):
    """One content block of an API response; lines of a response share message.id+requestId."""

    request_id: str | None = _k("requestId")
    message: AssistantMessage | None = None
    is_api_error_message: bool | None = _k("isApiErrorMessage")
    error: str | dict[str, Any] | None = None
    api_error_status: int | None = _k("apiErrorStatus")
    effort: str | None = None
    attribution_skill: str | None = _k("attributionSkill")
    attribution_plugin: str | None = _k("attributionPlugin")
    attribution_agent: str | None = _k("attributionAgent")


class SystemRecord(EnvelopeRecord, tag="system", kw_only=True):
    """A system record; also the type of old untyped ones and of unknown subtypes."""

    subtype: str | None = None
    content: str | None = None
    level: str | None = None
    tool_use_id: str | None = _k("toolUseID")


class CompactMetadata(_Struct, kw_only=True):
    trigger: str | None = None
    pre_tokens: int | None = _k("preTokens")
    post_tokens: int | None = _k("postTokens")
    duration_ms: int | float | None = _k("durationMs")


class CompactBoundaryRecord(SystemRecord, tag="system", kw_only=True):
    subtype: str | None = "compact_boundary"
    compact_metadata: CompactMetadata | None = _k("compactMetadata")
    logical_parent_uuid: str | None = _k("logicalParentUuid")


class MicrocompactMetadata(_Struct, kw_only=True):
    trigger: str | None = None
    pre_tokens: int | None = _k("preTokens")
    tokens_saved: int | None = _k("tokensSaved")
    compacted_tool_ids: list[str] | None = _k("compactedToolIds")
    cleared_attachment_uuids: list[str] | None = _k("clearedAttachmentUUIDs")


class MicrocompactBoundaryRecord(SystemRecord, tag="system", kw_only=True):
    subtype: str | None = "microcompact_boundary"
    microcompact_metadata: MicrocompactMetadata | None = _k("microcompactMetadata")


class HookInfo(_Struct, kw_only=True):
    command: str | None = None
    duration_ms: int | float | None = _k("durationMs")


class StopHookSummaryRecord(SystemRecord, tag="system", kw_only=True):
    subtype: str | None = "stop_hook_summary"
    hook_count: int | None = _k("hookCount")
    hook_infos: list[HookInfo] | None = _k("hookInfos")
    hook_errors: list[Any] | None = _k("hookErrors")
    hook_additional_context: list[Any] | None = _k("hookAdditionalContext")
    prevented_continuation: bool | None = _k("preventedContinuation")
    stop_reason: str | None = _k("stopReason")
    has_output: bool | None = _k("hasOutput")


class TurnDurationRecord(SystemRecord, tag="system", kw_only=True):
    subtype: str | None = "turn_duration"
    duration_ms: int | float | None = _k("durationMs")
    message_count: int | None = _k("messageCount")
    pending_background_agent_count: int | None = _k("pendingBackgroundAgentCount")


class LocalCommandRecord(SystemRecord, tag="system", kw_only=True):
    subtype: str | None = "local_command"


class ApiErrorRecord(SystemRecord, tag="system", kw_only=True):
    subtype: str | None = "api_error"
    error: str | dict[str, Any] | None = None
    retry_in_ms: int | float | None = _k("retryInMs")
    retry_attempt: int | None = _k("retryAttempt")
    max_retries: int | None = _k("maxRetries")


class BridgeStatusRecord(SystemRecord, tag="system", kw_only=True):
    subtype: str | None = "bridge_status"
    url: str | None = None


class AwaySummaryRecord(SystemRecord, tag="system", kw_only=True):
    subtype: str | None = "away_summary"


class HookProgress(_Tagged, tag="hook_progress", kw_only=True):
    hook_event: str | None = _k("hookEvent")
    hook_name: str | None = _k("hookName")
    command: str | None = None


class BashProgress(_Tagged, tag="bash_progress", kw_only=True):
    output: str | None = None
    full_output: str | None = _k("fullOutput")
    elapsed_time_seconds: int | float | None = _k("elapsedTimeSeconds")
    total_lines: int | None = _k("totalLines")
    timeout_ms: int | float | None = _k("timeoutMs")


class AgentProgress(_Tagged, tag="agent_progress", kw_only=True):
    """Subagent progress; ``message`` is a full copy of a subagent record, usage included."""

    agent_id: str | None = _k("agentId")
    prompt: str | None = None
    message: UserRecord | AssistantRecord | None = None


class McpProgress(_Tagged, tag="mcp_progress", kw_only=True):
    status: str | None = None
    server_name: str | None = _k("serverName")
    tool_name: str | None = _k("toolName")
    elapsed_time_ms: int | float | None = _k("elapsedTimeMs")


class QueryUpdate(_Tagged, tag="query_update", kw_only=True):
    query: str | None = None


class SearchResultsReceived(_Tagged, tag="search_results_received", kw_only=True):
    result_count: int | None = _k("resultCount")
    query: str | None = None


class WaitingForTask(_Tagged, tag="waiting_for_task", kw_only=True):
    task_description: str | None = _k("taskDescription")
    task_type: str | None = _k("taskType")


class UnknownProgress(_Struct, kw_only=True):
    """A progress payload of a type this module does not know; only its type is kept."""

    type: str | None = None


ProgressData = (
    HookProgress | BashProgress | AgentProgress | McpProgress | QueryUpdate
    | SearchResultsReceived | WaitingForTask
)
"""Known ``progress.data`` payloads; an unknown one decodes to `UnknownProgress`."""


class ProgressRecord(EnvelopeRecord, tag="progress", kw_only=True):
    """Tool/hook/subagent progress (2.1.7..2.1.81); agent_progress embeds usage copies."""

    data: ProgressData | None = None
    tool_use_id: str | None = _k("toolUseID")
    parent_tool_use_id: str | None = _k("parentToolUseID")


class Attachment(_Struct, kw_only=True):
    """``attachment`` payload: one loose struct for its many types (hook_success, ...)."""

    type: str | None = None
    content: Any = None
    hook_name: str | None = _k("hookName")
    hook_event: str | None = _k("hookEvent")
    tool_use_id: str | None = _k("toolUseID")
    command: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    exit_code: int | None = _k("exitCode")
    duration_ms: int | float | None = _k("durationMs")
    prompt: Any = None
    filename: str | None = None


class AttachmentRecord(EnvelopeRecord, tag="attachment", kw_only=True):
    """Context attached to the conversation: hook output, reminders, listings (2.1.114+)."""

    attachment: Attachment | None = None


class SummaryRecord(BaseRecord, tag="summary", kw_only=True):
    """A session title; ``leafUuid`` may point into another file."""

    summary: str | None = None
    leaf_uuid: str | None = _k("leafUuid")


class FileBackup(_Struct, kw_only=True):
    backup_file_name: str | None = _k("backupFileName")
    version: int | None = None
    backup_time: str | None = _k("backupTime")
    real_parent_dir: str | None = _k("realParentDir")


class FileHistorySnapshot(_Struct, kw_only=True):
    message_id: str | None = _k("messageId")
    tracked_file_backups: dict[str, FileBackup] | None = _k("trackedFileBackups")
    timestamp: str | None = None


class FileHistorySnapshotRecord(BaseRecord, tag="file-history-snapshot", kw_only=True):
    """Backups of edited files taken for the user prompt ``messageId``."""

    message_id: str | None = _k("messageId")
    snapshot: FileHistorySnapshot | None = None
    is_snapshot_update: bool | None = _k("isSnapshotUpdate")


class FileHistoryDeltaRecord(BaseRecord, tag="file-history-delta", kw_only=True):
    """One file backup added to snapshot ``snapshotMessageId`` (2.1.210+)."""

    message_id: str | None = _k("messageId")
    snapshot_message_id: str | None = _k("snapshotMessageId")
    tracking_path: str | None = _k("trackingPath")
    backup: FileBackup | None = None


class QueueOperationRecord(BaseRecord, tag="queue-operation", kw_only=True):
    """A typed-ahead prompt queued or dequeued."""

    operation: str | None = None
    content: str | list[ContentBlock] | None = None


class CustomTitleRecord(BaseRecord, tag="custom-title", kw_only=True):
    custom_title: str | None = _k("customTitle")


class AgentNameRecord(BaseRecord, tag="agent-name", kw_only=True):
    agent_name: str | None = _k("agentName")


class AiTitleRecord(BaseRecord, tag="ai-title", kw_only=True):
    ai_title: str | None = _k("aiTitle")


class LastPromptRecord(BaseRecord, tag="last-prompt", kw_only=True):
    last_prompt: str | None = _k("lastPrompt")
    leaf_uuid: str | None = _k("leafUuid")


class ModeRecord(BaseRecord, tag="mode", kw_only=True):
    mode: str | None = None


class PermissionModeRecord(BaseRecord, tag="permission-mode", kw_only=True):
    permission_mode: str | None = _k("permissionMode")


class BridgeSessionRecord(BaseRecord, tag="bridge-session", kw_only=True):
    bridge_session_id: str | None = _k("bridgeSessionId")
    last_sequence_num: int | None = _k("lastSequenceNum")


class PrLinkRecord(BaseRecord, tag="pr-link", kw_only=True):
    pr_number: int | None = _k("prNumber")
    pr_url: str | None = _k("prUrl")
    pr_repository: str | None = _k("prRepository")


class UnknownRecord(EnvelopeRecord, kw_only=True):
    """An object whose ``type`` is unknown, missing or not a string (then ``type`` is None)."""

    type: str | None = None  # type: ignore[assignment]


class NotARecord(_Struct, kw_only=True):
    """A line holding valid JSON that is not an object (``3``, ``[]``, ``"x"``, ``null``)."""

    value: Any = None


Record = (
    UserRecord | AssistantRecord | SystemRecord | ProgressRecord | AttachmentRecord
    | SummaryRecord | FileHistorySnapshotRecord | FileHistoryDeltaRecord | QueueOperationRecord
    | CustomTitleRecord | AgentNameRecord | AiTitleRecord | LastPromptRecord | ModeRecord
    | PermissionModeRecord | BridgeSessionRecord | PrLinkRecord | UnknownRecord | NotARecord
)
"""What `decode_record` returns; system subtypes are subclasses of `SystemRecord`."""

RECORD_TYPES: dict[str, type[BaseRecord]] = {
    c.__struct_config__.tag: c  # type: ignore[misc]
    for c in (
        UserRecord, AssistantRecord, SystemRecord, ProgressRecord, AttachmentRecord,
        SummaryRecord, FileHistorySnapshotRecord, FileHistoryDeltaRecord, QueueOperationRecord,
        CustomTitleRecord, AgentNameRecord, AiTitleRecord, LastPromptRecord, ModeRecord,
        PermissionModeRecord, BridgeSessionRecord, PrLinkRecord,
    )
}
"""Record class per known ``type`` string (``system`` maps to the generic class)."""

SYSTEM_SUBTYPES: dict[str, type[SystemRecord]] = {
    c().subtype: c  # type: ignore[misc]
    for c in (
        CompactBoundaryRecord, MicrocompactBoundaryRecord, StopHookSummaryRecord,
        TurnDurationRecord, LocalCommandRecord, ApiErrorRecord, BridgeStatusRecord,
        AwaySummaryRecord,
    )
}
"""System record class per known ``subtype``; others decode to `SystemRecord`."""


# ---------------------------------------------------------------- decoding

_HEADER_DECODER = msgspec.json.Decoder(Header)
_KIND_DECODER = msgspec.json.Decoder(_Kind)
_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {
    c: msgspec.json.Decoder(c)
    for c in (*RECORD_TYPES.values(), *SYSTEM_SUBTYPES.values(), UnknownRecord)
}
_INFOS: dict[type, Any] = {c: mi.type_info(c) for c in (*_DECODERS, Header)}
_DROP = object()  # "this value does not fit the declared type"
_TOO_DEEP = object()  # valid JSON nested deeper than the decoders' recursion limit


def _record_class(type_: object, subtype: object) -> type:
    if not isinstance(type_, str):
        return UnknownRecord
    if type_ == "system":
        if isinstance(subtype, str):
            return SYSTEM_SUBTYPES.get(subtype, SystemRecord)
        return SystemRecord
    return RECORD_TYPES.get(type_, UnknownRecord)


def _record_from_obj(obj: Any) -> Any:
    if not isinstance(obj, dict):
        return NotARecord(value=obj)
    cls = _record_class(obj.get("type"), obj.get("subtype"))
    return _coerce_struct(_INFOS[cls], obj)


def _opaque_block(obj: dict[str, Any]) -> UnknownBlock:
    t = obj.get("type")
    return UnknownBlock(type=t if isinstance(t, str) else None)


def _opaque_progress(obj: dict[str, Any]) -> UnknownProgress:
    t = obj.get("type")
    return UnknownProgress(type=t if isinstance(t, str) else None)


# What an object decodes to when it is in a tagged union but its tag matches no member.
_OPAQUE: dict[type, Callable[[dict[str, Any]], Any]] = {
    **{c: _opaque_block for c in (*ContentBlock.__args__, *ToolResultContent.__args__)},
    **{c: _opaque_progress for c in ProgressData.__args__},
    UserRecord: _record_from_obj,
    AssistantRecord: _record_from_obj,
}


def _coerce_struct(info: mi.StructType, obj: dict[str, Any]) -> Any:
    """Build `info.cls` from a decoded object, dropping values whose type does not fit."""
    try:
        return msgspec.convert(obj, info.cls)
    except msgspec.ValidationError:
        pass
    kwargs = {}
    for f in info.fields:
        if f.encode_name in obj:
            value = _coerce(f.type, obj[f.encode_name])
            if value is not _DROP:
                kwargs[f.name] = value
    return info.cls(**kwargs)


def _coerce(t: mi.Type, v: Any) -> Any:
    """`v` as declared by `t`, recursively repaired, or _DROP if it cannot be."""
    if isinstance(t, mi.AnyType):
        return v
    if isinstance(t, mi.UnionType):
        return _coerce_union(t, v)
    if isinstance(t, mi.NoneType):
        return None if v is None else _DROP
    if isinstance(t, mi.StrType):
        return v if isinstance(v, str) else _DROP
    if isinstance(t, mi.BoolType):
        return v if isinstance(v, bool) else _DROP
    if isinstance(t, mi.IntType):
        return v if isinstance(v, int) and not isinstance(v, bool) else _DROP
    if isinstance(t, mi.FloatType):
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else _DROP
    if isinstance(t, mi.ListType):
        if not isinstance(v, list):
            return _DROP
        items = [_coerce(t.item_type, x) for x in v]
        return [x for x in items if x is not _DROP]
    if isinstance(t, mi.DictType):
        if not isinstance(v, dict):
            return _DROP
        pairs = ((k, _coerce(t.value_type, x)) for k, x in v.items())
        return {k: x for k, x in pairs if x is not _DROP}
    if isinstance(t, mi.StructType):
        return _coerce_struct(t, v) if isinstance(v, dict) else _DROP
    return _DROP


def _coerce_union(t: mi.UnionType, v: Any) -> Any:
    members = t.types
    if any(isinstance(m, mi.AnyType) for m in members):
        return v
    if isinstance(v, dict):
        structs = [m for m in members if isinstance(m, mi.StructType)]
        if structs and structs[0].tag_field is not None:
            tag = v.get(structs[0].tag_field)
            for s in structs:
                if s.tag == tag:
                    return _coerce_struct(s, v)
            opaque = _OPAQUE.get(structs[0].cls)
            return opaque(v) if opaque is not None else _DROP
        if structs:
            return _coerce_struct(structs[0], v)
        shapes: tuple[type, ...] = (mi.DictType,)
    elif isinstance(v, list):
        shapes = (mi.ListType,)
    else:
        shapes = (mi.NoneType, mi.StrType, mi.BoolType, mi.IntType, mi.FloatType)
    for m in members:
        if isinstance(m, shapes):
            value = _coerce(m, v)
            if value is not _DROP:
                return value
    return _DROP


def _scrub(v: Any) -> Any:
    """Replace lone surrogates (JSON ``\\ud83d`` escapes of truncated emoji) with U+FFFD."""
    if isinstance(v, str):
        return v.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(v, list):
        return [_scrub(x) for x in v]
    if isinstance(v, dict):
        return {_scrub(k): _scrub(x) for k, x in v.items()}
    return v


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads_fallback(data: bytes | str) -> Any:
    """Decode what msgspec refused: valid JSON with lone surrogates, or raise DecodeError."""
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        return _scrub(json.loads(text, parse_constant=_reject_constant))
    except RecursionError:
        return _TOO_DEEP
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise msgspec.DecodeError(f"not a JSON value: {exc}") from None


def _decode_any(data: bytes | str) -> Any:
    """Decode any JSON value to Python objects (or _TOO_DEEP); raise DecodeError if not JSON."""
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return _loads_fallback(data)


def decode_header(data: bytes) -> Header:
    """Decode only the header keys of one JSON line, fast; never raises for valid JSON."""
    try:
        return _HEADER_DECODER.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # incl. ValidationError
        obj = _decode_any(data)
    return _coerce_struct(_INFOS[Header], obj) if isinstance(obj, dict) else Header()


def as_utf8(data: bytes) -> bytes | str:
    """`data` when it is UTF-8, else its text with U+FFFD for each byte that is not: a line damaged
    on disk is JSON but for those bytes, and the log keeps it as it was; readers read the rest."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace")
    return data


def decode_record(data: bytes) -> Record:
    """Decode one JSON line into its record type; never raises for valid JSON (bytes that are not
    UTF-8 read as U+FFFD, see `as_utf8`)."""
    try:
        kind = _KIND_DECODER.decode(data)
        return _DECODERS[_record_class(kind.type, kind.subtype)].decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # incl. ValidationError
        obj = _decode_any(as_utf8(data))
    if obj is _TOO_DEEP:
        return UnknownRecord()
    try:
        return _record_from_obj(obj)
    except RecursionError:
        return UnknownRecord()
