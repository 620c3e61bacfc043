-- A blocks row may hold several frames side by side, each decoded on its own (see
-- eventstore.payloads): fewer rows leave fewer part-filled pages. The table is rebuilt so that
-- `frames` comes before `data`: a column after a long blob costs a walk along its overflow pages.
-- Owned by eventstore.payloads.

CREATE TABLE blocks_0009 (
    block_id       INTEGER PRIMARY KEY,
    first_position INTEGER NOT NULL,   -- events.position of the first member
    dict_id        INTEGER,            -- as events.dict_id: NULL as is, 0 zstd alone, N dictionary N
    sizes          BLOB NOT NULL,      -- each member's payload length, uint32 little-endian, in order
    frames         BLOB,               -- NULL: `data` is one frame; else each frame's member count and
                                       -- encoded length, uint32 little-endian pairs, in order
    data           BLOB NOT NULL       -- the frames, side by side
);

INSERT INTO blocks_0009 (block_id, first_position, dict_id, sizes, frames, data)
SELECT block_id, first_position, dict_id, sizes, NULL, data FROM blocks ORDER BY block_id;

DROP TABLE blocks;
ALTER TABLE blocks_0009 RENAME TO blocks;

CREATE TRIGGER blocks_append_only_update BEFORE UPDATE ON blocks
BEGIN
    SELECT RAISE(ABORT, 'eventstore: payload blocks are append-only; record a correction as a new event');
END;

CREATE TRIGGER blocks_append_only_delete BEFORE DELETE ON blocks
BEGIN
    SELECT RAISE(ABORT, 'eventstore: payload blocks are append-only; record a deletion as a new event');
END;
