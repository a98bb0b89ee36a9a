-- The outbox: one row per job written in a producer's transaction, sent
-- to RabbitMQ by a relay once the transaction commits.
CREATE TABLE warren_outbox (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        text        NOT NULL,
    job_type      text        NOT NULL,
    exchange      text        NOT NULL,
    routing_key   text        NOT NULL,
    ordering_key  text,
    -- The message's properties and headers, as broker.Envelope.Message
    -- writes them: sent again, the job is byte for byte the same job.
    priority       smallint    NOT NULL DEFAULT 0,
    correlation_id text        NOT NULL DEFAULT '',
    reply_to       text        NOT NULL DEFAULT '',
    job_timestamp  timestamptz NOT NULL,
    headers        json,       -- broker.Table's JSON form (field types kept); json, not jsonb, to keep it byte for byte
    body           bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    retry_at      timestamptz,
    last_error    text
);

-- What the relays claim, oldest first.
CREATE INDEX warren_outbox_unsent ON warren_outbox (id) WHERE sent_at IS NULL;
-- The oldest unsent row of each ordering key.
CREATE INDEX warren_outbox_unsent_key ON warren_outbox (ordering_key, id)
    WHERE sent_at IS NULL AND ordering_key IS NOT NULL;
-- What the retention deletes.
CREATE INDEX warren_outbox_sent ON warren_outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Relays LISTEN on warren_outbox: a commit that inserted rows wakes them
-- (the payload is the table's schema), one notification per transaction.
CREATE FUNCTION warren_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('warren_outbox', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;

CREATE TRIGGER warren_outbox_notify AFTER INSERT ON warren_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION warren_outbox_notify();
