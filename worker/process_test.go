package worker

import (
	"context"
	"errors"
	"testing"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/contract"
	"github.com/warrenmq/warren/internal/contracttest"
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

func benchInvoiceJob(tb testing.TB) (*contract.Set, *broker.Delivery) {
	tb.Helper()
	set := contracttest.Parse(tb, contracttest.Invoices)
	env, err := broker.NewEnvelope(broker.Job{Type: contracttest.InvoiceType, Version: 1, Payload: contracttest.NewInvoice()})
	if err != nil {
		tb.Fatal(err)
	}
	if err := set.Validate(env.Type, env.Version, decodeAny(tb, env)); err != nil {
		tb.Fatalf("the benchmark's payload is invalid: %v", err)
	}
	return set, &broker.Delivery{Envelope: env, Queue: "jobs", Exchange: "jobs", RoutingKey: "job"}
}

func decodeAny(tb testing.TB, env *broker.Envelope) any {
	var v any
	if err := env.Decode(&v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// BenchmarkReceiptValidation is what WithValidator adds on receipt, for a
// payload of ten fields: "decode" is the decode into an interface value
// alone, "decode+validate" that and the validation (what WithValidator
// does), "typed" the decode into the handler's struct (what Typed does,
// with or without a validator).
func BenchmarkReceiptValidation(b *testing.B) {
	set, d := benchInvoiceJob(b)
	env := d.Envelope
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v any
			if err := env.Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode+validate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v any
			if err := env.Decode(&v); err != nil {
				b.Fatal(err)
			}
			if err := set.Validate(env.Type, env.Version, v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("typed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v contracttest.Invoice
			if err := env.Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkProcessValidator is BenchmarkProcess with a typed handler of
// the ten-field payload, without and with WithValidator.
func BenchmarkProcessValidator(b *testing.B) {
	typed := Typed(func(context.Context, *Job, contracttest.Invoice) error { return nil })
	for _, validate := range []bool{false, true} {
		name := "no validator"
		if validate {
			name = "validator"
		}
		b.Run(name, func(b *testing.B) {
			set, d := benchInvoiceJob(b)
			p, q := benchPool(b, typed)
			if validate {
				p.valid = &validation{v: set, log: zerolog.Nop()}
			}
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

// TestValidationSkipsErrorReplies: an error reply carries no payload (its
// warren-error says why), so a validating pool passes it on unchecked,
// while a result reply is checked like any job.
func TestValidationSkipsErrorReplies(t *testing.T) {
	set, err := contract.Parse("contracts.yaml", []byte("types:\n  a.reply:\n    versions:\n      1: {schema: {type: object, required: [ok]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := &validation{v: set, log: zerolog.Nop()}
	request := &broker.Envelope{ID: "r1", Type: "a", ReplyTo: "replies"}
	failed, err := broker.NewReply(request, nil, &broker.Failure{Error: "card declined", Class: ClassPermanent})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.check(&Job{Type: failed.Type, Envelope: failed}); err != nil {
		t.Errorf("an error reply was checked: %v", err)
	}
	wrong, err := broker.NewReply(request, map[string]any{"nope": 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.check(&Job{Type: wrong.Type, Envelope: wrong}); !errors.Is(err, broker.ErrInvalidPayload) {
		t.Errorf("a result reply missing a required field: %v, want ErrInvalidPayload", err)
	}
}
