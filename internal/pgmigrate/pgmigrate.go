// Package pgmigrate applies the versioned PostgreSQL schemas of warren's
// packages (outbox, saga, batch): each package's migrations are SQL files
// named "NNNN_name.sql", applied in order, once each, recorded in a table
// of the package's own.
package pgmigrate

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DB is what Apply needs of a database: *pgx.Conn and *pgxpool.Pool are
// ones.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Migration is one step of a package's schema.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Set is one package's schema.
type Set struct {
	// Package names it: errors start with it, the versions applied are
	// recorded in warren_<Package>_migrations.
	Package string
	// FS holds the migrations, in Dir.
	FS  fs.FS
	Dir string
}

// Migrations returns the set's migrations in order.
func (s Set) Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(s.FS, s.Dir)
	if err != nil {
		return nil, fmt.Errorf("%s: read the migrations: %w", s.Package, err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("%s: migration %s: its name must start with a version number and _", s.Package, name)
		}
		b, err := fs.ReadFile(s.FS, path.Join(s.Dir, name))
		if err != nil {
			return nil, fmt.Errorf("%s: read migration %s: %w", s.Package, name, err)
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Apply creates or updates the set's tables in the first schema of the
// connection's search_path, and returns the versions it applied (none
// when the schema was up to date). It is idempotent and safe to run from
// several processes at once: one transaction, under an advisory lock per
// package and schema, applies the missing versions and records each. A
// failed migration leaves nothing behind.
func (s Set) Apply(ctx context.Context, db DB) (applied []int, err error) {
	all, err := s.Migrations()
	if err != nil {
		return nil, err
	}
	table := pgx.Identifier{"warren_" + s.Package + "_migrations"}.Sanitize()
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: migrate: %w", s.Package, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	// Concurrent CREATE TABLE IF NOT EXISTS can still collide; the lock
	// makes migrations of one schema take turns.
	if _, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1 || current_schema()))`, "warren_"+s.Package+"_migrate:"); err != nil {
		return nil, fmt.Errorf("%s: migrate: lock: %w", s.Package, err)
	}
	if _, err = tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("%s: migrate: %w", s.Package, err)
	}
	rows, err := tx.Query(ctx, `SELECT version FROM `+table)
	if err != nil {
		return nil, fmt.Errorf("%s: migrate: %w", s.Package, err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("%s: migrate: %w", s.Package, err)
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
			return nil, fmt.Errorf("%s: migration %s: %w", s.Package, m.Name, err)
		}
		if _, err = tx.Exec(ctx, `INSERT INTO `+table+` (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return nil, fmt.Errorf("%s: migration %s: %w", s.Package, m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	if err = tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("%s: migrate: commit: %w", s.Package, err)
	}
	return applied, nil
}
