package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/cmd/warren/internal/table"
	"github.com/warrenmq/warren/deadletter"
	"github.com/warrenmq/warren/internal/jsonwire"
)

func newDLQCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, replay, purge, export and import the jobs of dead-letter queues",
		Long: `Work with the jobs parked in a dead-letter queue (a work queue's is <queue>.dlq):
list and show what failed, why, and where it came from; replay them to run
again; purge them; export them to a file and import them back.

list and show remove nothing: the jobs are read without acks and go back
to the queue. replay takes a job out only once its target has confirmed
it; purge deletes jobs for good (with --export, each only once it is written
to the file).`,
	}
	cmd.AddCommand(newDLQListCmd(g), newDLQShowCmd(g), newDLQReplayCmd(g), newDLQPurgeCmd(g), newDLQExportCmd(g), newDLQImportCmd(g))
	return cmd
}

// dlqFilterFlags are the filters every dlq command shares.
type dlqFilterFlags struct {
	types, classes, ids  []string
	errPattern           string
	olderThan, newerThan time.Duration
}

func (f *dlqFilterFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.types, "type", nil, "only jobs of these types (repeatable, comma-separated)")
	fl.StringSliceVar(&f.classes, "class", nil, `only these error classes, e.g. permanent, or rabbitmq:expired for the broker's own (repeatable)`)
	fl.StringSliceVar(&f.ids, "id", nil, "only these job ids (repeatable)")
	fl.StringVar(&f.errPattern, "error", "", "only jobs whose error matches this regular expression (or substring)")
	fl.DurationVar(&f.olderThan, "older-than", 0, "only jobs that last failed at least this long ago")
	fl.DurationVar(&f.newerThan, "newer-than", 0, "only jobs that last failed at most this long ago")
}

// empty says whether no filter was given: every job matches.
func (f *dlqFilterFlags) empty() bool {
	return len(f.types) == 0 && len(f.classes) == 0 && len(f.ids) == 0 && f.errPattern == "" && f.olderThan == 0 && f.newerThan == 0
}

func (f *dlqFilterFlags) filter() (deadletter.Filter, error) {
	re, err := deadletter.ErrorPattern(f.errPattern)
	if err != nil {
		return deadletter.Filter{}, fmt.Errorf("--error: %w", err)
	}
	if f.olderThan < 0 || f.newerThan < 0 {
		return deadletter.Filter{}, errors.New("--older-than and --newer-than must be positive durations, e.g. 2h")
	}
	return deadletter.Filter{Types: f.types, Classes: f.classes, IDs: f.ids, Error: re, OlderThan: f.olderThan, NewerThan: f.newerThan}, nil
}

// dlqJob is one job in dlq's --json output.
type dlqJob struct {
	ID             string      `json:"id"`
	Type           string      `json:"type"`
	Attempts       int         `json:"attempts"`
	DeadLetteredBy string      `json:"dead_lettered_by,omitempty"`
	Class          string      `json:"class,omitempty"`
	Error          string      `json:"error,omitempty"`
	FirstFailedAt  *time.Time  `json:"first_failed_at,omitempty"`
	LastFailedAt   *time.Time  `json:"last_failed_at,omitempty"`
	Origin         originJSON  `json:"origin"`
	PublishedAt    *time.Time  `json:"published_at,omitempty"`
	ReplayCount    int         `json:"replay_count,omitempty"`
	Payload        any         `json:"payload"`
	Deaths         []deathJSON `json:"x_death,omitempty"`
}

// originJSON is a broker.Origin in --json output.
type originJSON struct {
	Exchange   string `json:"exchange"`
	RoutingKey string `json:"routing_key"`
	Queue      string `json:"queue"`
}

// deathJSON is one x-death entry (a broker.Death) in --json output.
type deathJSON struct {
	Reason      string    `json:"reason"`
	Queue       string    `json:"queue"`
	Exchange    string    `json:"exchange"`
	RoutingKeys []string  `json:"routing_keys"`
	Count       int64     `json:"count"`
	Time        time.Time `json:"time"`
}

