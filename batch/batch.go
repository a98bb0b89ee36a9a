package batch

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/pgmigrate"
	"github.com/warrenmq/warren/outbox"
)

// MaxJobs is the most jobs a batch holds.
const MaxJobs = 100_000

// MaxFailures is the most failures a Result lists; Failed counts them all.
const MaxFailures = 1000

var (
	// ErrNoTable: the batch tables do not exist; run Migrate (or warren
	// batch migrate).
	ErrNoTable = errors.New("batch: the batch tables do not exist; run batch.Migrate or warren batch migrate")
	// ErrNotFound: no batch has the id.
	ErrNotFound = errors.New("batch: no such batch")
	// ErrInvalid is wrapped by the errors of a batch that cannot be
	// published: no jobs, too many, a callback without a type, a job or
	// callback without a route, jobs with the same id.
	ErrInvalid = errors.New("batch: invalid batch")
)

// Result is the payload of a batch's callback: how its jobs ended.
type Result struct {
	ID        string `msgpack:"id" json:"id"`
	Total     int    `msgpack:"total" json:"total"`
	Succeeded int    `msgpack:"succeeded" json:"succeeded"`
	Failed    int    `msgpack:"failed" json:"failed"`
	// Failures are the jobs that failed for good (dead-lettered), at most
	// MaxFailures of them.
	Failures []JobFailure `msgpack:"failures,omitempty" json:"failures,omitempty"`
	// Payload is the callback's own payload, as given to Publish
	// (MessagePack); DecodePayload reads it.
	Payload msgpack.RawMessage `msgpack:"payload,omitempty" json:"-"`
}

// DecodePayload decodes the callback's own payload into v.
func (r *Result) DecodePayload(v any) error {
	if len(r.Payload) == 0 {
		return errors.New("batch: the callback has no payload of its own")
	}
	env := broker.Envelope{Body: r.Payload}
	return env.Decode(v)
}

// JobFailure is a member job that failed for good.
type JobFailure struct {
	JobID string `msgpack:"job_id" json:"job_id"`
	Type  string `msgpack:"type" json:"type"`
	Class string `msgpack:"class" json:"class"`
	Error string `msgpack:"error" json:"error"`
}

