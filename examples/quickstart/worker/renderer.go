package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/warrenmq/warren/worker"
)

// renderer stands in for the service report.render jobs depend on. It has
// one outage, planned: after it has rendered `after` reports it is down
// for `outage`, then up again.
type renderer struct {
	after  int
	outage time.Duration

	mu        sync.Mutex
	rendered  int
	downFrom  time.Time
	downUntil time.Time
	refused   int
}

var errRendererDown = errors.New("renderer: 503 service unavailable")

// render renders one report, or fails while the renderer is down.
func (r *renderer) render(ctx context.Context) error {
	r.mu.Lock()
	now := time.Now()
	if r.downUntil.IsZero() && r.outage > 0 && r.rendered >= r.after {
		r.downFrom, r.downUntil = now, now.Add(r.outage)
	}
	if now.Before(r.downUntil) {
		r.refused++
		r.mu.Unlock()
		return errRendererDown
	}
	r.rendered++
	r.mu.Unlock()
	return work(ctx, 5*time.Millisecond)
}

// breakerLog records the changes of the pool's circuit breakers, for the
// summary. It is a worker.Observer that observes no job, and a
// worker.BreakerObserver.
type breakerLog struct {
	mu      sync.Mutex
	changes map[string][]breakerChange
}

type breakerChange struct {
	at    time.Time
	state worker.BreakerState
}

func (b *breakerLog) Job(ctx context.Context, _ *worker.Job, _ worker.Source) (context.Context, func(worker.Outcome)) {
	return ctx, func(worker.Outcome) {}
}

func (b *breakerLog) BreakerChanged(queue string, state worker.BreakerState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changes == nil {
		b.changes = map[string][]breakerChange{}
	}
	b.changes[queue] = append(b.changes[queue], breakerChange{time.Now(), state})
}

// print writes a line per queue whose breaker changed: the states it went
// through, with the time since it first opened, and the renderer's outage
// beside it.
func (b *breakerLog) print(w io.Writer, r *renderer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.downFrom.IsZero() {
		fmt.Fprintf(w, "\nrenderer outage: down %s after %d reports; %d jobs saw it and tripped the breaker\n", r.outage, r.after, r.refused)
	}
	for queue, cs := range b.changes {
		var steps []string
		for _, c := range cs {
			steps = append(steps, fmt.Sprintf("%s at +%s", c.state, c.at.Sub(cs[0].at).Round(100*time.Millisecond)))
		}
		fmt.Fprintf(w, "circuit breaker of %s: %s\n", queue, strings.Join(steps, ", "))
		fmt.Fprintln(w, "  while open, its jobs waited in the queue: tripped jobs went back untouched (requeued), not retried, not dead-lettered")
	}
}
