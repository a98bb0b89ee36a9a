package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/cmd/warren/internal/table"
	"github.com/warrenmq/warren/internal/jsonwire"
	"github.com/warrenmq/warren/topology"
)

func newQueueCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "List, peek into, pause, resume, purge and delete queues",
	}
	cmd.AddCommand(newQueueLsCmd(g), newQueuePeekCmd(g), newQueuePurgeCmd(g), newQueueDeleteCmd(g),
		newQueuePauseCmd(g, true), newQueuePauseCmd(g, false))
	return cmd
}

// queueRow is one line of queue ls, and its --json entry.
type queueRow struct {
	Name   string `json:"name"`
	Type   string `json:"type,omitempty"`
	Exists bool   `json:"exists"`
	Ready  int64  `json:"ready"`
	// Unacked is nil without the management API: a passive declare counts
	// only the ready jobs.
	Unacked   *int64 `json:"unacked"`
	Consumers int64  `json:"consumers"`
	// DeadLetterQueue is the queue's .dlq, DeadLettered its depth (nil when
	// it has none); Quarantined the depth of its .quarantine (nil without).
	DeadLetterQueue string     `json:"dead_letter_queue,omitempty"`
	DeadLettered    *int64     `json:"dead_lettered"`
	Quarantined     *int64     `json:"quarantined,omitempty"`
	Rates           *statsRate `json:"rates"` // nil without the management API, or before the first message
	// Paused: warren queue pause stopped the pools consuming it.
	Paused bool `json:"paused"`
}

