-- The log. Owned by eventstore.store (events, streams, clients), eventstore.codec
-- (dictionaries) and eventstore.storage (meta).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Every store that ever recorded an event here; events refer to it by number.
CREATE TABLE clients (
    client_no INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL UNIQUE
);

-- One row per stream: its name and current version (the version of its last event).
CREATE TABLE streams (
    stream_no INTEGER PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    version   INTEGER NOT NULL
);

-- zstd dictionaries trained on the store's own payloads.
CREATE TABLE dictionaries (
    dict_id      INTEGER PRIMARY KEY,
    created_at   INTEGER NOT NULL,
    trained_at   INTEGER NOT NULL,   -- log position when trained
    samples      INTEGER NOT NULL,
    data         BLOB NOT NULL
);

-- The log. position is the global, gap-free sync cursor. stream_no and client_no are not
-- declared foreign keys: the store writes them, and `check` verifies them, off the hot path.
-- dict_id: NULL = data stored as is; 0 = zstd without dictionary; N = zstd with dictionary N.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       BLOB NOT NULL UNIQUE,
    stream_no      INTEGER NOT NULL,  -- streams.stream_no
    version        INTEGER NOT NULL,
    type           TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    entity         TEXT NOT NULL,
    entity_id      TEXT NOT NULL,
    op             TEXT NOT NULL CHECK (op IN ('create', 'update', 'delete', 'link', 'unlink')),
    client_no      INTEGER NOT NULL,  -- clients.client_no
    actor          TEXT NOT NULL,
    occurred_at    INTEGER,
    recorded_at    INTEGER NOT NULL,
    causation_id   TEXT,
    correlation_id TEXT,
    dict_id        INTEGER,
    data           BLOB NOT NULL,
    UNIQUE (stream_no, version)
);

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'eventstore: the events table is append-only; record a correction as a new event');
END;

CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'eventstore: the events table is append-only; record a deletion as a new event');
END;