// groupJSON is a deadletter.Group in --json output.
type groupJSON struct {
	Key   string   `json:"key"`
	Count int      `json:"count"`
	Types []string `json:"types"`
}

func jobJSON(e deadletter.Entry) dlqJob {
	env := e.Envelope
	t := func(v time.Time) *time.Time {
		if v.IsZero() {
			return nil
		}
		return &v
	}
	var deaths []deathJSON
	for _, d := range e.Deaths {
		deaths = append(deaths, deathJSON{d.Reason, d.Queue, d.Exchange, d.RoutingKeys, d.Count, d.Time})
	}
	return dlqJob{
		ID: env.ID, Type: env.Type, Attempts: e.Attempts, DeadLetteredBy: e.By, Class: e.Class, Error: e.Error,
		FirstFailedAt: t(e.FirstFailed), LastFailedAt: t(e.LastFailed),
		Origin:      originJSON{e.Origin.Exchange, e.Origin.RoutingKey, e.Origin.Queue},
		PublishedAt: t(env.Timestamp), ReplayCount: env.ReplayCount, Payload: payloadValue(env), Deaths: deaths,
	}
}

// payloadValue returns env's payload as plain JSON values.
func payloadValue(env *broker.Envelope) any { return jsonwire.Payload(env.Body, env.Decode) }

// shorten fits s on one line of at most n terminal cells.
func shorten(s string, n int) string {
	return table.Truncate(strings.Join(strings.Fields(s), " "), n)
}

