-- Ingestion state. Owned by eventstore.ingest.sources (sources, line_sources) and
-- eventstore.ingest.quarantine (quarantine).

-- One checkpoint per transcript file: which file it is and how far it has been read.
CREATE TABLE sources (
    source_id  INTEGER PRIMARY KEY,
    path       TEXT NOT NULL UNIQUE,
    device     INTEGER NOT NULL,
    inode      INTEGER NOT NULL,
    head_hash  BLOB NOT NULL,        -- hash of the first head_len bytes when last read
    head_len   INTEGER NOT NULL,
    offset     INTEGER NOT NULL,     -- bytes consumed: the end of the last complete line
    size       INTEGER NOT NULL,     -- file size when last read
    mtime_ns   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Provenance: where each event's bytes were read (a line may occur in several files).
CREATE TABLE line_sources (
    position  INTEGER NOT NULL,      -- events.position
    source_id INTEGER NOT NULL,      -- sources.source_id
    offset    INTEGER NOT NULL,      -- byte offset of the object in the file
    PRIMARY KEY (position, source_id, offset)
) WITHOUT ROWID;

-- Lines that could not be decoded, kept whole with the reason.
CREATE TABLE quarantine (
    quarantine_id INTEGER PRIMARY KEY,
    source_id     INTEGER NOT NULL,  -- sources.source_id
    offset        INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    line          BLOB NOT NULL,
    recorded_at   INTEGER NOT NULL,
    UNIQUE (source_id, offset)
);
