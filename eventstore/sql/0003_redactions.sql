-- Redaction. Owned by eventstore.redact.

-- Events whose stored payload a redaction rewrote (`eventstore redact`). Their bytes no longer
-- hash to a content-derived event id, so the store treats a later copy of the original (a
-- transcript file read again, an import) as the duplicate it is instead of a conflict, and
-- never stores the original bytes again.
CREATE TABLE redacted_events (
    position    INTEGER PRIMARY KEY,  -- events.position
    redacted_at INTEGER NOT NULL,
    audit_id    TEXT NOT NULL         -- event_id of the audit.redact event that recorded it
);
