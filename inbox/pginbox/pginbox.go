// Package pginbox is an inbox.Store in PostgreSQL (pgx/v5): the record
// that a consumer processed a job is a row written in the same
// transaction as the handler's own writes, which the handler reads from
// its ctx with Tx. The job's effects and its record commit together or
// not at all, so a redelivered job whose effects committed is skipped,
// whenever the worker died.
//
// The table (default warren_inbox) is created by Migrate, or by
// `warren inbox migrate`; Purge deletes records past a retention.
package pginbox

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/warrenmq/warren/inbox"
)

// DefaultTable is the inbox table's name when WithTable is not given.
const DefaultTable = "warren_inbox"

//go:embed migrate.sql
var migrateSQL string

// DB is what the store needs of a database: *pgxpool.Pool is one, and
// *pgx.Conn for a pool whose handlers run one at a time (a connection
// holds one transaction at a time).
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Option configures New.
type Option func(*Store) error

// WithTable names the inbox table, optionally qualified by its schema
// ("billing.warren_inbox"); default DefaultTable, found by the
// connection's search_path.
func WithTable(name string) Option {
	return func(s *Store) error {
		parts := strings.Split(name, ".")
		if len(parts) > 2 {
			return fmt.Errorf("pginbox: WithTable(%q): give a table name, or schema.table", name)
		}
		for _, p := range parts {
			if p == "" {
				return fmt.Errorf("pginbox: WithTable(%q): empty name", name)
			}
		}
		s.ident = pgx.Identifier(parts)
		return nil
	}
}

// Store is the inbox in PostgreSQL. It is safe for concurrent use.
type Store struct {
	db    DB
	ident pgx.Identifier
	table string // ident, quoted
}

// New returns the store on db. Create its table first (Migrate).
func New(db DB, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, errors.New("pginbox: New: nil database")
	}
	s := &Store{db: db, ident: pgx.Identifier{DefaultTable}}
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("pginbox: New: nil option")
		}
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	s.table = s.ident.Sanitize()
	return s, nil
}

// Migrate creates the inbox table and its index, if they do not exist.
func (s *Store) Migrate(ctx context.Context) error {
	if _, err := s.db.Exec(ctx, s.MigrationSQL()); err != nil {
		return fmt.Errorf("pginbox: create table %s: %w", s.table, err)
	}
	return nil
}

// MigrationSQL returns the SQL Migrate runs, for a migration tool of the
// service's own.
func (s *Store) MigrationSQL() string {
	index := pgx.Identifier{s.ident[len(s.ident)-1] + "_processed_at"}.Sanitize()
	return strings.NewReplacer("{{table}}", s.table, "{{index}}", index).Replace(migrateSQL)
}

// Purge deletes the records processed more than olderThan ago and returns
// how many it deleted. Keep records longer than a job can be delivered
// again: its retries, its time in a dead-letter queue before a replay,
// and a margin. A job delivered after its record was purged runs again.
func (s *Store) Purge(ctx context.Context, olderThan time.Duration) (int64, error) {
	if olderThan < 0 {
		return 0, fmt.Errorf("pginbox: Purge(%s): give a retention of zero or more", olderThan)
	}
	tag, err := s.db.Exec(ctx, "DELETE FROM "+s.table+" WHERE processed_at < now() - $1::interval", olderThan)
	if err != nil {
		return 0, fmt.Errorf("pginbox: purge %s: %w", s.table, err)
	}
	return tag.RowsAffected(), nil
}

type txKey struct{}

// Tx returns the transaction of the job being handled, in which the
// handler writes its effects, or nil when ctx is not a handler's under
// this store's inbox. The inbox commits it when the handler returns nil
// and rolls it back otherwise: the handler must not commit or roll it
// back itself.
func Tx(ctx context.Context) pgx.Tx {
	tx, _ := ctx.Value(txKey{}).(pgx.Tx)
	return tx
}

// Claim begins a transaction and inserts the job's record in it. A record
// inserted by a transaction that committed gives inbox.ErrProcessed; one
// inserted by a transaction still running (another worker running the
// job) makes this insert wait until that one ends, then either. The ctx
// it returns carries the transaction (Tx).
func (s *Store) Claim(ctx context.Context, consumer, jobID string) (context.Context, inbox.Claim, error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("pginbox: begin: %w", err)
	}
	tag, err := tx.Exec(ctx, "INSERT INTO "+s.table+" (consumer, job_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", consumer, jobID)
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, nil, fmt.Errorf("pginbox: insert into %s: %w", s.table, err)
	}
	if tag.RowsAffected() == 0 {
		// Processed: its result, if it kept one, for this delivery too.
		var result []byte
		err := tx.QueryRow(ctx, "SELECT result FROM "+s.table+" WHERE consumer = $1 AND job_id = $2", consumer, jobID).Scan(&result)
		if rerr := tx.Rollback(ctx); err == nil && rerr != nil {
			err = rerr
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) { // purged meanwhile: processed all the same
			return nil, nil, fmt.Errorf("pginbox: read the record of %s: %w", jobID, err)
		}
		return nil, nil, &inbox.ProcessedError{Result: result}
	}
	return context.WithValue(ctx, txKey{}, tx), claim{s: s, tx: tx, consumer: consumer, jobID: jobID}, nil
}

type claim struct {
	s               *Store
	tx              pgx.Tx
	consumer, jobID string
}

func (c claim) Commit(ctx context.Context) error { return c.tx.Commit(ctx) }

// CommitResult keeps result in the record, in the same transaction.
func (c claim) CommitResult(ctx context.Context, result []byte) error {
	if _, err := c.tx.Exec(ctx, "UPDATE "+c.s.table+" SET result = $3 WHERE consumer = $1 AND job_id = $2", c.consumer, c.jobID, result); err != nil {
		_ = c.tx.Rollback(context.WithoutCancel(ctx))
		return fmt.Errorf("pginbox: keep the result of %s: %w", c.jobID, err)
	}
	return c.tx.Commit(ctx)
}

func (c claim) Rollback(ctx context.Context) error {
	if err := c.tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return err
	}
	return nil
}
