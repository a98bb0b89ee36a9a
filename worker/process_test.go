package worker

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
)

// nopAck settles anything, any number of times: the benchmarks hand the
// same delivery to the pool again and again.
type nopAck struct{}

func (nopAck) Ack() error     { return nil }
func (nopAck) Requeue() error { return nil }
func (nopAck) Reject() error  { return nil }

// benchPool returns a pool running h on the queue "jobs", as NewPool
// builds it, without a broker: settling goes to nopAck, publishing to
// nowhere.
func benchPool(tb testing.TB, h Handler, observers ...Observer) (*Pool, *queueRun) {
	tb.Helper()
	topo, err := topology.Parse("bench.yaml", []byte(`version: 1
exchanges:
  jobs: {type: direct}
queues:
  jobs: {}
bindings:
  - {exchange: jobs, queue: jobs, routing_key: job}
routes:
  job: {exchange: jobs}
`))
	if err != nil {
		tb.Fatal(err)
	}
	work, ok := topo.Queue("jobs")
	if !ok {
		tb.Fatal("no queue jobs in the topology")
	}
	o := defaultOptions()
	qo := queueOptions{name: work.Name, concurrency: 1, prefetch: 2, handlerTimeout: o.handlerTimeout}
	p := &Pool{topo: topo, handler: h, opts: o, observers: observers, send: &fakeSender{log: &settleLog{}}}
	q := &queueRun{cfg: qo, queue: work, topo: topo, log: zerolog.Nop(), slots: make(chan struct{}, 1), kick: make(chan struct{}, 1)}
	return p, q
}

// benchDelivery is a first attempt of a job as a worker receives it.
func benchDelivery(tb testing.TB) *broker.Delivery {
	tb.Helper()
	env, err := broker.NewEnvelope(broker.Job{Type: "invoice.render", Payload: map[string]any{"seq": 1, "data": "0123456789abcdef"}})
	if err != nil {
		tb.Fatal(err)
	}
	return &broker.Delivery{Envelope: env, Queue: "jobs", Exchange: "jobs", RoutingKey: "job"}
}

// BenchmarkProcess is the pool's own cost per job, from a delivery taken
// to its ack, the handler doing nothing: what allocs/op counts is the
// pool's (the broker's side of a delivery is broker's BenchmarkDelivery).
func BenchmarkProcess(b *testing.B) {
	done := HandlerFunc(func(context.Context, *Job) error { return nil })
	cases := []struct {
		name      string
		observers []Observer
	}{
		{"no observer", nil},
		{"an outcome observer", []Observer{OutcomeFunc(func(Outcome) {})}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p, q := benchPool(b, done, c.observers...)
			d := benchDelivery(b)
			// As Run's job context: cancelled at the shutdown deadline.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var w watchdog
			defer w.stop()
			b.ReportAllocs()
			for b.Loop() {
				p.process(ctx, &w, q, d, nopAck{}, 0, 0)
			}
		})
	}
}

// TestProcessAllocs holds the pool's allocations per job to what
// BenchmarkProcess measures: the job and its handler's ctx, in one.
func TestProcessAllocs(t *testing.T) {
	done := HandlerFunc(func(context.Context, *Job) error { return nil })
	p, q := benchPool(t, done)
	d := benchDelivery(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var w watchdog
	defer w.stop()
	if n := testing.AllocsPerRun(100, func() { p.process(ctx, &w, q, d, nopAck{}, 0, 0) }); n > 1 {
		t.Errorf("%v allocations per job, want 1", n)
	}
}
