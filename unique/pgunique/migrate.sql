-- The unique keys of package pgunique: one row per key held, by the job
-- that holds it, until it is released or expires.
CREATE TABLE IF NOT EXISTS {{table}} (
	key        text        PRIMARY KEY,
	job_id     text        NOT NULL,
	expires_at timestamptz NOT NULL
);
