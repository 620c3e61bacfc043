-- Provenance by runs: one row per run of consecutive events read from one file, not one per
-- event. Owned by eventstore.ingest.sources.

CREATE TABLE line_runs (
    first_position INTEGER NOT NULL,  -- events.position of the run's first event
    source_id      INTEGER NOT NULL,  -- sources.source_id
    first_offset   INTEGER NOT NULL,  -- byte offset of the first event's object in the file
    last_position  INTEGER NOT NULL,
    steps          BLOB,              -- NULL for one event; else the offset of each next event less
                                      -- the one before, uint32 little-endian
    PRIMARY KEY (first_position, source_id, first_offset)
) WITHOUT ROWID;

INSERT INTO line_runs (first_position, source_id, first_offset, last_position, steps)
SELECT position, source_id, offset, position, NULL FROM line_sources;

DROP TABLE line_sources;
