-- The batches of package batch: one row per batch, with its counters and
-- its callback, and one row per member job that ended.
CREATE TABLE IF NOT EXISTS warren_batch (
	id                   text        PRIMARY KEY,
	total                integer     NOT NULL CHECK (total > 0),
	succeeded            integer     NOT NULL DEFAULT 0,
	failed               integer     NOT NULL DEFAULT 0,
	callback_type        text        NOT NULL,
	callback_exchange    text        NOT NULL,
	callback_routing_key text        NOT NULL,
	callback_payload     bytea,                   -- the callback's own payload, MessagePack
	correlation_id       text,
	created_at           timestamptz NOT NULL DEFAULT now(),
	finished_at          timestamptz              -- set when the last member ended and the callback was written
);
CREATE INDEX IF NOT EXISTS warren_batch_finished_at ON warren_batch (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS warren_batch_jobs (
	batch_id text        NOT NULL REFERENCES warren_batch (id) ON DELETE CASCADE,
	job_id   text        NOT NULL,
	job_type text        NOT NULL,
	status   text        NOT NULL CHECK (status IN ('succeeded', 'failed')),
	class    text,
	error    text,
	ended_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (batch_id, job_id)
);
