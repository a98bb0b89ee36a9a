package batch

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/warrenmq/warren/outbox"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is what Migrate needs of a database: *pgx.Conn and *pgxpool.Pool
// are ones.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Migration is one step of the batches' schema.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the batches' migrations in order, as Migrate applies
// them, for a project that applies its schema with its own tool (after the
// outbox's: outbox.Migrations).
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("batch: read the migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("batch: migration %s: its name must start with a version number and _", name)
		}
		b, err := migrations.ReadFile("migrations/" + name)
		if err != nil {
			return nil, fmt.Errorf("batch: read migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Migrate creates or updates the batches' tables, warren_batch and
// warren_batch_jobs, in the first schema of the connection's search_path,
// and returns the versions it applied (none
// when the schema was up to date). It is idempotent and safe to run from
// several processes at once: one transaction, under an advisory lock per
// schema, applies the missing versions and records each in
// warren_batch_migrations. A failed migration leaves nothing behind.
//
// It first migrates the outbox (outbox.Migrate), through which a batch's
// jobs and its callback are sent.
func Migrate(ctx context.Context, db DB) (applied []int, err error) {
	if _, err := outbox.Migrate(ctx, db); err != nil {
		return nil, err
	}
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("batch: migrate: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	// Concurrent CREATE TABLE IF NOT EXISTS can still collide; the lock
	// makes migrations of one schema take turns.
	if _, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('warren_batch_migrate:' || current_schema()))`); err != nil {
		return nil, fmt.Errorf("batch: migrate: lock: %w", err)
	}
	if _, err = tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS warren_batch_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("batch: migrate: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT version FROM warren_batch_migrations`)
	if err != nil {
		return nil, fmt.Errorf("batch: migrate: %w", err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("batch: migrate: %w", err)
	}
	have := map[int]bool{}
	for _, v := range done {
		have[int(v)] = true
	}
	for _, m := range all {
		if have[m.Version] {
			continue
		}
		if _, err = tx.Exec(ctx, m.SQL); err != nil {
			return nil, fmt.Errorf("batch: migration %s: %w", m.Name, err)
		}
		if _, err = tx.Exec(ctx, `INSERT INTO warren_batch_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return nil, fmt.Errorf("batch: migration %s: %w", m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	if err = tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("batch: migrate: commit: %w", err)
	}
	return applied, nil
}