func newDLQListCmd(g *globals) *cobra.Command {
	var (
		ff      dlqFilterFlags
		limit   int
		groupBy string
		scan    int
		all     bool
	)
	cmd := &cobra.Command{
		Use:   "list QUEUE",
		Short: "List the jobs in a dead-letter queue, or count them by error, type or class",
		Long: `List the jobs in a dead-letter queue: id, type, attempts, error class and text,
when it last failed, where it came from, and its payload, shortened. Jobs
dead-lettered by warren's workers carry warren's headers; jobs RabbitMQ
dead-lettered itself (rejected, expired, maxlen, delivery_limit) are read from
x-death, with classes rabbitmq:<reason>.

Filters narrow the list; --group-by error|type|class counts the matching jobs
per group instead, for the "what failed and why" question. Reading removes
nothing.

It reads at most 65,535 jobs (--scan N reads at most N), and says when it
stopped before the end of the queue; --all reads every job the queue held
when it started, holding them all unacked until it is done.`,
		Example: `  warren dlq list default.dlq --group-by error
  warren dlq list default.dlq --class permanent --type email.send --limit 20
  warren dlq list default.dlq --error 'timeout|reset' --newer-than 1h --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			queue := args[0]
			filter, err := ff.filter()
			if err != nil {
				return err
			}
			var grouper *deadletter.Grouper
			if groupBy != "" {
				if grouper, err = deadletter.NewGrouper(deadletter.GroupBy(groupBy)); err != nil {
					return fmt.Errorf("--group-by: %w", err)
				}
			}
			if limit < 0 {
				return usageError("--limit %d: must be 0 (no limit) or more", limit)
			}
			if scan < 1 {
				return usageError("--scan %d: must be 1 or more (--all reads every job)", scan)
			}
			if all && cmd.Flags().Changed("scan") {
				return usageError("--all and --scan cannot be combined")
			}
			max := scan
			if all {
				max = math.MaxInt
			}
			ctx := cmd.Context()
			conn, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			now := time.Now()
			var matched []deadletter.Entry
			count := 0
			bs, err := deadletter.BrowseWith(ctx, conn, queue, deadletter.BrowseOptions{Max: max}, func(e deadletter.Entry) bool {
				if !filter.Match(e, now) {
					return true
				}
				count++
				if grouper != nil {
					grouper.Add(e)
				} else if limit == 0 || len(matched) < limit {
					matched = append(matched, e)
				}
				return true
			})
			if err != nil {
				return err
			}
			if bs.Capped && !g.json {
				fmt.Fprintf(g.stderr, "warren: stopped after %d of the %d job(s) in %s: the counts cover those read; --scan N or --all reads more\n", bs.Seen, bs.Total, queue)
			}
			if grouper != nil {
				return printGroups(g, queue, groupBy, bs, count, grouper.Groups())
			}
			return printEntries(g, queue, bs, count, matched, now)
		},
	}
	ff.add(cmd)
	cmd.Flags().IntVar(&limit, "limit", 100, "list at most this many jobs (0: all); counts cover every job read")
	cmd.Flags().IntVar(&scan, "scan", deadletter.DefaultMax, "read at most this many jobs of the queue")
	cmd.Flags().BoolVar(&all, "all", false, "read every job of the queue, beyond 65,535 (each is held unacked until the end)")
	cmd.Flags().StringVar(&groupBy, "group-by", "", "count jobs per error, type or class instead of listing them")
	return cmd
}

func printGroups(g *globals, queue, by string, bs deadletter.BrowseSummary, matched int, groups []deadletter.Group) error {
	if g.json {
		out := make([]groupJSON, len(groups))
		for i, gr := range groups {
			out[i] = groupJSON{gr.Key, gr.Count, gr.Types}
		}
		return writeJSON(g.stdout, struct {
			Version int         `json:"version"`
			Queue   string      `json:"queue"`
			Total   int         `json:"total"`
			Scanned int         `json:"scanned"`
			Capped  bool        `json:"capped"`
			Matched int         `json:"matched"`
			GroupBy string      `json:"group_by"`
			Groups  []groupJSON `json:"groups"`
		}{1, queue, bs.Total, bs.Seen, bs.Capped, matched, by, out})
	}
	fmt.Fprintf(g.stdout, "%s: %d job(s), %d matching, by %s\n", queue, bs.Seen, matched, by)
	if len(groups) == 0 {
		return nil
	}
	tb := table.New("COUNT", strings.ToUpper(by), "JOB TYPES").AlignRight(0)
	for _, gr := range groups {
		tb.Row(strconv.Itoa(gr.Count), shorten(gr.Key, 80), strings.Join(gr.Types, ","))
	}
	_, err := tb.WriteTo(g.stdout)
	return err
}

func printEntries(g *globals, queue string, bs deadletter.BrowseSummary, matched int, entries []deadletter.Entry, now time.Time) error {
	if g.json {
		jobs := make([]dlqJob, len(entries))
		for i, e := range entries {
			jobs[i] = jobJSON(e)
		}
		return writeJSON(g.stdout, struct {
			Version int      `json:"version"`
			Queue   string   `json:"queue"`
			Total   int      `json:"total"`
			Scanned int      `json:"scanned"`
			Capped  bool     `json:"capped"`
			Matched int      `json:"matched"`
			Jobs    []dlqJob `json:"jobs"`
		}{1, queue, bs.Total, bs.Seen, bs.Capped, matched, jobs})
	}
	fmt.Fprintf(g.stdout, "%s: %d job(s), %d matching", queue, bs.Seen, matched)
	if len(entries) < matched {
		fmt.Fprintf(g.stdout, ", %d shown (--limit)", len(entries))
	}
	fmt.Fprintln(g.stdout)
	if len(entries) == 0 {
		return nil
	}
	tb := table.New("ID", "TYPE", "ATT", "CLASS", "ERROR", "FAILED", "ORIGIN", "PAYLOAD").AlignRight(2)
	for _, e := range entries {
		failed := "-"
		if !e.LastFailed.IsZero() {
			failed = now.Sub(e.LastFailed).Round(time.Second).String() + " ago"
		}
		payload, _ := json.Marshal(payloadValue(e.Envelope))
		tb.Row(e.Envelope.ID, e.Envelope.Type, strconv.Itoa(e.Attempts), e.Class,
			shorten(e.FirstLine(), 50), failed, e.Origin.Queue, shorten(string(payload), 40))
	}
	_, err := tb.WriteTo(g.stdout)
	return err
}

func newDLQShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show QUEUE ID",
		Short: "Show one job of a dead-letter queue in full: properties, headers, payload",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			queue, id := args[0], args[1]
			ctx := cmd.Context() // --timeout bounds it (root.go, prepare)
			conn, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			var found *deadletter.Entry
			if _, err := deadletter.Browse(ctx, conn, queue, func(e deadletter.Entry) bool {
				if e.Envelope.ID == id {
					found = &e
					return false
				}
				return true
			}); err != nil {
				return err
			}
			if found == nil {
				return fmt.Errorf("no job %s in %s; list its jobs with: warren dlq list %s", id, queue, queue)
			}
			return printEntry(g, *found)
		},
	}
}

func printEntry(g *globals, e deadletter.Entry) error {
	env := e.Envelope
	headers := map[string]any{}
	for k, v := range env.Message().Headers {
		headers[k] = jsonwire.Plain(v)
	}
	if g.json {
		return writeJSON(g.stdout, struct {
			Version int `json:"version"`
			dlqJob
			Properties map[string]any `json:"properties"`
			Headers    map[string]any `json:"headers"`
		}{1, jobJSON(e), properties(env), headers})
	}
	fmt.Fprintf(g.stdout, "job %s (type %s)\n", env.ID, env.Type)
	if e.Class != "" {
		fmt.Fprintf(g.stdout, "failed: %s, attempt %d, by %s\n", e.Class, e.Attempts, e.By)
	}
	fmt.Fprintln(g.stdout, "\nproperties:")
	props := properties(env)
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(g.stdout, "  %s: %v\n", k, props[k])
	}
	fmt.Fprintln(g.stdout, "\nheaders:")
	keys = keys[:0]
	for k := range headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(g.stdout, "  %s: %v\n", k, headers[k])
	}
	fmt.Fprintln(g.stdout, "\npayload:")
	return writeJSON(g.stdout, payloadValue(env))
}

func properties(env *broker.Envelope) map[string]any {
	p := map[string]any{"message_id": env.ID, "type": env.Type, "content_type": env.ContentType}
	for k, v := range map[string]string{"app_id": env.AppID, "correlation_id": env.CorrelationID, "reply_to": env.ReplyTo, "expiration": env.Expiration} {
		if v != "" {
			p[k] = v
		}
	}
	if !env.Timestamp.IsZero() {
		p["timestamp"] = env.Timestamp.Format(time.RFC3339)
	}
	if env.Priority > 0 {
		p["priority"] = env.Priority
	}
	return p
}

func newDLQReplayCmd(g *globals) *cobra.Command {
	var (
		ff                dlqFilterFlags
		to, exchange, key string
		dryRun            bool
		limit             int
		rate              float64
		yes               bool
	)
	cmd := &cobra.Command{
		Use:         "replay QUEUE",
		Annotations: map[string]string{noDeadline: "yes"}, // its work grows with what it reads
		Short:       "Move matching jobs of a dead-letter queue back to their origin, to run again",
		Long: `Move the jobs of a dead-letter queue that match the filters back to the
exchange and routing key they failed from (or --to a queue, or --exchange with
--key), with their attempt count reset, their replay count plus one, and
their id and failure history kept.

Each job is published with a confirm, as mandatory, before it is removed from
the dead-letter queue: interrupted (Ctrl-C, kill -9), a replay loses nothing;
at worst a job is both replayed and still in the dead-letter queue. The run
reads no more than the jobs the queue held when it started, so a job that
fails again meanwhile is not replayed twice. Jobs that do not match stay, in
their order as far as RabbitMQ allows. --dry-run says what would move.`,
		Example: `  warren dlq replay default.dlq --class error --error 'connection reset' --dry-run
  warren dlq replay default.dlq --type email.send --rate 50
  warren dlq replay default.dlq --id 0193… --to default`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			queue := args[0]
			filter, err := ff.filter()
			if err != nil {
				return err
			}
			opts := deadletter.ReplayOptions{Filter: filter, DryRun: dryRun, Limit: limit, Rate: rate}
			switch {
			case to != "" && cmd.Flags().Changed("exchange"):
				return errors.New("--to cannot be combined with --exchange/--key")
			case to != "":
				opts.To = deadletter.ToQueue(to)
			case cmd.Flags().Changed("exchange"):
				opts.To = deadletter.Target{Exchange: exchange, RoutingKey: key, Set: true}
			}
			if limit < 0 {
				return usageError("--limit %d: must be 0 (all that match) or more", limit)
			}
			if cmd.Flags().Changed("rate") && !(rate > 0) { // NaN too
				return usageError("--rate %v: must be more than 0 jobs a second (leave it out for no limit)", rate)
			}
			ctx := cmd.Context()
			conn, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			if !dryRun && !yes && ff.empty() {
				if err := confirmReplayAll(ctx, g, conn, queue); err != nil {
					return err
				}
			}
			pub, err := broker.NewSender(conn, broker.WithAppID("warren-cli"))
			if err != nil {
				return err
			}
			defer pub.Close(context.WithoutCancel(ctx))
			if !g.json && isTerminal(g.stderr) {
				bar := newProgress(g.stderr, "replaying "+queue)
				opts.Progress = bar.update
				defer bar.finish()
			}
			s, err := deadletter.Replay(ctx, conn, pub, queue, opts)
			if perr := printReplay(g, queue, dryRun, s); perr != nil && err == nil {
				err = perr
			}
			if err != nil {
				return err
			}
			if len(s.Failed) > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	ff.add(cmd)
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "replay to this queue (through the default exchange) instead of each job's origin")
	f.StringVar(&exchange, "exchange", "", "replay to this exchange instead of each job's origin")
	f.StringVar(&key, "key", "", "routing key, with --exchange")
	f.BoolVar(&dryRun, "dry-run", false, "say what would move; move nothing")
	f.IntVar(&limit, "limit", 0, "move at most this many jobs (0: all that match)")
	f.Float64Var(&rate, "rate", 0, "move at most this many jobs per second, more than 0 (default: no limit)")
	f.BoolVar(&yes, "yes", false, "with no filter, move every job without asking")
	return cmd
}

// confirmReplayAll asks before a replay without a filter moves every job
// of queue.
func confirmReplayAll(ctx context.Context, g *globals, conn *broker.Conn, queue string) error {
	d := broker.NewDeclarer(conn)
	info, err := d.QueueInfo(ctx, queue)
	d.Close(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	return g.confirm(fmt.Sprintf("no filter: move all %d job(s) of %s?", info.Messages, queue),
		"no filter: this moves every job; pass --yes to confirm, or narrow it with a filter (--type, --class, --id, --error, --older-than, --newer-than)")
}

func printReplay(g *globals, queue string, dryRun bool, s deadletter.Summary) error {
	if g.json {
		type moved struct {
			ID         string `json:"id"`
			Type       string `json:"type"`
			Exchange   string `json:"exchange"`
			RoutingKey string `json:"routing_key"`
		}
		type failed struct {
			ID    string `json:"id"`
			Error string `json:"error"`
		}
		out := struct {
			Version int      `json:"version"`
			Queue   string   `json:"queue"`
			DryRun  bool     `json:"dry_run"`
			Total   int      `json:"total"`
			Moved   []moved  `json:"moved"`
			Skipped int      `json:"skipped"`
			Failed  []failed `json:"failed"`
		}{Version: 1, Queue: queue, DryRun: dryRun, Total: s.Total, Skipped: s.Skipped, Moved: []moved{}, Failed: []failed{}}
		for _, m := range s.Moved {
			out.Moved = append(out.Moved, moved{m.Entry.Envelope.ID, m.Entry.Envelope.Type, m.Exchange, m.RoutingKey})
		}
		for _, f := range s.Failed {
			out.Failed = append(out.Failed, failed{f.Entry.Envelope.ID, advised(f.Err)})
		}
		return writeJSON(g.stdout, out)
	}
	verb := "moved"
	if dryRun {
		verb = "would move"
		for _, m := range s.Moved {
			fmt.Fprintf(g.stdout, "would move %s (%s) to exchange %q with key %q\n", m.Entry.Envelope.ID, m.Entry.Envelope.Type, m.Exchange, m.RoutingKey)
		}
	}
	for _, f := range s.Failed {
		fmt.Fprintf(g.stderr, "not moved: %s (%s): %s\n", f.Entry.Envelope.ID, f.Entry.Envelope.Type, advised(f.Err))
	}
	fmt.Fprintf(g.stdout, "%s: %d job(s) at the start; %s %d, skipped %d, failed %d\n", queue, s.Total, verb, len(s.Moved), s.Skipped, len(s.Failed))
	return nil
}

func newDLQPurgeCmd(g *globals) *cobra.Command {
	var (
		ff     dlqFilterFlags
		yes    bool
		export string
	)
	cmd := &cobra.Command{
		Use:         "purge QUEUE",
		Annotations: map[string]string{noDeadline: "yes"}, // its work grows with what it reads
		Short:       "Delete the jobs of a dead-letter queue that match the filters, for good",
		Long: `Delete jobs from a dead-letter queue for good: those matching the filters (the
same as dlq list's), or every job. On a terminal it shows how many jobs
match and asks first; elsewhere pass --yes. List them first with
warren dlq list and the same filters.

--export FILE keeps the evidence: each job is written to FILE (a new file, in
the format of warren dlq export) and synced to disk before it is deleted; a
job that cannot be written is not deleted. warren dlq import FILE puts them
back.`,
		Example: `  warren dlq purge default.dlq --class decode --older-than 168h
  warren dlq purge default.dlq --type legacy.job --yes --export legacy-jobs.ndjson`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			queue := args[0]
			filter, err := ff.filter()
			if err != nil {
				return err
			}
			if export != "" {
				if err := checkExport(export); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			conn, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			if !yes {
				if !isTerminal(g.stdin) || !isTerminal(g.stderr) {
					return usageError("purge deletes jobs for good: pass --yes to confirm (no terminal to ask on)")
				}
				now, matching := time.Now(), 0
				if _, err := deadletter.Browse(ctx, conn, queue, func(e deadletter.Entry) bool {
					if filter.Match(e, now) {
						matching++
					}
					return true
				}); err != nil {
					return err
				}
				if err := g.confirm(fmt.Sprintf("delete %d job(s) from %s for good?", matching, queue),
					"purge deletes jobs for good: pass --yes to confirm"); err != nil {
					return err
				}
			}
			var deleted, kept int
			if export == "" {
				deleted, kept, err = deadletter.Purge(ctx, conn, queue, filter, nil)
			} else {
				f, ferr := createExport(export)
				if ferr != nil {
					return ferr
				}
				deleted, kept, err = deadletter.PurgeRecords(ctx, conn, queue, filter, purgeExporter(f))
				if cerr := f.Close(); cerr != nil && err == nil {
					err = fmt.Errorf("close %s: %w", export, cerr)
				}
				switch {
				case err != nil && deleted == 0:
					os.Remove(export) // it holds nothing
					err = fmt.Errorf("%w; nothing deleted", err)
				case err != nil:
					err = fmt.Errorf("%w (the %d job(s) deleted are in %s)", err, deleted, export)
				}
			}
			if g.json {
				if werr := writeJSON(g.stdout, struct {
					Version int    `json:"version"`
					Queue   string `json:"queue"`
					Deleted int    `json:"deleted"`
					Kept    int    `json:"kept"`
					Export  string `json:"export,omitempty"`
				}{1, queue, deleted, kept, export}); werr != nil && err == nil {
					err = werr
				}
			} else if export != "" {
				fmt.Fprintf(g.stdout, "%s: deleted %d job(s), kept %d; the deleted jobs are in %s\n", queue, deleted, kept, export)
			} else {
				fmt.Fprintf(g.stdout, "%s: deleted %d job(s), kept %d\n", queue, deleted, kept)
			}
			return err
		},
	}
	ff.add(cmd)
	cmd.Flags().BoolVar(&yes, "yes", false, "delete without asking")
	cmd.Flags().StringVar(&export, "export", "", "write each job to this new file (dlq export's format), synced, before deleting it")
	return cmd
}