// Publish writes a batch into tx, the caller's transaction: a row for the
// batch and its callback, and every job, marked as the batch's member
// (broker.BatchMember), through the transactional outbox (outbox.Publish).
// The batch exists, and its jobs are published, if and only if tx
// commits. It returns the batch's id (a new UUIDv7).
//
// The jobs and the callback are routed by router (a *topology.Topology):
// by their types' routes, resolved now. Once every job has ended —
// succeeded, or failed for good — the batch's Finisher, in the workers
// that run them, writes the callback through the outbox, once, its
// payload a Result (the callback's own payload inside it). An outbox relay
// must run (a worker daemon's, or warren outbox relay).
func Publish(ctx context.Context, tx pgx.Tx, router broker.Router, jobs []broker.Job, callback broker.Job) (string, error) {
	switch {
	case len(jobs) == 0:
		return "", fmt.Errorf("%w: no jobs", ErrInvalid)
	case len(jobs) > MaxJobs:
		return "", fmt.Errorf("%w: %d jobs, the most is %d: split it into several batches", ErrInvalid, len(jobs), MaxJobs)
	case callback.Type == "":
		return "", fmt.Errorf("%w: the callback has no job type", ErrInvalid)
	case router == nil:
		return "", fmt.Errorf("%w: nil router", ErrInvalid)
	}
	seen := make(map[string]int, len(jobs))
	for i, job := range jobs {
		if job.ID == "" {
			continue // outbox.Publish gives it a new one
		}
		if j, dup := seen[job.ID]; dup {
			return "", fmt.Errorf("%w: jobs %d and %d have the id %q: a batch counts each id once, so it would never finish; give each job its own id, or none", ErrInvalid, j, i, job.ID)
		}
		seen[job.ID] = i
	}
	exchange, key, ok := router.Route(callback.Type)
	if !ok {
		return "", fmt.Errorf("%w: the callback's type %q has no route: %w", ErrInvalid, callback.Type, outbox.ErrNoRoute)
	}
	// The callback's metadata is checked now, not when the batch ends.
	if _, err := broker.NewEnvelope(broker.Job{Type: callback.Type, Version: callback.Version, Headers: callback.Headers,
		Priority: callback.Priority, CorrelationID: callback.CorrelationID, ReplyTo: callback.ReplyTo}); err != nil {
		return "", fmt.Errorf("%w: the callback: %w", ErrInvalid, err)
	}
	var headers []byte
	if len(callback.Headers) > 0 {
		b, err := broker.Table(callback.Headers).MarshalJSON()
		if err != nil {
			return "", fmt.Errorf("%w: the callback's headers: %w", ErrInvalid, err)
		}
		headers = b
	}
	var payload []byte
	if callback.Payload != nil {
		b, err := broker.EncodePayload(callback.Payload)
		if err != nil {
			return "", fmt.Errorf("batch: the callback's payload: %w", err)
		}
		payload = b
	}
	id, err := broker.NewJobID()
	if err != nil {
		return "", err
	}
	corr := callback.CorrelationID
	if corr == "" {
		corr = broker.CorrelationIDFromContext(ctx)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO warren_batch (id, total, callback_type, callback_exchange, callback_routing_key, callback_payload, correlation_id,
			callback_version, callback_headers, callback_priority, callback_reply_to)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, id, len(jobs), callback.Type, exchange, key, payload, nullable(corr),
		callback.Version, nullable(string(headers)), int16(callback.Priority), nullable(callback.ReplyTo)); err != nil {
		return "", fmt.Errorf("batch: %w", tableErr(err))
	}
	opts := []outbox.PublishOption{outbox.Router(router), outbox.Marks(broker.BatchMember(id))}
	for i, job := range jobs {
		if err := outbox.Publish(ctx, tx, job, opts...); err != nil {
			if errors.Is(err, outbox.ErrNoRoute) || errors.Is(err, broker.ErrInvalidJob) {
				return "", fmt.Errorf("%w: job %d (%s): %w", ErrInvalid, i, job.Type, err)
			}
			return "", fmt.Errorf("batch: job %d (%s): %w", i, job.Type, err)
		}
	}
	return id, nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// tableErr turns PostgreSQL's "relation does not exist" for the batch
// tables into ErrNoTable.
func tableErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table
		return fmt.Errorf("%w (%w)", ErrNoTable, err)
	}
	return err
}

// callbackNamespace is the UUIDv5 namespace of callbacks' job ids: one id
// per batch, whatever writes it.
var callbackNamespace = uuid.MustParse("3f6b1d2a-8c4e-5a7f-9b0d-626174636821")

// CallbackID returns the job id of the batch's callback.
func CallbackID(batchID string) string {
	return uuid.NewSHA1(callbackNamespace, []byte(batchID)).String()
}

// Status is a batch as Get and List read it.
type Status struct {
	ID           string     `json:"id"`
	Total        int        `json:"total"`
	Succeeded    int        `json:"succeeded"`
	Failed       int        `json:"failed"`
	CallbackType string     `json:"callback_type"`
	CreatedAt    time.Time  `json:"created_at"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"` // when the last job ended and the callback was written
	// Failures are the jobs that failed, at most MaxFailures (Get only).
	Failures []JobFailure `json:"failures,omitempty"`
}

// Pending is how many jobs have not ended yet.
func (s Status) Pending() int { return s.Total - s.Succeeded - s.Failed }

// Queryer is what Get and List need of a database: *pgx.Conn,
// *pgxpool.Pool and pgx.Tx are ones.
type Queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const statusColumns = `id, total, succeeded, failed, callback_type, created_at, finished_at`

func scanStatus(row pgx.Row) (Status, error) {
	var s Status
	err := row.Scan(&s.ID, &s.Total, &s.Succeeded, &s.Failed, &s.CallbackType, &s.CreatedAt, &s.FinishedAt)
	return s, err
}

