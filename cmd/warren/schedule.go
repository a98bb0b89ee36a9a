package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/cmd/warren/internal/table"
	"github.com/warrenmq/warren/scheduler"
	"github.com/warrenmq/warren/topology"
)

func newScheduleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "List, pause and resume periodic jobs",
	}
	cmd.AddCommand(newScheduleLsCmd(g), newSchedulePauseCmd(g, true), newSchedulePauseCmd(g, false))
	return cmd
}

// scheduleRow is one line of schedule ls, and its --json entry.
type scheduleRow struct {
	Name     string   `json:"name"`
	Spec     string   `json:"spec"` // the cron expression, or "every DURATION"
	TimeZone string   `json:"time_zone"`
	JobType  string   `json:"job_type"`
	CatchUp  string   `json:"catch_up"`
	Next     []string `json:"next"` // RFC 3339, in the schedule's time zone
	// Paused and Watermark are nil when the broker could not tell.
	Paused *bool `json:"paused"`
	// Watermark: every tick up to it was fired or skipped; read from the
	// lease token, which the leading scheduler holds (nil then).
	Watermark *string `json:"watermark"`
}

func newScheduleLsCmd(g *globals) *cobra.Command {
	var path, lease string
	var n int
	cmd := &cobra.Command{
		Use:     "ls -f FILE",
		Aliases: []string{"list"},
		Short:   "List the topology's schedules with their next runs",
		Long: `List the schedules of the topology file: spec, time zone, job type,
catch-up window, the next runs, whether each is paused, and how far its
ticks are settled (fired or skipped).

The settled time comes from the lease token in the lease queue. While a
scheduler leads it holds the token, unacknowledged, and the column shows
"-"; it shows when the schedulers are stopped. The next runs are computed
from the file alone, without the broker.`,
		Example: `  warren schedule ls -f topology.yaml
  warren schedule ls -f topology.yaml --next 5 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := g.loadTopology(path)
			if err != nil {
				return err
			}
			if n < 1 || n > 100 {
				return usageError("--next %d: give 1 to 100", n)
			}
			rows, err := scheduleRows(t, n, time.Now())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			leaders, berr := g.scheduleBrokerState(ctx, rows, lease)
			if berr != nil {
				fmt.Fprintf(g.stderr, "warren: cannot read the paused state and the token from the broker (%s)\n", advised(berr))
			}
			if g.json {
				return writeJSON(g.stdout, struct {
					Version    int           `json:"version"`
					File       string        `json:"file"`
					LeaseQueue string        `json:"lease_queue"`
					Schedulers *int          `json:"schedulers"` // consumers of the lease queue; nil when unknown
					Schedules  []scheduleRow `json:"schedules"`
				}{1, path, lease, leaders, rows})
			}
			printScheduleRows(g, rows)
			switch {
			case leaders == nil:
			case *leaders == 0:
				fmt.Fprintf(g.stdout, "no scheduler runs (no consumer of %s)\n", lease)
			default:
				fmt.Fprintf(g.stdout, "%d scheduler(s) consume %s; one leads\n", *leaders, lease)
			}
			return nil
		},
	}
	topologyFlag(cmd, &path)
	cmd.Flags().IntVar(&n, "next", 3, "how many next runs to list")
	cmd.Flags().StringVar(&lease, "lease-queue", scheduler.DefaultLeaseQueue, "the schedulers' lease queue")
	return cmd
}

// scheduleRows computes each schedule's spec and next runs after now.
func scheduleRows(t *topology.Topology, n int, now time.Time) ([]scheduleRow, error) {
	rows := []scheduleRow{}
	for _, s := range scheduler.FromTopology(t) {
		next, err := s.Next(now, n)
		if err != nil {
			return nil, err
		}
		r := scheduleRow{Name: s.Name, Spec: s.Cron, TimeZone: s.TimeZone, JobType: s.Type, CatchUp: "skip", Next: []string{}}
		if s.Every > 0 {
			r.Spec, r.TimeZone = "every "+shortDuration(s.Every), "UTC"
		}
		if r.TimeZone == "" {
			r.TimeZone = "UTC"
		}
		if s.CatchUp > 0 {
			r.CatchUp = shortDuration(s.CatchUp)
		}
		for _, t := range next {
			r.Next = append(r.Next, t.Format(time.RFC3339))
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// scheduleBrokerState fills in the paused state and watermarks, and
// returns the lease queue's consumer count; an error leaves them nil.
func (g *globals) scheduleBrokerState(ctx context.Context, rows []scheduleRow, lease string) (*int, error) {
	conn, err := g.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	for i := range rows {
		p, err := scheduler.IsPaused(ctx, conn, rows[i].Name)
		if err != nil {
			return nil, err
		}
		rows[i].Paused = &p
	}
	d := broker.NewDeclarer(conn)
	defer d.Close(context.WithoutCancel(ctx))
	info, err := d.QueueInfo(ctx, lease)
	if errors.Is(err, broker.ErrNoQueue) {
		zero := 0
		return &zero, nil // no scheduler ever ran
	}
	if err != nil {
		return nil, err
	}
	consumers := info.Consumers
	marks, err := scheduler.Watermarks(ctx, conn, lease)
	if errors.Is(err, scheduler.ErrTokenHeld) {
		return &consumers, nil
	}
	if err != nil {
		return &consumers, err
	}
	for i := range rows {
		if m, ok := marks[rows[i].Name]; ok {
			s := m.UTC().Format(time.RFC3339Nano)
			rows[i].Watermark = &s
		}
	}
	return &consumers, nil
}

func printScheduleRows(g *globals, rows []scheduleRow) {
	tb := table.New("SCHEDULE", "SPEC", "TIME ZONE", "JOB TYPE", "CATCH-UP", "NEXT", "PAUSED", "SETTLED UP TO")
	for _, r := range rows {
		next := "-"
		if len(r.Next) > 0 {
			next = strings.Join(r.Next, ", ")
		}
		paused, mark := "?", "-"
		if r.Paused != nil {
			paused = map[bool]string{true: "yes", false: "no"}[*r.Paused]
		}
		if r.Watermark != nil {
			mark = *r.Watermark
		}
		tb.Row(r.Name, r.Spec, r.TimeZone, r.JobType, r.CatchUp, next, paused, mark)
	}
	tb.WriteTo(g.stdout)
	if len(rows) == 0 {
		fmt.Fprintln(g.stdout, "no schedules in the file (schedules:)")
	}
}

// newSchedulePauseCmd is warren schedule pause (pause) or resume.
func newSchedulePauseCmd(g *globals, pause bool) *cobra.Command {
	var path string
	use, short, long, example := "pause NAME", "Skip a schedule's ticks until it is resumed",
		`Pause a schedule for every scheduler: its ticks are skipped, not fired
later, until warren schedule resume. Jobs already published are not
touched.

The paused state is kept by the broker (the empty quorum queue
warren.paused-schedule.NAME); the leading scheduler reads it before each
tick, at most a second old. With -f, NAME must be a schedule of the file.`, "  warren schedule pause nightly-report"
	if !pause {
		use, short, long, example = "resume NAME", "Fire a paused schedule's ticks again",
			`Resume a paused schedule (see warren schedule pause): the ticks from now
on fire; those skipped while it was paused are not fired.`, "  warren schedule resume nightly-report"
	}
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long, Example: example,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if path != "" {
				t, err := g.loadTopology(path)
				if err != nil {
					return err
				}
				known := false
				for _, s := range t.Schedules {
					known = known || s.Name == name
				}
				if !known {
					return usageError("%s has no schedule %q; warren schedule ls -f %s lists them", path, name, path)
				}
			}
			ctx := cmd.Context()
			conn, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			was, err := scheduler.IsPaused(ctx, conn, name)
			if err != nil {
				return err
			}
			if err := scheduler.SetPaused(ctx, conn, name, pause); err != nil {
				return err
			}
			if g.json {
				return writeJSON(g.stdout, struct {
					Version  int    `json:"version"`
					Schedule string `json:"schedule"`
					Paused   bool   `json:"paused"`
					Changed  bool   `json:"changed"`
				}{1, name, pause, was != pause})
			}
			switch {
			case was == pause && pause:
				fmt.Fprintf(g.stdout, "%s: already paused\n", name)
			case was == pause:
				fmt.Fprintf(g.stdout, "%s: not paused\n", name)
			case pause:
				fmt.Fprintf(g.stdout, "%s: paused: its ticks are skipped (warren schedule resume %s)\n", name, name)
			default:
				fmt.Fprintf(g.stdout, "%s: resumed\n", name)
			}
			return nil
		},
	}
	topologyFlag(cmd, &path)
	return cmd
}

// shortDuration writes d without zero units: "1h", not "1h0m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
