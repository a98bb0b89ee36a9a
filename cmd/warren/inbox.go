package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/inbox/pginbox"
)

func newInboxCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inbox",
		Short: "Manage the idempotent consumers' inbox in PostgreSQL",
	}
	cmd.AddCommand(newStoreMigrateCmd(g, storeMigration{
		noun:     "inbox",
		table:    pginbox.DefaultTable,
		what:     "the inbox table of package pginbox (a row per job each consumer processed)",
		example:  "  warren inbox migrate --database-url postgres://app@db/billing\n  warren inbox migrate --table billing.warren_inbox --print",
		sqlFor:   inboxSQL,
		applyFor: inboxApply,
	}))
	return cmd
}

func inboxStore(db pginbox.DB, table string) (*pginbox.Store, error) {
	return pginbox.New(db, pginbox.WithTable(table))
}

func inboxSQL(table string) (string, error) {
	s, err := inboxStore(nilDB{}, table)
	if err != nil {
		return "", err
	}
	return s.MigrationSQL(), nil
}

func inboxApply(ctx context.Context, conn *pgxpool.Pool, table string) error {
	s, err := inboxStore(conn, table)
	if err != nil {
		return err
	}
	return s.Migrate(ctx)
}

// storeMigration is what `warren NOUN migrate` creates.
type storeMigration struct {
	noun, table, what, example string
	sqlFor                     func(table string) (string, error)
	applyFor                   func(ctx context.Context, db *pgxpool.Pool, table string) error
}

func newStoreMigrateCmd(g *globals, m storeMigration) *cobra.Command {
	var dbURL, table string
	var print bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create " + m.what + ", if it does not exist",
		Long: "Create " + m.what + ", and what it needs, if they do not exist:\n" +
			"running it again changes nothing. --print writes the SQL instead, for\n" +
			"the service's own migrations.\n\n" +
			"--database-url falls back to " + envDatabaseURL + ", then " + envDatabaseURLFallback + ".",
		Example: m.example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if print {
				sql, err := m.sqlFor(table)
				if err != nil {
					return usageError("--table: %v", err)
				}
				fmt.Fprint(g.stdout, sql)
				return nil
			}
			if _, err := m.sqlFor(table); err != nil {
				return usageError("--table: %v", err)
			}
			ctx := cmd.Context()
			db, err := openDatabase(ctx, dbURL)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := m.applyFor(ctx, db, table); err != nil {
				return err
			}
			if g.json {
				return writeJSON(g.stdout, struct {
					Version int    `json:"version"`
					Store   string `json:"store"`
					Table   string `json:"table"`
				}{1, m.noun, table})
			}
			fmt.Fprintf(g.stdout, "%s table %s is in place\n", m.noun, table)
			return nil
		},
	}
	databaseFlag(cmd, &dbURL)
	cmd.Flags().StringVar(&table, "table", m.table, "table name, optionally schema.table")
	cmd.Flags().BoolVar(&print, "print", false, "print the SQL instead of running it")
	return cmd
}
