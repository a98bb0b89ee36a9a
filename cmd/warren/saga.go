package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/cmd/warren/internal/table"
	"github.com/warrenmq/warren/saga"
)

func newSagaCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "saga",
		Short: "Migrate and inspect orchestrated sagas in PostgreSQL",
		Long: `Orchestrated sagas (package saga): each saga's state and the commands it sent
live in the tables warren_saga and warren_saga_steps, written by the services'
coordinators. See docs/workflows.md.

The database is --database-url, else WARREN_DATABASE_URL, else DATABASE_URL.
The tables live in the first schema of the connection's search_path: add
search_path=SCHEMA to the URL to choose another.`,
	}
	cmd.AddCommand(newSagaMigrateCmd(g), newSagaLsCmd(g), newSagaShowCmd(g))
	return cmd
}

func newSagaMigrateCmd(g *globals) *cobra.Command {
	return newMigrateCmd(g, "saga", "Create or update the sagas' tables (and the outbox's)", `Create or update warren_saga and warren_saga_steps (and
warren_saga_migrations, which records the versions applied) in the first
schema of the search_path, after the outbox's table, through which the
sagas' commands are sent. Idempotent: run it at every deploy; concurrent
runs take turns.`, `  warren saga migrate --database-url postgres://app@db:5432/trips`, saga.Migrate)
}

func sagaStatusOK(s string) bool {
	switch saga.Status(s) {
	case "", saga.Running, saga.Compensating, saga.Completed, saga.Compensated, saga.Failed:
		return true
	}
	return false
}

func newSagaLsCmd(g *globals) *cobra.Command {
	var dbURL, status string
	var o saga.ListOptions
	cmd := &cobra.Command{
		Use:     "ls --database-url URL",
		Aliases: []string{"list"},
		Short:   "List sagas, newest first",
		Long: `List sagas, newest first: name, status, the step of the last command sent,
when each started and last changed, and its last error. --status failed lists
the sagas an operator must finish.`,
		Example: `  warren saga ls --database-url postgres://app@db:5432/trips --status failed
  warren saga ls --name trip.book --limit 20 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Limit < 1 || o.Limit > 100_000 {
				return usageError("--limit %d: give 1 to 100000", o.Limit)
			}
			if !sagaStatusOK(status) {
				return usageError("--status %q: give running, compensating, completed, compensated or failed", status)
			}
			o.Status = saga.Status(status)
			ctx := cmd.Context()
			pool, err := openDatabase(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			list, err := saga.List(ctx, pool, o)
			if err != nil {
				return err
			}
			if g.json {
				if list == nil {
					list = []saga.Instance{}
				}
				return writeJSON(g.stdout, struct {
					Version int             `json:"version"`
					Sagas   []saga.Instance `json:"sagas"`
				}{1, list})
			}
			tb := table.New("ID", "NAME", "STATUS", "STEP", "CREATED", "UPDATED", "LAST ERROR")
			for _, in := range list {
				tb.Row(table.Clean(in.ID), table.Clean(in.Name), string(in.Status), table.Clean(in.Step),
					in.CreatedAt.Format(time.RFC3339), in.UpdatedAt.Format(time.RFC3339), table.Truncate(table.Clean(in.LastError), 60))
			}
			if _, err := tb.WriteTo(g.stdout); err != nil {
				return err
			}
			if len(list) == 0 {
				fmt.Fprintln(g.stdout, "no sagas")
			}
			return nil
		},
	}
	databaseFlag(cmd, &dbURL)
	cmd.Flags().StringVar(&status, "status", "", "only sagas in this status: running, compensating, completed, compensated, failed")
	cmd.Flags().StringVar(&o.Name, "name", "", "only sagas of this name")
	cmd.Flags().IntVar(&o.Limit, "limit", 100, "at most this many sagas")
	return cmd
}

func newSagaShowCmd(g *globals) *cobra.Command {
	var dbURL string
	cmd := &cobra.Command{
		Use:   "show ID --database-url URL",
		Short: "Show a saga: its status, state and the commands it sent",
		Long: `Show one saga: its status, step, deadline and last error; every command and
compensation it sent, in order, with its job id, type, status, error and
times; and its state (JSON).`,
		Example: `  warren saga show trip-42 --database-url postgres://app@db:5432/trips
  warren saga show trip-42 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			pool, err := openDatabase(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			in, err := saga.Get(ctx, pool, args[0])
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(g.stdout, struct {
					Version int `json:"version"`
					saga.Instance
				}{1, in})
			}
			w := g.stdout
			deadline := "-"
			if in.Deadline != nil {
				deadline = in.Deadline.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "ID:         %s\n", table.Clean(in.ID))
			fmt.Fprintf(w, "Name:       %s\n", table.Clean(in.Name))
			fmt.Fprintf(w, "Status:     %s\n", in.Status)
			fmt.Fprintf(w, "Step:       %s\n", table.Clean(in.Step))
			fmt.Fprintf(w, "Deadline:   %s\n", deadline)
			fmt.Fprintf(w, "Version:    %d\n", in.Version)
			fmt.Fprintf(w, "Created:    %s\n", in.CreatedAt.Format(time.RFC3339))
			fmt.Fprintf(w, "Updated:    %s\n", in.UpdatedAt.Format(time.RFC3339))
			if in.LastError != "" {
				fmt.Fprintf(w, "Last error: %s\n", table.Clean(in.LastError))
			}
			fmt.Fprintln(w)
			tb := table.New("SEQ", "STEP", "KIND", "JOB ID", "TYPE", "STATUS", "SENT", "DONE", "ERROR").AlignRight(0)
			for _, c := range in.Commands {
				done := "-"
				if c.DoneAt != nil {
					done = c.DoneAt.Format(time.RFC3339)
				}
				tb.Row(strconv.Itoa(c.Seq), table.Clean(c.Step), c.Kind, c.JobID, table.Clean(c.JobType), c.Status,
					c.SentAt.Format(time.RFC3339), done, table.Truncate(table.Clean(c.Error), 60))
			}
			if _, err := tb.WriteTo(w); err != nil {
				return err
			}
			var state any
			b := []byte(in.State)
			if json.Unmarshal(in.State, &state) == nil {
				if pretty, err := json.MarshalIndent(state, "", "  "); err == nil {
					b = pretty
				}
			}
			fmt.Fprintf(w, "\nState:\n%s\n", b)
			return nil
		},
	}
	databaseFlag(cmd, &dbURL)
	return cmd
}
