package batch

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/worker"
)

// Finisher counts the ends of batches' jobs: give it to the worker pools
// that run them (worker.WithFinisher). For each job of a batch that
// ended — succeeded, or failed for good — it records the job's end and
// updates the batch's counts in one transaction, before the job is acked;
// when the job is the batch's last, it writes the batch's callback into
// the outbox in that same transaction. A job's end is recorded once,
// keyed by its id: a duplicate delivery, or a job run again after a crash
// or a failed count, changes nothing. So the callback is written once,
// when the last of the batch's jobs has ended, and an outbox relay
// publishes it.
type Finisher struct {
	db  *pgxpool.Pool
	log zerolog.Logger
}

// Option configures NewFinisher.
type Option func(*Finisher) error

// WithLogger sets the logger (default: none).
func WithLogger(l zerolog.Logger) Option {
	return func(f *Finisher) error {
		f.log = l
		return nil
	}
}

// NewFinisher returns the Finisher of the batches in db.
func NewFinisher(db *pgxpool.Pool, opts ...Option) (*Finisher, error) {
	if db == nil {
		return nil, errors.New("batch: NewFinisher: nil database")
	}
	f := &Finisher{db: db, log: zerolog.Nop()}
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

var _ worker.Finisher = (*Finisher)(nil)

// FinishJob records the end of job, when it is a member of a batch (its
// warren-batch header); other jobs pass untouched. An error leaves the job
// unacked: it runs again, and is counted then.
func (f *Finisher) FinishJob(ctx context.Context, job *worker.Job, end worker.End) error {
	id, ok := job.Headers[broker.HeaderBatch].(string)
	if !ok || id == "" {
		return nil
	}
	status, class, errText := "succeeded", "", ""
	if end.Status != worker.Succeeded {
		status, class = "failed", end.Class
		if end.Err != nil {
			errText = truncate(end.Err.Error(), broker.MaxErrorHeader)
		}
	}
	err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
		// Recorded only if the batch exists: a foreign key violation
		// would abort the transaction, and its commit fail, so the job
		// would run again, and fail again, for ever.
		tag, err := tx.Exec(ctx, `INSERT INTO warren_batch_jobs (batch_id, job_id, job_type, status, class, error)
			SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM warren_batch WHERE id = $1)
			ON CONFLICT DO NOTHING`, id, job.ID, job.Type, status, nullable(class), nullable(errText))
		if err != nil {
			return fmt.Errorf("batch %s: record job %s: %w", id, job.ID, tableErr(err))
		}
		if tag.RowsAffected() == 0 {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM warren_batch WHERE id = $1)`, id).Scan(&exists); err != nil {
				return fmt.Errorf("batch %s: record job %s: %w", id, job.ID, err)
			}
			if !exists {
				f.log.Warn().Str(logfield.Batch, id).Str(logfield.JobID, job.ID).Msg("batch: a job of an unknown batch (deleted?) ended; not counted")
			}
			return nil // counted before, or of no batch
		}
		succeeded, failed := 0, 0
		if status == "succeeded" {
			succeeded = 1
		} else {
			failed = 1
		}
		var r Result
		var cbType, exchange, key string
		var payload []byte
		var corr, replyTo, headers *string
		var version int
		var priority int16
		err = tx.QueryRow(ctx, `UPDATE warren_batch SET succeeded = succeeded + $2, failed = failed + $3,
				finished_at = CASE WHEN succeeded + failed + 1 >= total THEN clock_timestamp() END
			WHERE id = $1 AND finished_at IS NULL
			RETURNING total, succeeded, failed, callback_type, callback_exchange, callback_routing_key, callback_payload, correlation_id,
				callback_version, callback_headers::text, callback_priority, callback_reply_to`,
			id, succeeded, failed).Scan(&r.Total, &r.Succeeded, &r.Failed, &cbType, &exchange, &key, &payload, &corr,
			&version, &headers, &priority, &replyTo)
		if errors.Is(err, pgx.ErrNoRows) {
			// The batch finished without this job: not one of its own
			// (published by hand with its header and a new id). Its
			// record is rolled back; the callback is not written again.
			return errNotMember
		}
		if err != nil {
			return fmt.Errorf("batch %s: count job %s: %w", id, job.ID, err)
		}
		if r.Succeeded+r.Failed < r.Total {
			return nil
		}
		// The last: the callback, in this transaction.
		r.ID, r.Payload = id, payload
		if r.Failed > 0 {
			if r.Failures, err = failures(ctx, tx, id); err != nil {
				return err
			}
		}
		cb := broker.Job{ID: CallbackID(id), Type: cbType, Version: version, Priority: uint8(priority), Payload: r}
		if corr != nil {
			cb.CorrelationID = *corr
		}
		if replyTo != nil {
			cb.ReplyTo = *replyTo
		}
		if headers != nil {
			var t broker.Table
			if err := t.UnmarshalJSON([]byte(*headers)); err != nil {
				return fmt.Errorf("batch %s: the callback's headers: %w", id, err)
			}
			cb.Headers = t
		}
		if err := outbox.Publish(ctx, tx, cb, outbox.To(exchange, key)); err != nil {
			return fmt.Errorf("batch %s: write the callback: %w", id, err)
		}
		f.log.Debug().Str(logfield.Batch, id).Int(logfield.Succeeded, r.Succeeded).Int(logfield.Failed, r.Failed).Msg("batch: finished; callback written")
		return nil
	})
	if errors.Is(err, errNotMember) {
		f.log.Warn().Str(logfield.Batch, id).Str(logfield.JobID, job.ID).Msg("batch: a job ended after its batch finished (not one of its jobs?); not counted")
		return nil
	}
	return err
}

// errNotMember rolls back the record of a job that ended after its batch
// finished.
var errNotMember = errors.New("batch: the batch finished without this job")

// truncate cuts s to at most n bytes, at a UTF-8 boundary, ending it
// with "…" when cut: a panic's stack or a long error stays in bounds in
// the table and in the callback's Result.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
