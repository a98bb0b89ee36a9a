-- The inbox of package pginbox: one row per job a consumer processed,
-- written in the same transaction as the handler's own writes.
CREATE TABLE IF NOT EXISTS {{table}} (
	consumer     text        NOT NULL,
	job_id       text        NOT NULL,
	processed_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (consumer, job_id)
);
-- The handler's result (MessagePack), for the job's later deliveries:
-- added after the first release, hence apart.
ALTER TABLE {{table}} ADD COLUMN IF NOT EXISTS result bytea;
-- For Purge, which deletes the records older than a retention.
CREATE INDEX IF NOT EXISTS {{index}} ON {{table}} (processed_at);
