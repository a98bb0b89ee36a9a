package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/internal/pgmigrate"
)

// newMigrateCmd is the migrate command of a package with a versioned
// PostgreSQL schema (outbox, saga, batch): migrate applies it and returns
// the versions it applied.
func newMigrateCmd(g *globals, pkg, short, long, example string, migrate func(context.Context, pgmigrate.DB) ([]int, error)) *cobra.Command {
	var dbURL string
	cmd := &cobra.Command{
		Use:     "migrate --database-url URL",
		Short:   short,
		Long:    long,
		Example: example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			pool, err := openDatabase(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			applied, err := migrate(ctx, pool)
			if err != nil {
				return err
			}
			if g.json {
				if applied == nil {
					applied = []int{}
				}
				return writeJSON(g.stdout, struct {
					Version int   `json:"version"`
					Applied []int `json:"applied"`
				}{1, applied})
			}
			if len(applied) == 0 {
				fmt.Fprintf(g.stdout, "%s: up to date\n", pkg)
				return nil
			}
			for _, v := range applied {
				fmt.Fprintf(g.stdout, "%s: applied migration %d\n", pkg, v)
			}
			return nil
		},
	}
	databaseFlag(cmd, &dbURL)
	return cmd
}