// Get reads the batch id, with its failures. An unknown id is an error
// wrapping ErrNotFound.
func Get(ctx context.Context, db Queryer, id string) (Status, error) {
	s, err := scanStatus(db.QueryRow(ctx, `SELECT `+statusColumns+` FROM warren_batch WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Status{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Status{}, fmt.Errorf("batch: get %s: %w", id, tableErr(err))
	}
	if s.Failures, err = failures(ctx, db, id); err != nil {
		return Status{}, err
	}
	return s, nil
}

func failures(ctx context.Context, db Queryer, id string) ([]JobFailure, error) {
	rows, err := db.Query(ctx, `SELECT job_id, job_type, coalesce(class, ''), coalesce(error, '') FROM warren_batch_jobs
		WHERE batch_id = $1 AND status = 'failed' ORDER BY ended_at, job_id LIMIT $2`, id, MaxFailures)
	if err != nil {
		return nil, fmt.Errorf("batch: the failures of %s: %w", id, tableErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobFailure, error) {
		var f JobFailure
		err := r.Scan(&f.JobID, &f.Type, &f.Class, &f.Error)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("batch: the failures of %s: %w", id, err)
	}
	return out, nil
}

// ListOptions selects the batches List reads.
type ListOptions struct {
	// Finished selects finished batches (true), unfinished ones (false),
	// or both (nil).
	Finished *bool
	// Limit is the most batches read, newest first; 0: 100.
	Limit int
}

// List reads batches, newest first, without their failures.
func List(ctx context.Context, db Queryer, o ListOptions) ([]Status, error) {
	if o.Limit <= 0 {
		o.Limit = 100
	}
	where := ""
	if o.Finished != nil {
		where = "WHERE finished_at IS NULL"
		if *o.Finished {
			where = "WHERE finished_at IS NOT NULL"
		}
	}
	rows, err := db.Query(ctx, `SELECT `+statusColumns+` FROM warren_batch `+where+` ORDER BY created_at DESC, id LIMIT $1`, o.Limit)
	if err != nil {
		return nil, fmt.Errorf("batch: list: %w", tableErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Status, error) { return scanStatus(r) })
	if err != nil {
		return nil, fmt.Errorf("batch: list: %w", err)
	}
	return out, nil
}

// Execer is what DeleteFinished needs of a database.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// DeleteFinished deletes the batches finished more than olderThan ago,
// with their jobs' rows, and returns how many it deleted. Unfinished
// batches are never deleted.
func DeleteFinished(ctx context.Context, db Execer, olderThan time.Duration) (int64, error) {
	if olderThan < 0 {
		return 0, fmt.Errorf("batch: DeleteFinished(%s): give a retention of zero or more", olderThan)
	}
	tag, err := db.Exec(ctx, `DELETE FROM warren_batch WHERE finished_at < now() - $1::interval`, olderThan)
	if err != nil {
		return 0, fmt.Errorf("batch: delete finished batches: %w", tableErr(err))
	}
	return tag.RowsAffected(), nil
}

//go:embed migrations/*.sql
var migrations embed.FS

var schema = pgmigrate.Set{Package: "batch", FS: migrations, Dir: "migrations"}

// DB is what Migrate needs of a database: *pgx.Conn and *pgxpool.Pool
// are ones.
type DB = pgmigrate.DB

// Migration is one step of the batch schema.
type Migration = pgmigrate.Migration

// Migrations returns the batch schema's migrations in order, for a
// project that applies its schema with its own tool (after the outbox's:
// outbox.Migrations).
func Migrations() ([]Migration, error) { return schema.Migrations() }

// Migrate creates or updates the outbox's tables (outbox.Migrate), then
// the batch tables, in the first schema of the search_path, and returns
// the batch versions it applied. It is idempotent and safe to run from
// several processes at once.
func Migrate(ctx context.Context, db DB) ([]int, error) {
	if _, err := outbox.Migrate(ctx, db); err != nil {
		return nil, err
	}
	return schema.Apply(ctx, db)
}
