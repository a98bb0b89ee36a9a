package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/internal/inspect"
	"github.com/warrenmq/warren/internal/mgmt"
	"github.com/warrenmq/warren/topology"
)

func newStatsCmd(g *globals) *cobra.Command {
	var path, mgmtURL string
	var byOrigin bool
	var sample int
	cmd := &cobra.Command{
		Use:   "stats [-f FILE] [--by-origin [--sample N]]",
		Short: "Show queue depths, consumers and rates",
		Long: `Show, per queue, the jobs ready and unacknowledged, the jobs dead-lettered
(the depth of the queue's .dlq), the consumers, the publish, deliver and
ack rates per second, and the worker pools whose circuit breaker on the
queue is open ("open 2/3": two pools of three stopped consuming it because
its jobs kept failing), from the management HTTP API.

With -f, the topology's work queues and their dead-letter queues, in file
order; a queue the broker does not have is listed as missing. Without -f,
every queue of the virtual host except warren's own (warren.*).

Then the delay cascade: the jobs waiting in it, retrying or scheduled, in
total and per level, and the jobs in warren.delay.unroutable (their delay
ended and no queue took them). The levels are shared by every queue of the
vhost; --by-origin reads the jobs waiting there, at most --sample of each
level, without taking them (the management API hands them out and puts
them back), and counts them per queue they are delayed for: retrying (they
carry a failure), scheduled, unroutable. With -f, the file's queues.

The management API refreshes its counts every few seconds (5 by default),
so they lag the queues a little. Deliver counts deliveries of every kind
(to consumers with or without acks, and basic.get).`,
		Example: `  warren stats -f topology.yaml
  warren stats -f topology.yaml --by-origin
  warren stats --json | jq '.queues[] | select(.dead_lettered > 0)'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sample < 1 {
				return fmt.Errorf("--sample %d: give the most jobs to read from each queue of the delay cascade, at least 1", sample)
			}
			if cmd.Flags().Changed("sample") && !byOrigin {
				return errors.New("--sample sets how many jobs --by-origin reads: add --by-origin")
			}
			var t *topology.Topology
			if path != "" {
				var err error
				if t, err = g.loadTopology(path); err != nil {
					return err
				}
			}
			c, err := g.mgmtClient(mgmtURL)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context() // --timeout bounds it (root.go, prepare)
			queues, err := c.Queues(ctx)
			if err != nil {
				return err
			}
			rows := statsRows(t, queues)
			delay := delayCounts(queues)
			if byOrigin && delay.Declared {
				if err := delayByOrigin(ctx, c, t, delay, sample); err != nil {
					return err
				}
			}
			if g.json {
				return writeJSON(g.stdout, struct {
					Version    int         `json:"version"`
					Management string      `json:"management"`
					Vhost      string      `json:"vhost"`
					File       string      `json:"file,omitempty"`
					Queues     []statsRow  `json:"queues"`
					Delay      *delayStats `json:"delay"`
				}{1, c.URL(), c.Vhost(), path, rows, delay})
			}
			printStats(g.stdout, rows, !noColor(g.stdout))
			if len(rows) == 0 {
				fmt.Fprintf(g.stdout, "no queues on vhost %s\n", c.Vhost())
			}
			printDelay(g.stdout, delay)
			return nil
		},
	}
	topologyFlag(cmd, &path)
	managementFlag(cmd, &mgmtURL)
	cmd.Flags().BoolVar(&byOrigin, "by-origin", false, "count the jobs in the delay cascade per queue they are delayed for, reading them without taking them")
	cmd.Flags().IntVar(&sample, "sample", 100, "with --by-origin, the most jobs to read from each queue of the delay cascade")
	return cmd
}

// The rows and their --json entries are internal/inspect's, shared with
// the dashboard.
type (
	statsRow  = inspect.Row
	statsRate = inspect.Rates
)

func statsRows(t *topology.Topology, queues []mgmt.Queue) []statsRow { return inspect.Rows(t, queues) }

func isQuarantine(t *topology.Topology, q topology.Queue) bool { return inspect.IsQuarantine(t, q) }

// ANSI styles for the table.
const (
	styleBold   = "\x1b[1m"
	styleRed    = "\x1b[31m"
	styleYellow = "\x1b[33m"
	styleReset  = "\x1b[0m"
)

type statsCell struct {
	text  string
	style string
	right bool // numbers are right-aligned
}

func printStats(w io.Writer, rows []statsRow, color bool) {
	header := []string{"QUEUE", "TYPE", "READY", "UNACKED", "DEAD-LETTERED", "QUARANTINED", "CONSUMERS", "PUBLISH/S", "DELIVER/S", "ACK/S", "BREAKER"}
	table := [][]statsCell{}
	hdr := make([]statsCell, len(header))
	for i, h := range header {
		hdr[i] = statsCell{text: h, style: styleBold, right: i >= 2 && i < len(header)-1} // the breaker column is text
	}
	table = append(table, hdr)
	num := func(n int64) statsCell { return statsCell{text: strconv.FormatInt(n, 10), right: true} }
	dash := statsCell{text: "-", right: true}
	for _, r := range rows {
		if !r.Exists {
			table = append(table, []statsCell{{text: r.Name}, {text: "missing: run warren topology apply", style: styleYellow}})
			continue
		}
		dead := dash
		if r.DeadLettered != nil {
			dead = num(*r.DeadLettered)
			if *r.DeadLettered > 0 {
				dead.style = styleRed
			}
		}
		quarantined := dash
		if r.Quarantined != nil {
			quarantined = num(*r.Quarantined)
			if *r.Quarantined > 0 {
				quarantined.style = styleYellow
			}
		}
		rates := []statsCell{dash, dash, dash}
		if r.Rates != nil {
			for i, v := range []float64{r.Rates.Publish, r.Rates.Deliver, r.Rates.Ack} {
				rates[i] = statsCell{text: strconv.FormatFloat(v, 'f', 1, 64), right: true}
			}
		}
		// Pools whose breaker is open consume the marker, not the queue.
		breaker := statsCell{text: "-"}
		if r.BreakersOpen > 0 {
			breaker = statsCell{text: fmt.Sprintf("open %d/%d", r.BreakersOpen, r.BreakersOpen+r.Consumers), style: styleYellow}
			if r.Consumers == 0 {
				breaker.style = styleRed // nobody takes the queue's jobs
			}
		}
		line := []statsCell{{text: r.Name}, {text: r.Type}, num(r.Ready), num(r.Unacked), dead, quarantined, num(r.Consumers)}
		table = append(table, append(append(line, rates...), breaker))
	}
	widths := make([]int, len(header))
	for _, line := range table {
		for i, c := range line {
			// A missing queue's note spans the columns after the name.
			if len(line) == len(header) || i == 0 {
				widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
			}
		}
	}
	for _, line := range table {
		var b strings.Builder
		for i, c := range line {
			if i > 0 {
				b.WriteString("  ")
			}
			// A missing queue's note is not padded: it spans the columns
			// after the name.
			var pad string
			if len(line) == len(header) || i == 0 {
				pad = strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c.text))
			}
			text := c.text
			if color && c.style != "" {
				text = c.style + text + styleReset
			}
			if c.right {
				b.WriteString(pad + text)
			} else {
				b.WriteString(text + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}
