-- A fingerprint of the bytes just before a file's committed offset. The head alone misses a
-- file rewritten in place with its first bytes unchanged and no shorter than before: reading on
-- from the old offset would skip the changed lines and cut a line in two. Owned by
-- eventstore.ingest.sources.

ALTER TABLE sources ADD COLUMN seam_hash BLOB;  -- hash of the up to 4 KiB ending at offset; NULL: not known yet
