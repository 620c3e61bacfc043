-- A blocks row may hold several frames side by side, each decoded on its own (see
-- eventstore.payloads): fewer rows leave fewer part-filled pages. Owned by eventstore.payloads.

-- NULL: `data` is one frame; else each frame's member count and encoded length, uint32
-- little-endian pairs, in order.
ALTER TABLE blocks ADD COLUMN frames BLOB;
