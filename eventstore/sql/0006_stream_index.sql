-- Where each stream's events are, kept per append instead of per event. Owned by
-- eventstore.stream_index.
--
-- The events table loses UNIQUE (stream_no, version) and the CHECK on op: an index entry per
-- event cost as much as the row itself, and the Store assigns versions and checks ops under the
-- write lock (`check` verifies both). One stream_index row per stream per append finds a
-- stream's events: a bulk append of a transcript writes a few rows instead of thousands.

CREATE TABLE stream_index (
    stream_no      INTEGER NOT NULL,  -- streams.stream_no
    first_version  INTEGER NOT NULL,
    last_version   INTEGER NOT NULL,
    first_position INTEGER NOT NULL,  -- the position of first_version
    positions      BLOB,              -- NULL: the versions are at consecutive positions from
                                      -- first_position; else every one's position, int64 little-endian
    PRIMARY KEY (stream_no, first_version)
) WITHOUT ROWID;

INSERT INTO stream_index (stream_no, first_version, last_version, first_position, positions)
SELECT stream_no, version, version, position, NULL FROM events;

-- Rebuild the events table without the constraints; the position sequence carries over.
INSERT OR REPLACE INTO meta (key, value)
SELECT 'migration_0006.sequence', seq FROM sqlite_sequence WHERE name = 'events';

CREATE TABLE events_0006 (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       BLOB NOT NULL UNIQUE,
    stream_no      INTEGER NOT NULL,  -- streams.stream_no
    version        INTEGER NOT NULL,
    type           TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    entity         TEXT NOT NULL,
    entity_id      TEXT NOT NULL,
    op             TEXT NOT NULL,     -- create, update, delete, link or unlink
    client_no      INTEGER NOT NULL,  -- clients.client_no
    actor          TEXT NOT NULL,
    occurred_at    INTEGER,
    recorded_at    INTEGER NOT NULL,
    causation_id   TEXT,
    correlation_id TEXT,
    dict_id        INTEGER,
    data           BLOB NOT NULL,
    block_id       INTEGER            -- NULL: the payload is data; else a member of blocks.block_id
);

INSERT INTO events_0006 (position, event_id, stream_no, version, type, schema_version, entity, entity_id, op,
                         client_no, actor, occurred_at, recorded_at, causation_id, correlation_id, dict_id,
                         data, block_id)
SELECT position, event_id, stream_no, version, type, schema_version, entity, entity_id, op,
       client_no, actor, occurred_at, recorded_at, causation_id, correlation_id, dict_id, data, block_id
FROM events ORDER BY position;

DROP TABLE events;
ALTER TABLE events_0006 RENAME TO events;

DELETE FROM sqlite_sequence WHERE name IN ('events', 'events_0006');
INSERT INTO sqlite_sequence (name, seq)
SELECT 'events', CAST(value AS INTEGER) FROM meta WHERE key = 'migration_0006.sequence';
DELETE FROM meta WHERE key = 'migration_0006.sequence';

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'eventstore: the events table is append-only; record a correction as a new event');
END;

CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'eventstore: the events table is append-only; record a deletion as a new event');
END;

CREATE TRIGGER stream_index_append_only_update BEFORE UPDATE ON stream_index
BEGIN
    SELECT RAISE(ABORT, 'eventstore: the stream index is append-only');
END;

CREATE TRIGGER stream_index_append_only_delete BEFORE DELETE ON stream_index
BEGIN
    SELECT RAISE(ABORT, 'eventstore: the stream index is append-only');
END;
