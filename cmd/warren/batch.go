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
		Long: `Batches of jobs with a callback (package batch): each batch's counts and
callback live in warren_batch, and the outcome of each of its jobs that ended
in warren_batch_jobs, written by the worker pools' batch.Finisher. See
docs/workflows.md.

The database is --database-url, else WARREN_DATABASE_URL, else DATABASE_URL.
The tables live in the first schema of the connection's search_path: add
search_path=SCHEMA to the URL to choose another.`,
	}
	cmd.AddCommand(newBatchMigrateCmd(g), newBatchLsCmd(g), newBatchShowCmd(g))
	return cmd
}

func newBatchMigrateCmd(g *globals) *cobra.Command {
	var dbURL string
	cmd := &cobra.Command{
		Use:   "migrate --database-url URL",
		Short: "Create or update the batches' tables (and the outbox's)",
		Long: `Create or update warren_batch and warren_batch_jobs (and
warren_batch_migrations, which records the versions applied) in the first
schema of the search_path, after the outbox's table, through which a batch's
jobs and its callback are sent. Idempotent: run it at every deploy;
concurrent runs take turns.`,
		Example: `  warren batch migrate --database-url postgres://app@db:5432/imports`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			pool, err := openDatabase(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			applied, err := batch.Migrate(ctx, pool)
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
				fmt.Fprintln(g.stdout, "batch: up to date")
				return nil
			}
			for _, v := range applied {
				fmt.Fprintf(g.stdout, "batch: applied migration %d\n", v)
			}
			return nil
		},
	}
	databaseFlag(cmd, &dbURL)
	return cmd
}

func newBatchLsCmd(g *globals) *cobra.Command {
	var dbURL, status string
	var o batch.ListOptions
	cmd := &cobra.Command{
		Use:     "ls --database-url URL",
		Aliases: []string{"list"},
		Short:   "List batches, newest first",
		Long: `List batches, newest first: id (the callback's job id), status (running or
finished), jobs in all, succeeded and failed so far, the callback's type, and
when each was created and finished. --status running lists the batches still
waiting for jobs.`,
		Example: `  warren batch ls --database-url postgres://app@db:5432/imports --status running
  warren batch ls --limit 20 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Limit < 1 || o.Limit > 100_000 {
				return usageError("--limit %d: give 1 to 100000", o.Limit)
			}
			switch batch.Status(status) {
			case "", batch.Running, batch.Finished:
			default:
				return usageError("--status %q: give running or finished", status)
			}
			o.Status = batch.Status(status)
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
					list = []batch.Batch{}
				}
				return writeJSON(g.stdout, struct {
					Version int           `json:"version"`
					Batches []batch.Batch `json:"batches"`
				}{1, list})
			}
			tb := table.New("ID", "STATUS", "JOBS", "SUCCEEDED", "FAILED", "CALLBACK", "CREATED", "FINISHED").AlignRight(2, 3, 4)
			for _, b := range list {
				tb.Row(table.Clean(b.ID), string(b.Status), strconv.Itoa(b.Total), strconv.Itoa(b.Succeeded), strconv.Itoa(b.Failed),
					table.Clean(b.CallbackType), b.CreatedAt.Format(time.RFC3339), finishedAt(b))
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
	cmd.Flags().StringVar(&status, "status", "", "only batches in this status: running, finished")
	cmd.Flags().IntVar(&o.Limit, "limit", 100, "at most this many batches")
	return cmd
}

func finishedAt(b batch.Batch) string {
	if b.FinishedAt == nil {
		return "-"
	}
	return b.FinishedAt.Format(time.RFC3339)
}

func newBatchShowCmd(g *globals) *cobra.Command {
	var dbURL string
	cmd := &cobra.Command{
		Use:   "show ID --database-url URL",
		Short: "Show a batch: its counts and its failed jobs",
		Long: `Show one batch: its status, its counts (jobs in all, ended, succeeded,
failed), its callback's type, when it was created and finished, and every job
that failed for good so far, in the order they ended, with its id, type, how it
ended (dead-lettered or rejected), class and error.`,
		Example: `  warren batch show 0193a5c2-7b1e-7c3d-9f00-2a4b6c8d0e1f --database-url postgres://app@db:5432/imports
  warren batch show import-42 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			pool, err := openDatabase(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			b, err := batch.Get(ctx, pool, args[0])
			if err != nil {
				return err
			}
			if g.json {
				if b.Failures == nil {
					b.Failures = []batch.JobFailure{}
				}
				return writeJSON(g.stdout, struct {
					Version int `json:"version"`
					batch.Batch
					Failures []batch.JobFailure `json:"failures"`
				}{1, b, b.Failures})
			}
			w := g.stdout
			fmt.Fprintf(w, "ID:        %s\n", table.Clean(b.ID))
			fmt.Fprintf(w, "Status:    %s\n", b.Status)
			fmt.Fprintf(w, "Jobs:      %d (%d ended: %d succeeded, %d failed)\n", b.Total, b.Succeeded+b.Failed, b.Succeeded, b.Failed)
			fmt.Fprintf(w, "Callback:  %s\n", table.Clean(b.CallbackType))
			fmt.Fprintf(w, "Created:   %s\n", b.CreatedAt.Format(time.RFC3339))
			fmt.Fprintf(w, "Finished:  %s\n", finishedAt(b))
			if len(b.Failures) == 0 {
				return nil
			}
			fmt.Fprintln(w)
			tb := table.New("JOB ID", "TYPE", "STATUS", "CLASS", "ERROR")
			for _, f := range b.Failures {
				tb.Row(table.Clean(f.JobID), table.Clean(f.Type), f.Status, table.Clean(f.Class), table.Truncate(table.Clean(f.Error), 60))
			}
			_, err = tb.WriteTo(w)
			return err
		},
	}
	databaseFlag(cmd, &dbURL)
	return cmd
}
