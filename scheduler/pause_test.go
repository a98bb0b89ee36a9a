package scheduler_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/scheduler"
)

// countObserver sends each tick outcome on a channel.
type countObserver struct{ ticks chan scheduler.Outcome }

func (countObserver) SchedulerLeading(bool) {}

func (o countObserver) ScheduleTicks(_ string, out scheduler.Outcome, n int) {
	for range n {
		o.ticks <- out
	}
}

// TestPauseSkipsTicks pauses a schedule while it runs: every tick of the
// run is either fired or skipped as paused, and none is fired later.
func TestPauseSkipsTicks(t *testing.T) {
	ctx := brokertest.Context(t, time.Minute)
	target := brokertest.Queue(t, "ticks", nil)
	lease := brokertest.Name(t, "lease")
	name := brokertest.Name(t, "every-second")
	brokertest.DeleteQueuesAtCleanup(t, lease, scheduler.PausedMarker(name))
	conn, err := broker.Dial(ctx, []string{brokertest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	obs := countObserver{ticks: make(chan scheduler.Outcome, 100)} // more than the run's ticks
	s, err := scheduler.New(conn, []scheduler.Schedule{{
		Name: name, Every: time.Second, Type: "test.tick", RoutingKey: target, CatchUp: 30 * time.Second,
	}}, scheduler.WithLeaseQueue(lease), scheduler.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	counts := map[scheduler.Outcome]int{}
	waitFor := func(want scheduler.Outcome, n int) {
		t.Helper()
		for seen := 0; seen < n; {
			select {
			case o := <-obs.ticks:
				counts[o]++
				if o == want {
					seen++
				}
			case <-ctx.Done():
				t.Fatalf("waiting for %d %s ticks: %v (so far %v)", n, want, ctx.Err(), counts)
			}
		}
	}
	waitFor(scheduler.Fired, 2)
	if err := scheduler.SetPaused(ctx, conn, name, true); err != nil {
		t.Fatal(err)
	}
	waitFor(scheduler.Paused, 2)
	if err := scheduler.SetPaused(ctx, conn, name, false); err != nil {
		t.Fatal(err)
	}
	waitFor(scheduler.Fired, 4) // the pause takes effect within PauseRecheck: a tick may fire after it
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	for len(obs.ticks) > 0 {
		counts[<-obs.ticks]++
	}

	ch := brokertest.Channel(t)
	var first, last time.Time
	fired := 0
	for {
		d, ok, err := ch.Get(target, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		tick := tickOf(t, d)
		if first.IsZero() || tick.Before(first) {
			first = tick
		}
		if tick.After(last) {
			last = tick
		}
		fired++
	}
	span := int(last.Sub(first)/time.Second) + 1
	if fired != counts[scheduler.Fired] || fired+counts[scheduler.Paused] != span || counts[scheduler.Missed] != 0 {
		t.Errorf("%d jobs in the queue over %d ticks; observed %v", fired, span, counts)
	}
}

type routes map[string][2]string

func (r routes) Route(jobType string) (string, string, bool) {
	v, ok := r[jobType]
	return v[0], v[1], ok
}

func TestNewRefuses(t *testing.T) {
	ctx := brokertest.Context(t, 30*time.Second)
	conn, err := broker.Dial(ctx, []string{brokertest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	routed := scheduler.Schedule{Name: "a", Every: time.Minute, Type: "report"}
	for _, tc := range []struct {
		name      string
		schedules []scheduler.Schedule
		opts      []scheduler.Option
		want      string
	}{
		{"no target, no router", []scheduler.Schedule{routed}, nil, "set them, or give WithRouter"},
		{"no route for the type", []scheduler.Schedule{routed}, []scheduler.Option{scheduler.WithRouter(routes{})}, `job type "report" has no route`},
		{"every mistake at once", []scheduler.Schedule{{Name: "x", Cron: "bad"}, {Name: "y", Every: time.Minute, Type: "t", TimeZone: "Nowhere"}}, nil, `schedule "y"`},
		{"bad lease queue", nil, []scheduler.Option{scheduler.WithLeaseQueue("")}, "lease queue name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scheduler.New(conn, tc.schedules, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error saying %q", err, tc.want)
			}
		})
	}
	s, err := scheduler.New(conn, []scheduler.Schedule{routed}, scheduler.WithRouter(routes{"report": {"jobs", "report.build"}}))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Schedules()[0]; got.Exchange != "jobs" || got.RoutingKey != "report.build" {
		t.Errorf("routed to %q %q", got.Exchange, got.RoutingKey)
	}
}
