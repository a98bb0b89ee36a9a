package main

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/examples/quickstart/internal/jobs"
	"github.com/warrenmq/warren/worker"
)

// ticks records the periodic jobs handled: the tick each one is for, and
// how often each job id came (a tick fired twice is the same job twice).
type ticks struct {
	mu       sync.Mutex
	schedule string
	every    time.Duration
	seen     map[string]time.Time // job id → tick
	dups     int
}

func newTicks(schedule string, every time.Duration) *ticks {
	return &ticks{schedule: schedule, every: every, seen: map[string]time.Time{}}
}

// add records job, a periodic job: it reads the tick from the header the
// scheduler sets.
func (t *ticks) add(job *worker.Job) error {
	var raw string
	if job.Envelope != nil {
		raw, _ = job.Envelope.Headers[broker.HeaderScheduleTick].(string)
	}
	tick, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return worker.Permanent(fmt.Errorf("no tick in header %s: %q", broker.HeaderScheduleTick, raw))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.seen[job.ID]; ok {
		t.dups++
		return nil
	}
	t.seen[job.ID] = tick
	return nil
}

// print writes one line: how many ticks came, from when to when, and
// whether any period between the first and the last is missing.
func (t *ticks) print(w io.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.seen) == 0 {
		fmt.Fprintf(w, "  periodic       %6d  (schedule %s fired no tick while the worker ran)\n", 0, t.schedule)
		return
	}
	all := make([]time.Time, 0, len(t.seen))
	for _, tick := range t.seen {
		all = append(all, tick)
	}
	slices.SortFunc(all, time.Time.Compare)
	gaps := 0
	for i := 1; i < len(all); i++ {
		if d := all[i].Sub(all[i-1]); d > t.every {
			gaps += int(d/t.every) - 1
		}
	}
	fmt.Fprintf(w, "  periodic       %6d  (%s, schedule %s every %s: ticks %s to %s UTC, %d missing, %d fired twice)\n",
		len(all), jobs.StatsRollup, t.schedule, t.every, all[0].UTC().Format(time.TimeOnly), all[len(all)-1].UTC().Format(time.TimeOnly), gaps, t.dups)
}