func newQueueLsCmd(g *globals) *cobra.Command {
	var path, mgmtURL string
	cmd := &cobra.Command{
		Use:     "ls [-f FILE]",
		Aliases: []string{"list"},
		Short:   "List queues with their depth, consumers and rates",
		Long: `List queues: jobs ready and unacknowledged, consumers, the publish and
deliver rates per second, and beside a warren work queue the depth of its
dead-letter queue (.dlq) and quarantine (.quarantine).

The counts come from the management HTTP API. With -f, the topology's work
queues are listed, in file order; without it, every queue of the virtual
host except warren's own (warren.*).

When the management API cannot be reached and -f is given, the topology's
queues are counted by passive declares over AMQP instead: ready jobs and
consumers only, as unacknowledged counts and rates need the management API.`,
		Example: `  warren queue ls
  warren queue ls -f topology.yaml --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var t *topology.Topology
			if path != "" {
				var err error
				if t, err = g.loadTopology(path); err != nil {
					return err
				}
			}
			ctx := cmd.Context() // --timeout's deadline (prepare)
			rows, merr := g.queueRowsFromManagement(ctx, t, mgmtURL)
			source := "management"
			if merr != nil {
				if t == nil {
					return fmt.Errorf("%w; or pass -f FILE to count the topology's queues over AMQP without it", merr)
				}
				fmt.Fprintf(g.stderr, "warren: the management API is unavailable (%s); counting the topology's queues by passive declare\n", advised(merr))
				var err error
				if rows, err = g.queueRowsFromAMQP(ctx, t); err != nil {
					return err
				}
				source = "amqp"
			}
			if g.json {
				return writeJSON(g.stdout, struct {
					Version int        `json:"version"`
					Source  string     `json:"source"` // management or amqp
					File    string     `json:"file,omitempty"`
					Queues  []queueRow `json:"queues"`
				}{1, source, path, rows})
			}
			printQueueRows(g, rows)
			if source == "amqp" {
				fmt.Fprintln(g.stdout, "unacknowledged counts and rates need the management API (--management-url, env WARREN_MANAGEMENT_URL)")
			}
			return nil
		},
	}
	topologyFlag(cmd, &path)
	managementFlag(cmd, &mgmtURL)
	return cmd
}

func (g *globals) queueRowsFromManagement(ctx context.Context, t *topology.Topology, mgmtURL string) ([]queueRow, error) {
	c, err := g.mgmtClient(mgmtURL)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	queues, err := c.Queues(ctx)
	if err != nil {
		return nil, err
	}
	var rows []queueRow
	for _, r := range statsRows(t, queues) {
		unacked := r.Unacked
		q := queueRow{Name: r.Name, Type: r.Type, Exists: r.Exists, Ready: r.Ready, Consumers: r.Consumers,
			DeadLetterQueue: r.DeadLetterQueue, DeadLettered: r.DeadLettered, Quarantined: r.Quarantined, Rates: r.Rates}
		if r.Exists {
			q.Unacked = &unacked
		}
		q.Paused = r.Paused
		rows = append(rows, q)
	}
	return rows, nil
}

// queueRowsFromAMQP counts t's work queues by passive declare.
func (g *globals) queueRowsFromAMQP(ctx context.Context, t *topology.Topology) ([]queueRow, error) {
	conn, err := g.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	d := broker.NewDeclarer(conn)
	defer d.Close(context.WithoutCancel(ctx))
	depth := func(name string) (broker.QueueInfo, bool, error) {
		info, err := d.QueueInfo(ctx, name)
		if errors.Is(err, broker.ErrNoQueue) {
			return info, false, nil
		}
		return info, err == nil, err
	}
	rows := []queueRow{}
	for _, q := range t.Queues {
		if strings.HasPrefix(q.Name, topology.ReservedPrefix) || isQuarantine(t, q) {
			continue
		}
		info, ok, err := depth(q.Name)
		if err != nil {
			return nil, err
		}
		r := queueRow{Name: q.Name, Type: q.Type, Exists: ok, Ready: int64(info.Messages), Consumers: int64(info.Consumers), DeadLetterQueue: q.DeadLetterQueue}
		if _, r.Paused, err = depth(broker.PausedMarker(q.Name)); err != nil {
			return nil, err
		}
		for _, side := range []struct {
			name string
			n    **int64
		}{{q.DeadLetterQueue, &r.DeadLettered}, {q.QuarantineQueue, &r.Quarantined}} {
			if side.name == "" {
				continue
			}
			info, ok, err := depth(side.name)
			if err != nil {
				return nil, err
			}
			if ok {
				n := int64(info.Messages)
				*side.n = &n
			}
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func printQueueRows(g *globals, rows []queueRow) {
	tb := table.New("QUEUE", "TYPE", "READY", "UNACKED", "CONSUMERS", "DEAD-LETTERED", "QUARANTINED", "PUBLISH/S", "DELIVER/S").
		AlignRight(2, 3, 4, 5, 6, 7, 8)
	num := func(n *int64) string {
		if n == nil {
			return "-"
		}
		return strconv.FormatInt(*n, 10)
	}
	for _, r := range rows {
		if !r.Exists {
			tb.Row(r.Name, "missing", "-", "-", "-", "-", "-", "-", "-")
			continue
		}
		pub, del := "-", "-"
		if r.Rates != nil {
			pub, del = strconv.FormatFloat(r.Rates.Publish, 'f', 1, 64), strconv.FormatFloat(r.Rates.Deliver, 'f', 1, 64)
		}
		name := r.Name
		if r.Paused {
			name += " (paused)"
		}
		tb.Row(name, r.Type, strconv.FormatInt(r.Ready, 10), num(r.Unacked), strconv.FormatInt(r.Consumers, 10),
			num(r.DeadLettered), num(r.Quarantined), pub, del)
	}
	tb.WriteTo(g.stdout)
	if len(rows) == 0 {
		fmt.Fprintln(g.stdout, "no queues")
	}
}

// confirmUnlessYes asks on the terminal before what cannot be undone;
// yes skips the question. Without a terminal to ask on, it refuses with a
// usage error saying to pass --yes.
func (g *globals) confirmUnlessYes(cmd *cobra.Command, yes bool, question string) error {
	if yes {
		return nil
	}
	return g.confirm(question+"?", cmd.CommandPath()+" cannot be undone: pass --yes to confirm")
}

// openQueue dials and checks that queue exists, for a command that then
// changes it with d; done closes d and the connection.
func (g *globals) openQueue(ctx context.Context, queue string) (d *broker.Declarer, info broker.QueueInfo, done func(), err error) {
	conn, err := g.dial(ctx)
	if err != nil {
		return nil, info, nil, err
	}
	d = broker.NewDeclarer(conn)
	done = func() {
		d.Close(context.WithoutCancel(ctx))
		conn.Close()
	}
	if info, err = d.QueueInfo(ctx, queue); err != nil {
		done()
		return nil, info, nil, err
	}
	return d, info, done, nil
}

func newQueuePurgeCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "purge QUEUE",
		Short: "Delete every ready job of a queue, for good",
		Long: `Delete every ready job of a queue, for good (queue.purge). Jobs a consumer
holds unacknowledged stay. On a terminal it shows how many jobs the queue
holds and asks first; elsewhere pass --yes. To keep what a dead-letter queue
holds, or delete only some of its jobs, use warren dlq purge instead.`,
		Example: `  warren queue purge emails.dlq --yes`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			queue := args[0]
			ctx := cmd.Context() // --timeout's deadline (prepare)
			d, info, done, err := g.openQueue(ctx, queue)
			if err != nil {
				return err
			}
			defer done()
			if err := g.confirmUnlessYes(cmd, yes, fmt.Sprintf("delete the %d ready job(s) of %s for good", info.Messages, queue)); err != nil {
				return err
			}
			n, err := d.Purge(ctx, queue)
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(g.stdout, struct {
					Version int    `json:"version"`
					Queue   string `json:"queue"`
					Purged  int    `json:"purged"`
				}{1, queue, n})
			}
			fmt.Fprintf(g.stdout, "%s: purged %d job(s)\n", queue, n)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "purge without asking")
	return cmd
}

func newQueueDeleteCmd(g *globals) *cobra.Command {
	var yes, ifEmpty bool
	cmd := &cobra.Command{
		Use:   "delete QUEUE",
		Short: "Delete a queue and the jobs in it",
		Long: `Delete a queue, with its bindings and every job in it. With --if-empty the
broker deletes it only when it holds no ready job, and refuses otherwise.
On a terminal it asks first; elsewhere pass --yes. A queue of the topology
comes back, empty, at the next warren topology apply.`,
		Example: `  warren queue delete old-emails --if-empty --yes`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			queue := args[0]
			ctx := cmd.Context() // --timeout's deadline (prepare)
			d, info, done, err := g.openQueue(ctx, queue)
			if err != nil {
				return err
			}
			defer done()
			q := fmt.Sprintf("delete queue %s and its %d ready job(s)", queue, info.Messages)
			if ifEmpty {
				q = fmt.Sprintf("delete queue %s if it is empty", queue)
			}
			if err := g.confirmUnlessYes(cmd, yes, q); err != nil {
				return err
			}
			n, err := d.DeleteQueue(ctx, queue, ifEmpty)
			if errors.Is(err, broker.ErrQueueNotEmpty) {
				return fmt.Errorf("%w: move or purge its jobs first (warren queue peek %s shows them), or drop --if-empty", err, queue)
			}
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(g.stdout, struct {
					Version int    `json:"version"`
					Queue   string `json:"queue"`
					Deleted bool   `json:"deleted"`
					Jobs    int    `json:"jobs"`
				}{1, queue, true, n})
			}
			fmt.Fprintf(g.stdout, "deleted queue %s (%d job(s) with it)\n", queue, n)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "delete without asking")
	cmd.Flags().BoolVar(&ifEmpty, "if-empty", false, "delete only if the queue holds no ready job")
	return cmd
}

// peekJob is one job of queue peek's --json output.
type peekJob struct {
	ID            string         `json:"id"`
	Type          string         `json:"type"`
	Attempt       int            `json:"attempt"`
	PublishedAt   *time.Time     `json:"published_at,omitempty"`
	Expiration    string         `json:"expiration,omitempty"`
	Redelivered   bool           `json:"redelivered"`    // before this peek
	DeliveryCount int            `json:"delivery_count"` // quorum queues' x-delivery-count, before this peek
	Headers       map[string]any `json:"headers,omitempty"`
	Payload       any            `json:"payload"`
	Malformed     string         `json:"malformed,omitempty"`
}

func newQueuePeekCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "peek QUEUE [N]",
		Short: "Show the next N ready jobs of a queue (default 10), leaving them in place",
		Long: `Show the next N ready jobs of a queue (10 by default): id, type, attempt,
when it was published and its payload. Jobs a consumer holds are not seen.

Peeking takes each job without acknowledging it (basic.get) and returns it
at once, so no job leaves the queue, but the broker counts a delivery:
  - a classic queue puts each job back in its place; a quorum queue may
    hand the returned jobs out before the ones that were behind them;
  - each peeked job comes back marked redelivered, and on a quorum queue
    its x-delivery-count grows by one, which the queue's delivery limit
    counts (20 by default for warren's work queues);
  - warren's workers take a redelivered job from a work queue for one that
    may have crashed its worker, and run it alone, through the quarantine.
    A job peeked in a .quarantine queue counts as a crash of it there, so
    peeking one needs --force.
While peeking, the N jobs are out of the workers' reach for a moment.
warren dlq list reads a dead-letter queue, where none of this matters.`,
		Example: `  warren queue peek emails 5
  warren queue peek emails --json | jq '.jobs[].payload'`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			queue, n := args[0], 10
			if len(args) == 2 {
				var err error
				if n, err = strconv.Atoi(args[1]); err != nil || n < 1 {
					return fmt.Errorf("N %q: give how many jobs to show, 1 or more", args[1])
				}
			}
			if strings.HasSuffix(queue, ".quarantine") && !force {
				return fmt.Errorf("peeking %s would mark its jobs redelivered, which warren's workers count as a crash of each; pass --force to peek anyway", queue)
			}
			ctx := cmd.Context() // --timeout's deadline (prepare)
			conn, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			jobs, err := peek(ctx, conn, queue, n)
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(g.stdout, struct {
					Version int       `json:"version"`
					Queue   string    `json:"queue"`
					Jobs    []peekJob `json:"jobs"`
				}{1, queue, jobs})
			}
			if len(jobs) == 0 {
				fmt.Fprintf(g.stdout, "%s: no ready job\n", queue)
				return nil
			}
			tb := table.New("ID", "TYPE", "ATTEMPT", "PUBLISHED", "REDELIVERED", "PAYLOAD").AlignRight(2)
			for _, j := range jobs {
				published := "-"
				if j.PublishedAt != nil {
					published = j.PublishedAt.Format(time.RFC3339)
				}
				payload := j.Malformed
				if payload == "" {
					b, _ := json.Marshal(j.Payload)
					payload = string(b)
				}
				tb.Row(j.ID, j.Type, strconv.Itoa(j.Attempt), published, strconv.FormatBool(j.Redelivered), shorten(payload, 60))
			}
			_, err = tb.WriteTo(g.stdout)
			return err
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "peek into a .quarantine queue too")
	return cmd
}

// peek takes up to n ready jobs of queue without acknowledging them and
// returns every one to the queue before it returns (closing the channel
// returns whatever a failed requeue left).
func peek(ctx context.Context, conn *broker.Conn, queue string, n int) (jobs []peekJob, retErr error) {
	getter := broker.NewGetter(conn, queue)
	var held []*broker.Delivery
	defer func() {
		for _, d := range held {
			if err := d.Requeue(); err != nil && retErr == nil {
				retErr = fmt.Errorf("return job %s to %s: %w (the broker returns it when the channel closes)", d.Envelope.ID, queue, err)
			}
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := getter.Close(cctx); err != nil && retErr == nil {
			retErr = err
		}
	}()
	jobs = []peekJob{}
	for len(held) < n {
		d, ok, err := getter.Get(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		held = append(held, d)
		env := d.Envelope
		j := peekJob{ID: env.ID, Type: env.Type, Attempt: max(env.Attempt, 1), Expiration: env.Expiration,
			Redelivered: d.Redelivered, DeliveryCount: d.DeliveryCount, Payload: payloadValue(env)}
		if !env.Timestamp.IsZero() {
			ts := env.Timestamp
			j.PublishedAt = &ts
		}
		if len(env.Headers) > 0 {
			j.Headers = jsonwire.Plain(env.Headers).(map[string]any)
		}
		if d.Err != nil {
			j.Malformed = d.Err.Error()
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// newQueuePauseCmd is warren queue pause (pause) or warren queue resume.
func newQueuePauseCmd(g *globals, pause bool) *cobra.Command {
	use, short, long, example := "pause QUEUE", "Stop every worker consuming a queue until it is resumed",
		`Stop every worker pool consuming QUEUE, now and after restarts, until
warren queue resume. Jobs running finish; jobs received and not started
go back to the queue; jobs wait there, never retried or dead-lettered.
Producers keep publishing.

The paused state is kept by the broker (the empty quorum queue
warren.paused.QUEUE), and pools hear the change at once on the fanout
exchange warren.control; a pool that was reconnecting reads it when it
consumes again, and every 30 s. A pool started later does not consume a
paused queue. /readyz stays 200 and names the paused queues; the metric
warren_queue_paused is 1.`, "  warren queue pause emails"
	if !pause {
		use, short, long, example = "resume QUEUE", "Let the workers consume a paused queue again",
			`Let every worker pool consume QUEUE again (see warren queue pause).`, "  warren queue resume emails"
	}
	return &cobra.Command{
		Use: use, Short: short, Long: long, Example: example,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			queue := args[0]
			ctx := cmd.Context()
			_, _, done, err := g.openQueue(ctx, queue) // the queue must exist
			if err != nil {
				return err
			}
			defer done()
			conn, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			was, err := broker.IsPaused(ctx, conn, queue)
			if err != nil {
				return err
			}
			if err := broker.SetPaused(ctx, conn, queue, pause); err != nil {
				return err
			}
			if g.json {
				return writeJSON(g.stdout, struct {
					Version int    `json:"version"`
					Queue   string `json:"queue"`
					Paused  bool   `json:"paused"`
					Changed bool   `json:"changed"`
				}{1, queue, pause, was != pause})
			}
			switch {
			case was == pause && pause:
				fmt.Fprintf(g.stdout, "%s: already paused\n", queue)
			case was == pause:
				fmt.Fprintf(g.stdout, "%s: not paused\n", queue)
			case pause:
				fmt.Fprintf(g.stdout, "%s: paused: the workers finish the jobs they run and take no more (warren queue resume %s)\n", queue, queue)
			default:
				fmt.Fprintf(g.stdout, "%s: resumed\n", queue)
			}
			return nil
		},
	}
}
