package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/cmd/warren/internal/table"
	"github.com/warrenmq/warren/internal/inspect"
	"github.com/warrenmq/warren/internal/mgmt"
	"github.com/warrenmq/warren/topology"
)

// The cascade's counts, the --json "delay" entry, are internal/inspect's.
type (
	delayStats  = inspect.Delay
	delayLevel  = inspect.DelayLevel
	delayOrigin = inspect.DelayOrigin
	delaySample = inspect.DelaySample
)

// otherQueues is the row of the jobs for queues not in the file.
const otherQueues = "(other queues)"

func delayCounts(queues []mgmt.Queue) *delayStats { return inspect.DelayCounts(queues) }

// delayByOrigin reads up to sample messages of each of the cascade's
// queues without taking them, and counts them per queue they are delayed
// for. With t, the file's work queues are listed, every one, and the rest
// counted together as otherQueues.
func delayByOrigin(ctx context.Context, c *mgmt.Client, t *topology.Topology, s *delayStats, sample int) error {
	counts := map[string]*delayOrigin{}
	count := func(queue string) *delayOrigin {
		o, ok := counts[queue]
		if !ok {
			o = &delayOrigin{Queue: queue}
			counts[queue] = o
		}
		return o
	}
	var file map[string]bool
	if t != nil {
		file = map[string]bool{}
		for _, q := range t.Queues {
			if !q.Derived {
				file[q.Name] = true
				count(q.Name)
			}
		}
	}
	s.Sampled = &delaySample{Of: s.Total + s.Unroutable, PerQueue: sample}
	names := make([]string, 0, topology.DelayLevels+1)
	for level := topology.DelayLevels - 1; level >= 0; level-- {
		names = append(names, topology.DelayExchangeName(level))
	}
	names = append(names, topology.DelayUnroutable)
	for _, name := range names {
		msgs, err := c.PeekMessages(ctx, name, sample)
		if err != nil {
			var se *mgmt.StatusError
			if errors.As(err, &se) && se.Status == http.StatusNotFound {
				continue // not declared
			}
			return fmt.Errorf("reading the jobs in %s (--by-origin): %w", name, err)
		}
		for _, m := range msgs {
			s.Sampled.Read++
			queue := delayedFor(m)
			if file != nil && !file[queue] {
				queue = otherQueues
			}
			o := count(queue)
			switch {
			case name == topology.DelayUnroutable:
				o.Unroutable++
			case retrying(m):
				o.Retrying++
			default:
				o.Scheduled++
			}
		}
	}
	s.ByQueue = make([]delayOrigin, 0, len(counts))
	for _, o := range counts {
		s.ByQueue = append(s.ByQueue, *o)
	}
	sort.Slice(s.ByQueue, func(i, j int) bool {
		a, b := s.ByQueue[i].Queue, s.ByQueue[j].Queue
		if (a == otherQueues) != (b == otherQueues) {
			return b == otherQueues
		}
		return a < b
	})
	return nil
}

// delayedFor returns the queue a message in the cascade is delayed for:
// the words of its routing key after the delay's bits (see
// topology.DelayRoute), else its origin queue header, else "?".
func delayedFor(m mgmt.Message) string {
	words := strings.SplitN(m.RoutingKey, ".", topology.DelayLevels+1)
	if len(words) == topology.DelayLevels+1 {
		bits := true
		for _, w := range words[:topology.DelayLevels] {
			bits = bits && (w == "0" || w == "1")
		}
		if bits && words[topology.DelayLevels] != "" {
			return words[topology.DelayLevels]
		}
	}
	if q, ok := m.Properties.Headers[broker.HeaderOriginQueue].(string); ok && q != "" {
		return q
	}
	return "?"
}

// retrying reports whether a message in the cascade is a retry (it carries
// the failure of an attempt) rather than a scheduled job.
func retrying(m mgmt.Message) bool {
	_, e := m.Properties.Headers[broker.HeaderError]
	_, c := m.Properties.Headers[broker.HeaderErrorClass]
	return e || c
}

// printDelay writes the cascade's lines after the stats table.
func printDelay(w io.Writer, s *delayStats) {
	if !s.Declared {
		fmt.Fprintln(w, "delay cascade: not declared on this vhost (warren topology apply declares it)")
		return
	}
	levels := make([]string, 0, len(s.Levels))
	for _, l := range s.Levels {
		levels = append(levels, fmt.Sprintf("%s: %d", l.Queue, l.Messages))
	}
	line := fmt.Sprintf("delay cascade: %d retrying or scheduled", s.Total)
	if len(levels) > 0 {
		line += " (" + strings.Join(levels, ", ") + ")"
	}
	fmt.Fprintf(w, "%s; %s: %d\n", line, topology.DelayUnroutable, s.Unroutable)
	if s.ByQueue != nil {
		tb := table.New("QUEUE", "RETRYING", "SCHEDULED", "UNROUTABLE").AlignRight(1, 2, 3)
		for _, o := range s.ByQueue {
			tb.Row(o.Queue, strconv.FormatInt(o.Retrying, 10), strconv.FormatInt(o.Scheduled, 10), strconv.FormatInt(o.Unroutable, 10))
		}
		tb.WriteTo(w)
		fmt.Fprintf(w, "read %d of the %d jobs counted in the cascade (at most %d per queue: --sample)\n", s.Sampled.Read, s.Sampled.Of, s.Sampled.PerQueue)
	}
	if s.Unroutable > 0 {
		fmt.Fprintf(w, "%d job(s) in %s: their delay ended and no queue took them (the queue was deleted, or not applied);"+
			" see them with `warren dlq list %s`, and apply the topology that has their queue\n",
			s.Unroutable, topology.DelayUnroutable, topology.DelayUnroutable)
	}
}
