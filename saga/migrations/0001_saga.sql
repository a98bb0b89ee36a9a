-- Saga instances: one row per saga, its state as JSON for operators and SQL.
CREATE TABLE warren_saga (
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    -- running, compensating, completed, compensated, failed
    status      text        NOT NULL,
    -- The index of the step whose command (running) or compensation
    -- (compensating) is pending; of the last one in an end state.
    step        integer     NOT NULL DEFAULT 0,
    state       jsonb       NOT NULL,
    -- When the pending command times out; null: no deadline.
    deadline    timestamptz,
    version     integer     NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    last_error  text
);

-- What the timeout loops claim.
CREATE INDEX warren_saga_deadline ON warren_saga (deadline)
    WHERE status IN ('running', 'compensating') AND deadline IS NOT NULL;
CREATE INDEX warren_saga_status ON warren_saga (status, created_at);

-- Every command and compensation sent, in order.
CREATE TABLE warren_saga_steps (
    saga_id  text        NOT NULL REFERENCES warren_saga (id) ON DELETE CASCADE,
    seq      integer     NOT NULL,
    step     text        NOT NULL,
    kind     text        NOT NULL, -- command, compensation
    job_id   text        NOT NULL,
    job_type text        NOT NULL,
    -- pending, succeeded, failed, timed_out
    status   text        NOT NULL DEFAULT 'pending',
    error    text,
    sent_at  timestamptz NOT NULL DEFAULT now(),
    done_at  timestamptz,
    PRIMARY KEY (saga_id, seq)
);

-- A reply finds its saga by the command's job id (its correlation id).
CREATE UNIQUE INDEX warren_saga_steps_job ON warren_saga_steps (job_id);
