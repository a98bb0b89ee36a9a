// Package pgunique is a unique.Store in PostgreSQL (pgx/v5): a row per
// key held, in a table (default warren_unique) created by Migrate or
// `warren unique migrate`.
package pgunique

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/warrenmq/warren/unique"
)

// DefaultTable is the keys' table when WithTable is not given.
const DefaultTable = "warren_unique"

//go:embed migrate.sql
var migrateSQL string

// DB is what the store needs of a database: *pgxpool.Pool, *pgx.Conn and
// pgx.Tx are ones (a key taken in a transaction of the caller's is taken
// when it commits).
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Option configures New.
type Option func(*Store) error

// WithTable names the keys' table, optionally qualified by its schema
// ("billing.warren_unique"); default DefaultTable, found by the
// connection's search_path.
func WithTable(name string) Option {
	return func(s *Store) error {
		parts := strings.Split(name, ".")
		if len(parts) > 2 {
			return fmt.Errorf("pgunique: WithTable(%q): give a table name, or schema.table", name)
		}
		for _, p := range parts {
			if p == "" {
				return fmt.Errorf("pgunique: WithTable(%q): empty name", name)
			}
		}
		s.table = pgx.Identifier(parts).Sanitize()
		return nil
	}
}

// Store holds unique keys in PostgreSQL. It is safe for concurrent use
// when its DB is.
type Store struct {
	db    DB
	table string // quoted
}

// New returns the store on db. Create its table first (Migrate).
func New(db DB, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, errors.New("pgunique: New: nil database")
	}
	s := &Store{db: db, table: pgx.Identifier{DefaultTable}.Sanitize()}
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("pgunique: New: nil option")
		}
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// MigrationSQL returns the SQL Migrate runs, for a migration tool of the
// service's own.
func (s *Store) MigrationSQL() string { return strings.ReplaceAll(migrateSQL, "{{table}}", s.table) }

// Migrate creates the keys' table if it does not exist.
func (s *Store) Migrate(ctx context.Context) error {
	if _, err := s.db.Exec(ctx, s.MigrationSQL()); err != nil {
		return fmt.Errorf("pgunique: create table %s: %w", s.table, err)
	}
	return nil
}

// Acquire takes key for jobID (see unique.Store): one statement, so two
// publishers racing for a key cannot both take it.
func (s *Store) Acquire(ctx context.Context, key, jobID string, ttl time.Duration) error {
	var holder string
	err := s.db.QueryRow(ctx, `INSERT INTO `+s.table+` AS u (key, job_id, expires_at) VALUES ($1, $2, now() + $3::interval)
ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at
WHERE u.expires_at <= now() OR u.job_id = excluded.job_id
RETURNING job_id`, key, jobID, ttl).Scan(&holder)
	if err == nil {
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("pgunique: take key %q: %w", key, err)
	}
	err = s.db.QueryRow(ctx, `SELECT job_id FROM `+s.table+` WHERE key = $1`, key).Scan(&holder)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("pgunique: read the holder of key %q: %w", key, err)
	}
	return &unique.DuplicateError{Key: key, JobID: holder}
}

// Release frees key if jobID holds it.
func (s *Store) Release(ctx context.Context, key, jobID string) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM `+s.table+` WHERE key = $1 AND job_id = $2`, key, jobID); err != nil {
		return fmt.Errorf("pgunique: release key %q: %w", key, err)
	}
	return nil
}

// Purge deletes the keys whose TTL has passed (they no longer hold, and
// are taken over by the next Acquire anyway) and returns how many.
func (s *Store) Purge(ctx context.Context) (int64, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM `+s.table+` WHERE expires_at <= now()`)
	if err != nil {
		return 0, fmt.Errorf("pgunique: purge %s: %w", s.table, err)
	}
	return tag.RowsAffected(), nil
}
