package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
)

const (
	// peekLimit bounds the dead letters read from one queue: all of them
	// are held at once (as the consumer's prefetch) until put back.
	peekLimit = 10000
	// peekIdle is how long the queue must stay silent to count as read to
	// its end.
	peekIdle = 500 * time.Millisecond
)

// printDeadLetters writes what the dead-letter queue of each work queue
// holds, grouped by error class and error text. It removes nothing.
func printDeadLetters(ctx context.Context, w io.Writer, conn *broker.Conn, topo *topology.Topology) error {
	fmt.Fprintln(w, "\ndead-letter queues (read, then put back):")
	var errs []error
	for _, q := range topo.WorkQueues() {
		if q.DeadLetterQueue == "" {
			continue // the file names its own dead-letter target, or none
		}
		letters, err := peek(ctx, conn, q.DeadLetterQueue)
		if err != nil {
			errs = append(errs, err)
		}
		switch {
		case len(letters) == 0 && err == nil:
			fmt.Fprintf(w, "  %s: empty\n", q.DeadLetterQueue)
			continue
		case len(letters) >= peekLimit:
			fmt.Fprintf(w, "  %s: %d jobs or more (the first %d):\n", q.DeadLetterQueue, len(letters), peekLimit)
		default:
			fmt.Fprintf(w, "  %s: %d jobs\n", q.DeadLetterQueue, len(letters))
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "    count\tclass\tjob types\terror")
		for _, g := range group(letters) {
			fmt.Fprintf(tw, "    %5d\t%s\t%s\t%s\n", g.count, g.class, strings.Join(g.types, ","), g.text)
		}
		tw.Flush()
	}
	return errors.Join(errs...)
}

// peek reads the messages of a queue and puts every one back. It holds
// each delivery, unsettled, until the queue has nothing more to send: a
// message put back earlier would be delivered again, and the rest never
// seen. Then it returns them all to the queue.
func peek(ctx context.Context, conn *broker.Conn, queue string) ([]*broker.Envelope, error) {
	c, err := broker.Consume(ctx, conn, queue, broker.WithPrefetch(peekLimit))
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx) // after the requeues below: Close sends what is pending
	var held []*broker.Delivery
	for len(held) < peekLimit {
		wait, cancel := context.WithTimeout(ctx, peekIdle)
		d, ok := c.Next(wait)
		cancel()
		if !ok {
			break
		}
		held = append(held, d)
	}
	// Stop the deliveries; any sent meanwhile are held too.
	err = c.Cancel(ctx)
	for {
		d, ok := c.Next(ctx)
		if !ok {
			break
		}
		held = append(held, d)
	}
	letters := make([]*broker.Envelope, len(held))
	for i, d := range held {
		letters[i] = d.Envelope
		if rerr := d.Requeue(); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		err = fmt.Errorf("read dead-letter queue %q: %w", queue, err)
	}
	return letters, err
}

// deadLetterGroup is the dead letters that share an error class and text.
type deadLetterGroup struct {
	class, text string
	count       int
	types       []string
}

// group groups dead letters by error class and the first line of their
// error text, the largest group first.
func group(letters []*broker.Envelope) []*deadLetterGroup {
	byKey := map[[2]string]*deadLetterGroup{}
	var groups []*deadLetterGroup
	for _, e := range letters {
		class, text := "-", "(no warren failure headers: dead-lettered by the broker)"
		if f := e.Failure; f != nil {
			class, text = f.Class, firstLine(f.Error, 80)
		}
		g := byKey[[2]string{class, text}]
		if g == nil {
			g = &deadLetterGroup{class: class, text: text}
			byKey[[2]string{class, text}] = g
			groups = append(groups, g)
		}
		g.count++
		if !slices.Contains(g.types, e.Type) {
			g.types = append(g.types, e.Type)
		}
	}
	for _, g := range groups {
		slices.Sort(g.types)
	}
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].count > groups[j].count })
	return groups
}

// firstLine returns the first line of s, cut to at most n runes.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
