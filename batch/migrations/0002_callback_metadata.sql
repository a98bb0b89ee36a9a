-- The callback's own metadata, kept as Publish was given it: its contract
-- version (the warren-version header; 0 for none), its headers (a typed
-- AMQP table as JSON, as the outbox keeps them), its priority and reply-to.
ALTER TABLE warren_batch
	ADD COLUMN IF NOT EXISTS callback_version  integer  NOT NULL DEFAULT 0,
	ADD COLUMN IF NOT EXISTS callback_headers  jsonb,
	ADD COLUMN IF NOT EXISTS callback_priority smallint NOT NULL DEFAULT 0,
	ADD COLUMN IF NOT EXISTS callback_reply_to text;
