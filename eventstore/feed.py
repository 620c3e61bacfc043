"""The sync feed in files: export the log as JSON lines, import another store's export.

An exported line is the `events --json` shape plus the payload. Import keeps event ids, client
ids, versions and record times, so the same events mean the same thing in every store; it is
idempotent, and a stream whose versions here do not continue from the file's is reported as a
conflict and left alone rather than merged.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import IO

import msgspec

from eventstore import audit
from eventstore.audit import AUDIT_STREAM
from eventstore.errors import EventIdConflict
from eventstore.store import Store
from schemas.envelope import RecordedEvent

IMPORT_BATCH = 5_000


class EventLine(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One event as a JSON line (`events --json`, `export`, `import`)."""

    position: int
    event_id: str
    stream: str
    version: int
    type: str
    schema_version: int
    entity: str
    entity_id: str
    op: str
    client_id: str
    actor: str
    occurred_at: str | None
    recorded_at: str
    data: str
    causation_id: str | None = None
    correlation_id: str | None = None
    data_encoding: str | None = None  # "base64" when the payload is not UTF-8 text


class Conflict(msgspec.Struct, frozen=True):
    """A stream that could not be imported, and why."""

    stream: str
    version: int
    reason: str


class ImportReport(msgspec.Struct):
    """What an import did."""

    events: int = 0
    appended: int = 0
    duplicates: int = 0
    conflicts: list[Conflict] = msgspec.field(default_factory=list)


def iso(ms: int | None) -> str | None:
    """Milliseconds since the epoch as ISO-8601 UTC with milliseconds and Z."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> int | None:
    """ISO-8601 text (Z or an offset) as milliseconds since the epoch."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return round(moment.timestamp() * 1000)


def to_line(event: RecordedEvent) -> EventLine:
    """The JSON-line form of a recorded event."""
    try:
        data, encoding = event.data.decode("utf-8"), None
    except UnicodeDecodeError:
        data, encoding = base64.b64encode(event.data).decode("ascii"), "base64"
    return EventLine(
        position=event.position, event_id=event.event_id, stream=event.stream, version=event.version,
        type=event.type, schema_version=event.schema_version, entity=event.entity,
        entity_id=event.entity_id, op=event.op, client_id=event.client_id, actor=event.actor,
        occurred_at=iso(event.occurred_at), recorded_at=iso(event.recorded_at), data=data,
        causation_id=event.causation_id, correlation_id=event.correlation_id, data_encoding=encoding,
    )


def from_line(line: EventLine) -> RecordedEvent:
    """The recorded event a JSON line describes."""
    data = base64.b64decode(line.data) if line.data_encoding == "base64" else line.data.encode("utf-8")
    return RecordedEvent(
        position=line.position, event_id=line.event_id, stream=line.stream, version=line.version,
        type=line.type, schema_version=line.schema_version, entity=line.entity,
        entity_id=line.entity_id, op=line.op, client_id=line.client_id, actor=line.actor,
        occurred_at=parse_iso(line.occurred_at), recorded_at=parse_iso(line.recorded_at) or 0,
        causation_id=line.causation_id, correlation_id=line.correlation_id, data=data,
    )


def export(store: Store, out: IO[bytes], since: int = 0) -> int:
    """Write every event after `since` to `out` as JSON lines; return how many."""
    encoder = msgspec.json.Encoder()
    count = 0
    for event in store.iter_all(since):
        out.write(encoder.encode(to_line(event)) + b"\n")
        count += 1
    return count


def read_lines(source: IO[bytes]) -> Iterator[RecordedEvent]:
    """Parse an export file; a malformed line raises ValueError naming its line number."""
    decoder = msgspec.json.Decoder(EventLine)
    for number, raw in enumerate(source, start=1):
        if not raw.strip():
            continue
        try:
            yield from_line(decoder.decode(raw))
        except (msgspec.DecodeError, ValueError) as exc:
            raise ValueError(f"line {number}: not an exported event ({exc})") from None


def import_events(store: Store, source: IO[bytes]) -> ImportReport:
    """Append an export's events, keeping ids and versions; report streams that conflict.

    The import itself is recorded as one `audit.import` event with its counts.
    """
    report = ImportReport()
    blocked: set[str] = set()
    batch: list[RecordedEvent] = []

    def flush(last: bool = False, failure: str | None = None) -> None:
        with store.transaction() as tx:
            head = tx.head()
            for event in batch:
                if event.stream in blocked:
                    continue
                if event.stream == AUDIT_STREAM:
                    # Another store's administrative records: they keep their ids and times, and
                    # continue this store's own audit stream (its versions are local).
                    event = msgspec.structs.replace(event, version=tx.stream_version(AUDIT_STREAM) + 1)
                try:
                    position = tx.append_recorded(event)
                except EventIdConflict as exc:
                    _block(report, blocked, event, str(exc))
                    continue
                if position is None:
                    here = tx.stream_version(event.stream)
                    _block(report, blocked, event,
                           f"its version {event.version} is held here by another event (the stream is at {here})"
                           if event.version <= here else
                           f"its version {event.version} would leave a gap here, after version {here}")
                elif position > head:  # new here (a copy of it later in the file is then a duplicate)
                    report.appended += 1
                    head = position
                else:
                    report.duplicates += 1
            if last:  # one audit event per import, committed with its last batch
                audit.record(tx, "import", {
                    "events": report.events, "appended": report.appended, "duplicates": report.duplicates,
                    "conflicts": len(report.conflicts),
                    "conflicting_streams": sorted({c.stream for c in report.conflicts})[:100],
                    **({"failed": failure} if failure else {}),
                })
        batch.clear()

    try:
        for event in read_lines(source):
            report.events += 1
            batch.append(event)
            if len(batch) >= IMPORT_BATCH:
                flush()
    except ValueError as exc:
        batch.clear()  # the unfinished batch is dropped; batches already committed are recorded
        if report.appended:
            flush(last=True, failure=str(exc))
        raise
    flush(last=True)
    return report


def _block(report: ImportReport, blocked: set[str], event: RecordedEvent, reason: str) -> None:
    blocked.add(event.stream)
    report.conflicts.append(Conflict(event.stream, event.version, reason))
