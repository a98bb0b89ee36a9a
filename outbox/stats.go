package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Queryer is what the read-only functions need of a database:
// *pgx.Conn, *pgxpool.Pool and pgx.Tx are ones.
type Queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Stats is the state of an outbox.
type Stats struct {
	// Backlog counts the rows not yet sent.
	Backlog int64
	// Failing counts the unsent rows that failed at least once (see
	// Row.LastError).
	Failing int64
	// Oldest is when the oldest unsent row was written; zero when the
	// backlog is empty.
	Oldest time.Time
	// Lag is the age of the oldest unsent row, by the database's clock:
	// how late the relay is. Zero when the backlog is empty.
	Lag time.Duration
	// LastSent is when a relay last marked a row sent; zero when no sent
	// row is kept.
	LastSent time.Time
}

// ReadStats reads the outbox's backlog and lag. It reads the unsent rows
// only (through their partial index) and the newest sent time.
func ReadStats(ctx context.Context, db Queryer) (Stats, error) {
	var s Stats
	var oldest, lastSent *time.Time
	var lagSec *float64
	err := db.QueryRow(ctx, `SELECT u.n, u.failing, u.oldest, extract(epoch FROM clock_timestamp() - u.oldest)::float8,
			(SELECT max(sent_at) FROM warren_outbox WHERE sent_at IS NOT NULL)
		FROM (SELECT count(*) AS n, count(*) FILTER (WHERE attempts > 0) AS failing, min(created_at) AS oldest
			FROM warren_outbox WHERE sent_at IS NULL) u`).Scan(&s.Backlog, &s.Failing, &oldest, &lagSec, &lastSent)
	if err != nil {
		return Stats{}, fmt.Errorf("outbox: stats: %w", tableErr(err))
	}
	if oldest != nil {
		s.Oldest = oldest.UTC()
	}
	if lagSec != nil && *lagSec > 0 {
		s.Lag = time.Duration(*lagSec * float64(time.Second))
	}
	if lastSent != nil {
		s.LastSent = lastSent.UTC()
	}
	return s, nil
}

// Row is an outbox row as List reads it (the message itself left out).
type Row struct {
	ID          int64
	JobID       string
	JobType     string
	Exchange    string
	RoutingKey  string
	OrderingKey string // empty: none
	CreatedAt   time.Time
	SentAt      time.Time // zero: not sent
	Attempts    int
	RetryAt     time.Time // zero: as soon as a relay comes to it
	LastError   string
}

// ListOptions selects the rows List reads.
type ListOptions struct {
	// Sent lists sent rows (newest first) instead of the unsent (oldest
	// first).
	Sent bool
	// Failing lists only rows that failed at least once.
	Failing bool
	// Limit caps the rows read (0: 100).
	Limit int
}

// List reads rows of the outbox: the unsent ones oldest first, or the
// sent ones (kept for the retention period) newest first.
func List(ctx context.Context, db Queryer, o ListOptions) ([]Row, error) {
	if o.Limit <= 0 {
		o.Limit = 100
	}
	where, order := "sent_at IS NULL", "id"
	if o.Sent {
		where, order = "sent_at IS NOT NULL", "sent_at DESC, id DESC"
	}
	if o.Failing {
		where += " AND last_error IS NOT NULL"
	}
	rows, err := db.Query(ctx, `SELECT id, job_id, job_type, exchange, routing_key, coalesce(ordering_key, ''),
			created_at, sent_at, attempts, retry_at, coalesce(last_error, '')
		FROM warren_outbox WHERE `+where+` ORDER BY `+order+` LIMIT $1`, o.Limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: list: %w", tableErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Row, error) {
		var row Row
		var sent, retry *time.Time
		if err := r.Scan(&row.ID, &row.JobID, &row.JobType, &row.Exchange, &row.RoutingKey, &row.OrderingKey,
			&row.CreatedAt, &sent, &row.Attempts, &retry, &row.LastError); err != nil {
			return row, err
		}
		row.CreatedAt = row.CreatedAt.UTC()
		if sent != nil {
			row.SentAt = sent.UTC()
		}
		if retry != nil {
			row.RetryAt = retry.UTC()
		}
		return row, nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: list: %w", tableErr(err))
	}
	return out, nil
}
