package batch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/worker"
)

// DefaultFinishTimeout bounds one count, callback included.
const DefaultFinishTimeout = 30 * time.Second

// maxError is the longest error text kept for a failed job, in bytes.
const maxError = broker.MaxErrorHeader

// FinisherOption configures NewFinisher.
type FinisherOption func(*Finisher) error

// WithLogger sets the Finisher's logger (default: none). Counts are logged
// at Debug, a finished batch at Info, a job of an unknown batch at Warn.
func WithLogger(l zerolog.Logger) FinisherOption {
	return func(f *Finisher) error {
		f.log = l
		return nil
	}
}

// WithFinishTimeout bounds one count, callback included (default
// DefaultFinishTimeout). A count that times out is an error: the job runs
// again, and is counted then.
func WithFinishTimeout(d time.Duration) FinisherOption {
	return func(f *Finisher) error {
		if d <= 0 {
			return fmt.Errorf("batch: WithFinishTimeout(%s): give a positive duration", d)
		}
		f.timeout = d
		return nil
	}
}

// Finisher counts the ends of batches' jobs: it is a worker.Finisher, for
// every pool that runs jobs of batches (worker.WithFinisher). For a job
// with a warren-batch header, once it has ended — succeeded, dead-lettered,
// or rejected — and before it is acked, one transaction records the job's
// outcome under its id, adds it to the batch's counts, and, when it is the
// last job of the batch, writes the batch's callback into the outbox. A
// job already counted (a duplicate delivery, a replay from a dead-letter
// queue) counts nothing. Jobs without the header are let through.
//
// The callback is sent by the outbox's relay (outbox.Relay, in a worker
// daemon or warren outbox relay), which must run on the same database.
type Finisher struct {
	db      *pgxpool.Pool
	log     zerolog.Logger
	timeout time.Duration
}

var _ worker.Finisher = (*Finisher)(nil)

// NewFinisher returns the Finisher of the batches in db.
func NewFinisher(db *pgxpool.Pool, opts ...FinisherOption) (*Finisher, error) {
	if db == nil {
		return nil, errors.New("batch: NewFinisher: nil database pool")
	}
	f := &Finisher{db: db, log: zerolog.Nop(), timeout: DefaultFinishTimeout}
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("batch: NewFinisher: nil option")
		}
		if err := opt(f); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// ID returns the id of the batch job belongs to, from its warren-batch
// header, and whether it has one.
func ID(job *worker.Job) (string, bool) {
	if job == nil || job.Envelope == nil {
		return "", false
	}
	id, ok := job.Envelope.Headers[broker.HeaderBatch].(string)
	return id, ok && id != ""
}

// outcome is the status a job's end is recorded with.
func outcome(s worker.Status) (string, bool) {
	switch s {
	case worker.Succeeded:
		return "succeeded", true
	case worker.DeadLettered:
		return "dead-lettered", true
	case worker.Rejected:
		return "rejected", true
	}
	return "", false
}

// FinishJob is worker.Finisher's: it counts job's end in its batch, once.
func (f *Finisher) FinishJob(ctx context.Context, job *worker.Job, end worker.End) error {
	id, ok := ID(job)
	if !ok {
		return nil
	}
	status, ok := outcome(end.Status)
	if !ok {
		return nil // not an end
	}
	var errText any // NULL on success
	if end.Err != nil {
		errText = truncate(end.Err.Error(), maxError)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	var res *Result
	err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
		var err error
		res, err = count(ctx, tx, id, job, status, end.Class, errText, f.log)
		return err
	})
	if err != nil {
		return fmt.Errorf("batch %s: count job %s: %w", id, job.ID, tableErr(err))
	}
	if res != nil {
		f.log.Info().Str(logfield.BatchID, id).Int(logfield.Jobs, res.Total).Int(logfield.Succeeded, res.Succeeded).Int(logfield.Failed, res.Failed).
			Msg("batch: finished; its callback is in the outbox")
	}
	return nil
}

// count records job's end in tx and returns the batch's Result when the
// job was its last, after writing the callback.
func count(ctx context.Context, tx pgx.Tx, id string, job *worker.Job, status, class string, errText any, log zerolog.Logger) (*Result, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO warren_batch_jobs (batch_id, job_id, job_type, status, class, error)
		SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM warren_batch WHERE id = $1)
		ON CONFLICT (batch_id, job_id) DO NOTHING`, id, job.ID, job.Type, status, class, errText)
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() == 0 {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM warren_batch WHERE id = $1)`, id).Scan(&exists); err != nil {
			return nil, err
		}
		if !exists {
			log.Warn().Str(logfield.BatchID, id).Str(logfield.JobID, job.ID).Str(logfield.JobType, job.Type).
				Msg("batch: a job of an unknown batch ended (deleted by the retention?); not counted")
		} else {
			log.Debug().Str(logfield.BatchID, id).Str(logfield.JobID, job.ID).Msg("batch: job already counted")
		}
		return nil, nil
	}
	succeeded, failed := 0, 1
	if status == "succeeded" {
		succeeded, failed = 1, 0
	}
	// The row lock taken here orders the counts of one batch: exactly one
	// transaction sees the last job in, and the failures it reads below
	// include every count committed before it.
	var (
		cb       broker.Job
		ex, key  string
		headers  []byte
		payload  []byte
		priority int16
		res      Result
		done     bool
	)
	err = tx.QueryRow(ctx, `UPDATE warren_batch SET succeeded = succeeded + $2, failed = failed + $3,
			finished_at = CASE WHEN succeeded + failed + 1 >= total THEN now() END
		WHERE id = $1 AND finished_at IS NULL
		RETURNING total, succeeded, failed, finished_at IS NOT NULL, callback_type, callback_exchange, callback_routing_key,
			callback_priority, callback_correlation_id, callback_reply_to, callback_headers::text, callback_payload`,
		id, succeeded, failed).Scan(&res.Total, &res.Succeeded, &res.Failed, &done, &cb.Type, &ex, &key,
		&priority, &cb.CorrelationID, &cb.ReplyTo, &headers, &payload)
	if errors.Is(err, pgx.ErrNoRows) {
		// Finished already: a job that was not one of its own (a copy
		// published with the header by hand) is recorded, not counted.
		log.Warn().Str(logfield.BatchID, id).Str(logfield.JobID, job.ID).Msg("batch: a job ended after its batch finished; not counted")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	log.Debug().Str(logfield.BatchID, id).Str(logfield.JobID, job.ID).Str(logfield.Status, status).
		Int(logfield.Succeeded, res.Succeeded).Int(logfield.Failed, res.Failed).Int(logfield.Jobs, res.Total).Msg("batch: job counted")
	if !done {
		return nil, nil
	}
	res.ID = id
	if res.Failures, err = failures(ctx, tx, id); err != nil {
		return nil, err
	}
	if res.Failures == nil {
		res.Failures = []JobFailure{}
	}
	cb.ID, cb.Priority = id, uint8(priority)
	if headers != nil {
		var t broker.Table
		if err := t.UnmarshalJSON(headers); err != nil {
			return nil, fmt.Errorf("the callback's headers: %w", err)
		}
		cb.Headers = t
	}
	if payload != nil {
		cb.Payload = msgpack.RawMessage(payload)
	} else {
		cb.Payload = res
	}
	if err := outbox.Publish(ctx, tx, cb, outbox.To(ex, key)); err != nil {
		return nil, fmt.Errorf("write the callback: %w", err)
	}
	return &res, nil
}

// truncate cuts s to at most n bytes, at a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
