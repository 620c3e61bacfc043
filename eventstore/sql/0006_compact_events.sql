-- The events table, smaller and cheaper to append to. Owned by eventstore.stream_index
-- (stream_index) and eventstore.names (names, event_log).
--
-- The events table loses UNIQUE (stream_no, version) and the CHECK on op: an index entry per
-- event cost as much as the row itself, and the Store assigns versions and checks ops under the
-- write lock (`check` verifies both). One stream_index row per stream per append finds a
-- stream's events: a bulk append of a transcript writes a few rows instead of thousands.
-- Its type, entity, op and actor become numbers of rows in `names`: the same few strings
-- took about 50 bytes of every row.

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

CREATE TABLE names (
    name_no INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE
);

INSERT INTO names (name_no, name) VALUES (1, 'create'), (2, 'update'), (3, 'delete'), (4, 'link'), (5, 'unlink');
INSERT OR IGNORE INTO names (name)
SELECT type FROM events UNION SELECT entity FROM events UNION SELECT op FROM events UNION SELECT actor FROM events;

-- Rebuild the events table; the position sequence carries over.
INSERT OR REPLACE INTO meta (key, value)
SELECT 'migration_0006.sequence', seq FROM sqlite_sequence WHERE name = 'events';

CREATE TABLE events_0006 (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       BLOB NOT NULL UNIQUE,
    stream_no      INTEGER NOT NULL,  -- streams.stream_no
    version        INTEGER NOT NULL,
    type_no        INTEGER NOT NULL,  -- names.name_no
    schema_version INTEGER NOT NULL,
    entity_no      INTEGER NOT NULL,  -- names.name_no
    entity_id      TEXT NOT NULL,
    op_no          INTEGER NOT NULL,  -- names.name_no: 1 create, 2 update, 3 delete, 4 link, 5 unlink
    client_no      INTEGER NOT NULL,  -- clients.client_no
    actor_no       INTEGER NOT NULL,  -- names.name_no
    occurred_at    INTEGER,
    recorded_at    INTEGER NOT NULL,
    causation_id   TEXT,
    correlation_id TEXT,
    dict_id        INTEGER,
    data           BLOB NOT NULL,
    block_id       INTEGER            -- NULL: the payload is data; else a member of blocks.block_id
);

INSERT INTO events_0006 (position, event_id, stream_no, version, type_no, schema_version, entity_no, entity_id,
                         op_no, client_no, actor_no, occurred_at, recorded_at, causation_id, correlation_id,
                         dict_id, data, block_id)
SELECT position, event_id, stream_no, version, (SELECT name_no FROM names WHERE name = type), schema_version,
       (SELECT name_no FROM names WHERE name = entity), entity_id, (SELECT name_no FROM names WHERE name = op),
       client_no, (SELECT name_no FROM names WHERE name = actor), occurred_at, recorded_at, causation_id,
       correlation_id, dict_id, data, block_id
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

-- The log with its strings, for SQL users (payloads: event_payload(position) on the library's connections).
CREATE VIEW event_log AS
SELECT e.position, lower(hex(e.event_id)) AS event_id, s.name AS stream, e.version, t.name AS type,
       e.schema_version, n.name AS entity, e.entity_id, o.name AS op, c.client_id, a.name AS actor,
       e.occurred_at, e.recorded_at, e.causation_id, e.correlation_id
FROM events e
JOIN streams s ON s.stream_no = e.stream_no
JOIN names t ON t.name_no = e.type_no
JOIN names n ON n.name_no = e.entity_no
JOIN names o ON o.name_no = e.op_no
JOIN names a ON a.name_no = e.actor_no
JOIN clients c ON c.client_no = e.client_no;

CREATE TRIGGER names_append_only_update BEFORE UPDATE ON names
BEGIN
    SELECT RAISE(ABORT, 'eventstore: names are append-only');
END;

CREATE TRIGGER names_append_only_delete BEFORE DELETE ON names
BEGIN
    SELECT RAISE(ABORT, 'eventstore: names are append-only');
END;
