package main

import (
	"context"
	"fmt"
	"os"
	"regexp"

	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/saga"
)

// The trip, dispatch and billing services keep their state in
// PostgreSQL: trips and their booking sagas, the outbox through which the
// sagas' commands and the trip.booked events are sent, drivers and their
// reservations, charges made, and the inbox dispatch and billing consume
// through (each under its own consumer name). In production each service
// has a database of its own; here they share one schema, the example's.

const (
	// defaultDatabaseURL is the local test database (scripts/services.sh).
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	// defaultSchema is the example's schema.
	defaultSchema = "taxi"
)

// databaseURL returns --database-url, else WARREN_DATABASE_URL, else
// DATABASE_URL (the warren CLI's order), else the local database.
func databaseURL(flagValue string) string {
	for _, u := range []string{flagValue, os.Getenv("WARREN_DATABASE_URL"), os.Getenv("DATABASE_URL")} {
		if u != "" {
			return u
		}
	}
	return defaultDatabaseURL
}

// schemaName is what a schema may be called here: it is spliced into SQL.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// openDB connects to the database at url, creating schema if it is
// missing, with a pool whose connections work in schema (search_path).
func openDB(ctx context.Context, url, schema string) (*pgxpool.Pool, error) {
	if !schemaName.MatchString(schema) {
		return nil, fmt.Errorf("schema %q: want lower-case letters, digits and underscores", schema)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("the database URL: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	if _, err := db.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	return db, nil
}

// tablesSQL creates the services' own tables (and adds the columns an
// earlier version of the example did not have). A trip is 'booking'
// while its saga runs, then 'booked' or 'cancelled'. charges has no
// unique key on trip_id, on purpose: the inbox is what keeps billing from
// charging a trip twice, and a second charge would show here.
const tablesSQL = `
CREATE TABLE IF NOT EXISTS trips (
	id        text PRIMARY KEY,
	ride      text NOT NULL,
	rider     text NOT NULL,
	amount    int NOT NULL,
	booked_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE trips ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'booked';
ALTER TABLE trips ADD COLUMN IF NOT EXISTS driver text;
CREATE TABLE IF NOT EXISTS charges (
	trip_id    text NOT NULL,
	rider      text NOT NULL,
	amount     int NOT NULL,
	charged_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE charges ADD COLUMN IF NOT EXISTS receipt text;` + driversSQL

// migrate creates the tables, the outbox, the sagas' tables and the inbox, in the first
// schema of db's search_path. It is idempotent: the program runs it at
// every start.
func migrate(ctx context.Context, db *pgxpool.Pool) (*pginbox.Store, error) {
	if err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		// Two programs starting at once would race on CREATE TABLE IF
		// NOT EXISTS; the lock makes the second one wait.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.taxi'))"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, tablesSQL)
		return err
	}); err != nil {
		return nil, fmt.Errorf("create the tables: %w", err)
	}
	if _, err := saga.Migrate(ctx, db); err != nil { // the outbox's table too
		return nil, err
	}
	store, err := pginbox.New(db)
	if err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx); err != nil {
		return nil, err
	}
	return store, nil
}

// isNoRows reports whether err says that a query returned no row.
func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
