package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/batch"
	"github.com/warrenmq/warren/cmd/warren/internal/table"
)

func newBatchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "batch",
		Short: "Migrate and inspect batches of jobs in PostgreSQL",
		Long: `Batches (package batch): jobs published together, and a callback job run once
all of them have ended. Each batch's counts live in warren_batch, each job's end
in warren_batch_jobs, written by the workers' batch finisher. See
docs/workflows.md.

The database is --database-url, else WARREN_DATABASE_URL, else DATABASE_URL.
The tables live in the first schema of the connection's search_path: add
search_path=SCHEMA to the URL to choose another.`,
	}
	cmd.AddCommand(newBatchMigrateCmd(g), newBatchLsCmd(g), newBatchShowCmd(g))
	return cmd
}

func newBatchMigrateCmd(g *globals) *cobra.Command {
	return newMigrateCmd(g, "batch", "Create or update the batch tables (and the outbox's)", `Create or update warren_batch and warren_batch_jobs (and
warren_batch_migrations, which records the versions applied) in the first
schema of the search_path, after the outbox's table, through which batches'
jobs and callbacks are sent. Idempotent: run it at every deploy; concurrent
runs take turns.`, `  warren batch migrate --database-url postgres://app@db:5432/reports`, batch.Migrate)
}

func newBatchLsCmd(g *globals) *cobra.Command {
	var dbURL string
	var finished, open bool
	var o batch.ListOptions
	cmd := &cobra.Command{
		Use:     "ls --database-url URL",
		Aliases: []string{"list"},
		Short:   "List batches, newest first",
		Long: `List batches, newest first: their jobs, how many succeeded, failed and are still
pending, their callback's type, and when each was created and finished.`,
		Example: `  warren batch ls --database-url postgres://app@db:5432/reports --open
  warren batch ls --finished --limit 20 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Limit < 1 || o.Limit > 100_000 {
				return usageError("--limit %d: give 1 to 100000", o.Limit)
			}
			if finished && open {
				return usageError("--finished and --open: give one of them, or neither for both")
			}
			if finished || open {
				o.Finished = &finished
			}
			ctx := cmd.Context()
			pool, err := openDatabase(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			list, err := batch.List(ctx, pool, o)
			if err != nil {
				return err
			}
			if g.json {
				if list == nil {
					list = []batch.Status{}
				}
				return writeJSON(g.stdout, struct {
					Version int            `json:"version"`
					Batches []batch.Status `json:"batches"`
				}{1, list})
			}
			tb := table.New("ID", "JOBS", "SUCCEEDED", "FAILED", "PENDING", "CALLBACK", "CREATED", "FINISHED").AlignRight(1, 2, 3, 4)
			for _, s := range list {
				tb.Row(table.Clean(s.ID), strconv.Itoa(s.Total), strconv.Itoa(s.Succeeded), strconv.Itoa(s.Failed), strconv.Itoa(s.Pending()),
					table.Clean(s.CallbackType), s.CreatedAt.Format(time.RFC3339), finishedAt(s))
			}
			if _, err := tb.WriteTo(g.stdout); err != nil {
				return err
			}
			if len(list) == 0 {
				fmt.Fprintln(g.stdout, "no batches")
			}
			return nil
		},
	}
	databaseFlag(cmd, &dbURL)
	cmd.Flags().BoolVar(&finished, "finished", false, "only finished batches (their callback written)")
	cmd.Flags().BoolVar(&open, "open", false, "only batches with jobs still pending")
	cmd.Flags().IntVar(&o.Limit, "limit", 100, "at most this many batches")
	return cmd
}

func finishedAt(s batch.Status) string {
	if s.FinishedAt == nil {
		return "-"
	}
	return s.FinishedAt.Format(time.RFC3339)
}

func newBatchShowCmd(g *globals) *cobra.Command {
	var dbURL string
	cmd := &cobra.Command{
		Use:   "show ID --database-url URL",
		Short: "Show a batch: its counts and the jobs that failed",
		Long: `Show one batch: its jobs, how many succeeded, failed and are pending, its
callback, when it was created and finished, and the jobs that failed for good
(at most 1000), with their class and error.`,
		Example: `  warren batch show 01a2b3c4-... --database-url postgres://app@db:5432/reports`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			pool, err := openDatabase(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			s, err := batch.Get(ctx, pool, args[0])
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(g.stdout, struct {
					Version int `json:"version"`
					batch.Status
				}{1, s})
			}
			w := g.stdout
			fmt.Fprintf(w, "ID:        %s\n", table.Clean(s.ID))
			fmt.Fprintf(w, "Jobs:      %d\n", s.Total)
			fmt.Fprintf(w, "Succeeded: %d\n", s.Succeeded)
			fmt.Fprintf(w, "Failed:    %d\n", s.Failed)
			fmt.Fprintf(w, "Pending:   %d\n", s.Pending())
			fmt.Fprintf(w, "Callback:  %s (job %s)\n", table.Clean(s.CallbackType), batch.CallbackID(s.ID))
			fmt.Fprintf(w, "Created:   %s\n", s.CreatedAt.Format(time.RFC3339))
			fmt.Fprintf(w, "Finished:  %s\n", finishedAt(s))
			if len(s.Failures) == 0 {
				return nil
			}
			fmt.Fprintln(w)
			tb := table.New("JOB ID", "TYPE", "CLASS", "ERROR")
			for _, f := range s.Failures {
				tb.Row(f.JobID, table.Clean(f.Type), table.Clean(f.Class), table.Truncate(table.Clean(f.Error), 80))
			}
			_, err = tb.WriteTo(w)
			return err
		},
	}
	databaseFlag(cmd, &dbURL)
	return cmd
}
