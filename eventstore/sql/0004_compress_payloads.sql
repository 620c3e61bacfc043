-- Schedule compression of payloads stored as they are (databases written before payloads were
-- compressed, or with compression off). eventstore.space.compress_payloads does the work in
-- resumable batches the next time the store is opened, then removes this key.
INSERT OR REPLACE INTO meta (key, value) VALUES ('compress_payloads.after', '0');
