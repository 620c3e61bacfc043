-- Payload blocks. Owned by eventstore.payloads: a run of consecutive events of one stream
-- stored as one zstd frame (neighbouring transcript lines repeat each other).

CREATE TABLE blocks (
    block_id       INTEGER PRIMARY KEY,
    first_position INTEGER NOT NULL,   -- events.position of the first member
    dict_id        INTEGER,            -- as events.dict_id: NULL as is, 0 zstd alone, N dictionary N
    sizes          BLOB NOT NULL,      -- each member's payload length, uint32 little-endian, in order
    data           BLOB NOT NULL       -- the members' payloads concatenated, then encoded
);

-- NULL: the payload is the row's own data; else the row is a member of this block.
ALTER TABLE events ADD COLUMN block_id INTEGER;

CREATE TRIGGER blocks_append_only_update BEFORE UPDATE ON blocks
BEGIN
    SELECT RAISE(ABORT, 'eventstore: payload blocks are append-only; record a correction as a new event');
END;

CREATE TRIGGER blocks_append_only_delete BEFORE DELETE ON blocks
BEGIN
    SELECT RAISE(ABORT, 'eventstore: payload blocks are append-only; record a deletion as a new event');
END;
