package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/worker"
)

type hookMark string

// TestObservers checks the order of a delivery's observers, and that
// their ctx reaches the handler and the publishes of the job's retry.
func TestObservers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	var mu sync.Mutex
	var events []string
	record := func(format string, args ...any) {
		mu.Lock()
		events = append(events, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	hook := func(name string) worker.ObserverFunc {
		return func(ctx context.Context, job *worker.Job, from worker.Source) (context.Context, func(worker.Outcome)) {
			source := "the delay cascade" // retries come back through it
			if from.Exchange == f.exchange {
				source = from.Exchange + "/" + from.RoutingKey
			}
			record("%s start %s#%d from %s", name, job.Type, job.Attempt, source)
			return context.WithValue(ctx, hookMark(name), true), func(o worker.Outcome) { record("%s done %s", name, o.Status) }
		}
	}
	marks := func(ctx context.Context) string {
		return fmt.Sprintf("marks a=%t b=%t", ctx.Value(hookMark("a")) != nil, ctx.Value(hookMark("b")) != nil)
	}
	pub, err := broker.NewSender(testkit.Dial(t, "worker-test-hook-publish", broker.WithObserver(broker.ObserverFuncs{
		OnPublish: func(ctx context.Context, info broker.PublishInfo, env *broker.Envelope) (context.Context, func(error)) {
			record("publish %s %s", info.Kind, marks(ctx))
			return ctx, nil
		}})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })

	mux := worker.NewMux()
	mux.HandleFunc("flaky", func(ctx context.Context, job *worker.Job) error {
		record("handler #%d %s", job.Attempt, marks(ctx))
		if job.Attempt == 1 {
			return errors.New("once")
		}
		return nil
	})
	var settled sync.WaitGroup
	settled.Add(2)
	f.run(mux, worker.WithSender(pub), worker.WithQueue(f.queue, worker.Concurrency(1), worker.Prefetch(1)),
		// The funcs the observers return are called in reverse order.
		worker.WithObserver(hook("a")), worker.WithObserver(hook("b")),
		worker.WithObserver(worker.OutcomeFunc(func(o worker.Outcome) { record("observer 2 %s", o.Status); settled.Done() })),
		worker.WithObserver(worker.OutcomeFunc(func(o worker.Outcome) { record("observer 1 %s", o.Status) })))
	f.publish("flaky", nil)
	testkit.WaitDone(t, &settled, 30*time.Second, "two attempts")
	testkit.WaitFor(t, 10*time.Second, "the observers' ends", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) == 15
	})

	want := []string{
		"a start flaky#1 from " + f.exchange + "/flaky",
		"b start flaky#1 from " + f.exchange + "/flaky",
		"handler #1 marks a=true b=true",
		"publish retry marks a=true b=true",
		"observer 1 retried",
		"observer 2 retried",
		"b done retried",
		"a done retried",
		"a start flaky#2 from the delay cascade",
		"b start flaky#2 from the delay cascade",
		"handler #2 marks a=true b=true",
		"observer 1 succeeded",
		"observer 2 succeeded",
		"b done succeeded",
		"a done succeeded",
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestWithObserverRefusesNil(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	if _, err := worker.NewPool(f.conn, f.topo, worker.NewMux(), worker.WithObserver(nil)); err == nil {
		t.Error("NewPool accepted a nil observer")
	}
}

// connObserver observes a connection and the jobs of pools on it, as
// metrics and tracing do.
type connObserver struct {
	broker.ObserverFuncs
	job worker.ObserverFunc
}

func (o connObserver) Job(ctx context.Context, job *worker.Job, from worker.Source) (context.Context, func(worker.Outcome)) {
	return o.job(ctx, job, from)
}

// TestPoolUsesConnObserver checks that a pool uses the observer of its
// connection that also observes jobs, without being told, before those
// given with WithObserver.
func TestPoolUsesConnObserver(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	var mu sync.Mutex
	var events []string
	record := func(format string, args ...any) {
		mu.Lock()
		events = append(events, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	conn := connObserver{job: func(ctx context.Context, job *worker.Job, _ worker.Source) (context.Context, func(worker.Outcome)) {
		record("conn start %s", job.Type)
		return ctx, func(o worker.Outcome) { record("conn done %s", o.Status) }
	}}
	f.conn = testkit.Dial(t, "worker-test-observed", broker.WithObserver(conn))
	mux := worker.NewMux()
	mux.HandleFunc("ok", func(context.Context, *worker.Job) error { return nil })
	f.run(mux, worker.WithObserver(worker.ObserverFunc(func(ctx context.Context, job *worker.Job, _ worker.Source) (context.Context, func(worker.Outcome)) {
		record("pool start %s", job.Type)
		return ctx, func(o worker.Outcome) { record("pool done %s", o.Status) }
	})))
	f.publish("ok", nil)
	want := []string{"conn start ok", "pool start ok", "pool done succeeded", "conn done succeeded"}
	testkit.WaitFor(t, 30*time.Second, "the job observed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) >= len(want)
	})
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// syncBuffer is a bytes.Buffer safe for the pool's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log lines written so far.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// TestJobLogFields checks that each line about a job carries the job's
// fields, the correlation and trace ids when it has them, at debug level,
// and the lifecycle at info.
func TestJobLogFields(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	var buf syncBuffer
	log := zerolog.New(&buf).Level(zerolog.DebugLevel)
	var settled sync.WaitGroup
	settled.Add(3) // ok, flaky twice
	mux := worker.NewMux()
	mux.HandleFunc("ok", func(context.Context, *worker.Job) error { return nil })
	mux.HandleFunc("flaky", func(_ context.Context, job *worker.Job) error {
		if job.Attempt == 1 {
			return errors.New("once")
		}
		return nil
	})
	stop := f.run(mux, worker.WithLogger(log), worker.WithObserver(worker.OutcomeFunc(func(worker.Outcome) { settled.Done() })))

	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := brokertest.Context(t, 30*time.Second)
	traced, plain := brokertest.JobID(t), brokertest.JobID(t)
	if err := f.pub.Publish(ctx, broker.Job{ID: traced, Type: "ok", CorrelationID: "corr-1", Headers: map[string]any{"traceparent": traceparent}}); err != nil {
		t.Fatal(err)
	}
	if err := f.pub.Publish(ctx, broker.Job{ID: plain, Type: "flaky"}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitDone(t, &settled, 30*time.Second, "three deliveries")
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	type line struct {
		Level, Message, Queue, JobID, JobType string
		Attempt                               float64
		CorrelationID, TraceID                string
	}
	var got []line
	var lifecycle []string
	for _, m := range buf.lines(t) {
		str := func(k string) string { s, _ := m[k].(string); return s }
		if _, ok := m["job_id"]; !ok {
			if str("level") == "info" {
				lifecycle = append(lifecycle, str("message"))
			}
			continue
		}
		attempt, _ := m["attempt"].(float64)
		got = append(got, line{str("level"), str("message"), str("queue"), str("job_id"), str("job_type"), attempt, str("correlation_id"), str("trace_id")})
	}
	// The jobs ran concurrently: order their lines by job, then attempt.
	sort.SliceStable(got, func(i, j int) bool {
		if got[i].JobType != got[j].JobType {
			return got[i].JobType < got[j].JobType
		}
		return got[i].Attempt < got[j].Attempt
	})
	q := f.queue
	want := []line{
		{"debug", "worker: job failed; retrying", q, plain, "flaky", 1, "", ""},
		{"debug", "worker: job done", q, plain, "flaky", 2, "", ""},
		{"debug", "worker: job done", q, traced, "ok", 1, "corr-1", "4bf92f3577b34da6a3ce929d0e0e4736"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("job log lines (-want +got):\n%s", diff)
	}
	for _, msg := range []string{"worker: pool running", "worker: pool stopped"} {
		if !slices.Contains(lifecycle, msg) {
			t.Errorf("no %q at info among %q", msg, lifecycle)
		}
	}
}
