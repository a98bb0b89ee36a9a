-- A batch: its jobs' count, their outcomes counted so far, and the
-- callback published when the last of them ends.
CREATE TABLE warren_batch (
    id          text        PRIMARY KEY, -- the callback's job id
    total       integer     NOT NULL CHECK (total > 0),
    succeeded   integer     NOT NULL DEFAULT 0,
    failed      integer     NOT NULL DEFAULT 0,
    -- The callback as it will be written to the outbox when the batch
    -- finishes: its type, route and properties; its user headers in
    -- broker.Table's JSON form; its MessagePack payload, NULL when the
    -- callback has none (its payload is then the batch's Result).
    callback_type           text     NOT NULL,
    callback_exchange       text     NOT NULL,
    callback_routing_key    text     NOT NULL,
    callback_priority       smallint NOT NULL DEFAULT 0,
    callback_correlation_id text     NOT NULL DEFAULT '',
    callback_reply_to       text     NOT NULL DEFAULT '',
    callback_headers        json,
    callback_payload        bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz, -- set in the transaction that writes the callback
    CHECK (succeeded + failed <= total)
);

CREATE INDEX warren_batch_created ON warren_batch (created_at);
-- What the retention deletes.
CREATE INDEX warren_batch_finished ON warren_batch (finished_at) WHERE finished_at IS NOT NULL;

-- One row per job of a batch that ended, the first time it ended: its
-- primary key is what makes a duplicate delivery count nothing.
CREATE TABLE warren_batch_jobs (
    batch_id text        NOT NULL REFERENCES warren_batch (id) ON DELETE CASCADE,
    job_id   text        NOT NULL,
    job_type text        NOT NULL,
    status   text        NOT NULL, -- succeeded, dead-lettered or rejected
    class    text        NOT NULL DEFAULT '',
    error    text,
    ended_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, job_id)
);
