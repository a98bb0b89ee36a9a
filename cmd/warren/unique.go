package main

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/unique/pgunique"
)

func newUniqueCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "unique",
		Short: "Manage the unique jobs' keys in PostgreSQL",
	}
	cmd.AddCommand(newStoreMigrateCmd(g, storeMigration{
		noun:    "unique",
		table:   pgunique.DefaultTable,
		what:    "the keys table of package pgunique (a row per unique key held)",
		example: "  warren unique migrate --database-url postgres://app@db/billing\n  warren unique migrate --print",
		sqlFor: func(table string) (string, error) {
			s, err := pgunique.New(nilDB{}, pgunique.WithTable(table))
			if err != nil {
				return "", err
			}
			return s.MigrationSQL(), nil
		},
		applyFor: func(ctx context.Context, conn *pgxpool.Pool, table string) error {
			s, err := pgunique.New(conn, pgunique.WithTable(table))
			if err != nil {
				return err
			}
			return s.Migrate(ctx)
		},
	}))
	return cmd
}

// nilDB is a database that is never used: a store made to print its SQL.
type nilDB struct{}

func (nilDB) Begin(context.Context) (pgx.Tx, error) { panic("nilDB") }
func (nilDB) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	panic("nilDB")
}
func (nilDB) QueryRow(context.Context, string, ...any) pgx.Row { panic("nilDB") }
