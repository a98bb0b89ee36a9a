package batch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Result is what a batch came to: the payload of a callback that has none
// of its own.
type Result struct {
	ID        string       `json:"id"`
	Total     int          `json:"total"`
	Succeeded int          `json:"succeeded"`
	Failed    int          `json:"failed"`
	Failures  []JobFailure `json:"failures"` // the failed jobs, in the order they ended
}

// JobFailure is a job of a batch that failed for good.
type JobFailure struct {
	JobID string `json:"job_id"`
	Type  string `json:"type"`
	// Status is how it ended: "dead-lettered" (it waits in its queue's
	// dead-letter queue) or "rejected" (its queue has none: the broker
	// dropped it, or dead-lettered it by policy).
	Status string `json:"status"`
	Class  string `json:"class"` // the failure's class (worker.Class*)
	Error  string `json:"error"`
}

// Status is where a batch is.
type Status string

const (
	// Running: some of its jobs have not ended yet.
	Running Status = "running"
	// Finished: every job ended, and the callback was written to the
	// outbox in the same transaction as the last count.
	Finished Status = "finished"
)

// Batch is a batch as Get and List read it.
type Batch struct {
	ID           string     `json:"id"` // the callback's job id
	Status       Status     `json:"status"`
	Total        int        `json:"total"`
	Succeeded    int        `json:"succeeded"`
	Failed       int        `json:"failed"`
	CallbackType string     `json:"callback_type"`
	CreatedAt    time.Time  `json:"created_at"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	// Failures are the jobs that failed so far, in the order they ended
	// (Get only).
	Failures []JobFailure `json:"failures,omitempty"`
}

// Result is b's counts and failures as a callback gets them.
func (b Batch) Result() Result {
	f := b.Failures
	if f == nil {
		f = []JobFailure{}
	}
	return Result{ID: b.ID, Total: b.Total, Succeeded: b.Succeeded, Failed: b.Failed, Failures: f}
}

// Queryer is what Get and List need of a database: *pgx.Conn,
// *pgxpool.Pool and pgx.Tx are ones.
type Queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Execer is what DeleteFinished needs of a database: *pgx.Conn,
// *pgxpool.Pool and pgx.Tx are ones.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

const batchColumns = `id, total, succeeded, failed, callback_type, created_at, finished_at`

func scanBatch(row pgx.Row) (Batch, error) {
	var b Batch
	err := row.Scan(&b.ID, &b.Total, &b.Succeeded, &b.Failed, &b.CallbackType, &b.CreatedAt, &b.FinishedAt)
	b.Status = Running
	if b.FinishedAt != nil {
		b.Status = Finished
	}
	return b, err
}

// Get reads batch id: its status, counts and failures. An unknown id is
// an error wrapping ErrNotFound.
func Get(ctx context.Context, db Queryer, id string) (Batch, error) {
	b, err := scanBatch(db.QueryRow(ctx, `SELECT `+batchColumns+` FROM warren_batch WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Batch{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return Batch{}, fmt.Errorf("batch: read %s: %w", id, tableErr(err))
	}
	if b.Failures, err = failures(ctx, db, id); err != nil {
		return Batch{}, err
	}
	return b, nil
}

// failures reads the failed jobs of batch id, in the order they ended.
func failures(ctx context.Context, db Queryer, id string) ([]JobFailure, error) {
	rows, err := db.Query(ctx, `SELECT job_id, job_type, status, class, coalesce(error, '')
		FROM warren_batch_jobs WHERE batch_id = $1 AND status <> 'succeeded' ORDER BY ended_at, job_id`, id)
	if err != nil {
		return nil, fmt.Errorf("batch: read the failures of %s: %w", id, tableErr(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (JobFailure, error) {
		var f JobFailure
		err := row.Scan(&f.JobID, &f.Type, &f.Status, &f.Class, &f.Error)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("batch: read the failures of %s: %w", id, err)
	}
	return out, nil
}

// ListOptions filters List.
type ListOptions struct {
	Status Status // Running or Finished; "" for both
	Limit  int    // at most this many; 0 for 100
}

// List reads batches, newest first, without their failures.
func List(ctx context.Context, db Queryer, o ListOptions) ([]Batch, error) {
	if o.Limit <= 0 {
		o.Limit = 100
	}
	var where string
	switch o.Status {
	case "":
	case Running:
		where = `WHERE finished_at IS NULL`
	case Finished:
		where = `WHERE finished_at IS NOT NULL`
	default:
		return nil, fmt.Errorf("batch: List: status %q: give running, finished or none", o.Status)
	}
	rows, err := db.Query(ctx, `SELECT `+batchColumns+` FROM warren_batch `+where+` ORDER BY created_at DESC, id LIMIT $1`, o.Limit)
	if err != nil {
		return nil, fmt.Errorf("batch: list: %w", tableErr(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Batch, error) { return scanBatch(row) })
	if err != nil {
		return nil, fmt.Errorf("batch: list: %w", err)
	}
	return out, nil
}

// deleteChunk bounds the batches one DELETE removes (with their jobs'
// rows), so that the retention never holds a long transaction.
const deleteChunk = 1_000

// DeleteFinished deletes the batches that finished more than olderThan
// ago (by the database's clock), with their jobs' rows, in chunks, and
// returns how many batches it deleted. Running batches are never deleted,
// however old. Run it periodically (a cron job, a daemon's ticker): a
// batch is only needed until its callback has run.
func DeleteFinished(ctx context.Context, db Execer, olderThan time.Duration) (int64, error) {
	if olderThan < 0 {
		return 0, errors.New("batch: DeleteFinished: negative age")
	}
	var total int64
	for {
		tag, err := db.Exec(ctx, `DELETE FROM warren_batch WHERE id IN (
			SELECT id FROM warren_batch
			WHERE finished_at IS NOT NULL AND finished_at < clock_timestamp() - make_interval(secs => $1)
			LIMIT $2)`, olderThan.Seconds(), deleteChunk)
		if err != nil {
			return total, fmt.Errorf("batch: delete finished batches: %w", tableErr(err))
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < deleteChunk {
			return total, nil
		}
	}
}
