package worker

import (
	"context"
	"errors"

	"github.com/warrenmq/warren/broker"
)

// Observer sees every delivery a pool takes, for metrics and tracing.
//
// Job is called as the pool takes a delivery, before anything is done with
// it (a malformed or expired one included, and one returned to its queue
// unhandled at shutdown). It returns the ctx the rest of the delivery's
// handling runs with, which must be derived from ctx (nil keeps ctx): the
// handler's ctx, and that of the publishes of its retry, dead letter or
// reply, so a span it starts is their parent. The func it returns, which
// may be nil, is called once the delivery is settled, with its outcome
// (whose Status is zero when the delivery had been settled already, its
// channel lost), from the goroutine that handled it: keep it quick. job
// is the job as its handler sees it (a malformed delivery's has what could
// be read); do not keep it after the func is called.
//
// A pool uses the observers of its connection that are also Observers
// (broker.WithObserver given to broker.Dial, such as *metrics.Metrics and
// *tracing.Tracing) without being told; WithObserver adds more.
type Observer interface {
	Job(ctx context.Context, job *Job, from Source) (context.Context, func(Outcome))
}

// Source is where a delivery came from, as an Observer is told.
type Source struct {
	// Exchange and RoutingKey are what the message was last published
	// with: for a retry, the delay cascade's. The empty exchange is the
	// default exchange.
	Exchange   string
	RoutingKey string
}

// ObserverFunc is an Observer made of a func.
type ObserverFunc func(ctx context.Context, job *Job, from Source) (context.Context, func(Outcome))

// Job calls f.
func (f ObserverFunc) Job(ctx context.Context, job *Job, from Source) (context.Context, func(Outcome)) {
	return f(ctx, job, from)
}

// OutcomeFunc is an Observer that is told only the outcome of each
// delivery the pool settles (not of one settled already), for progress
// and tests.
type OutcomeFunc func(Outcome)

// Job returns ctx, and a func calling f with the outcome.
func (f OutcomeFunc) Job(ctx context.Context, _ *Job, _ Source) (context.Context, func(Outcome)) {
	return ctx, func(o Outcome) {
		if o.Status != 0 {
			f(o)
		}
	}
}

// WithObserver adds o to the pool's observers, after those of its
// connection (see Observer). It may be given several times: the
// observers' Job is called in order, each with the ctx the one before
// returned, and the funcs they return in reverse order.
func WithObserver(o Observer) Option {
	return func(opts *options) error {
		if o == nil {
			return errors.New("worker: WithObserver: nil observer")
		}
		opts.observers = append(opts.observers, o)
		return nil
	}
}

// observersOf returns the observers of a pool on conn given opts: the
// connection's that observe jobs, then those given with WithObserver.
func observersOf(conn *broker.Conn, given []Observer) []Observer {
	var all []Observer
	for _, o := range conn.Observers() {
		if jo, ok := o.(Observer); ok {
			all = append(all, jo)
		}
	}
	return append(all, given...)
}

// take calls the pool's observers for job, taken from d, and returns the
// ctx to handle it with, and dones with the funcs they returned appended:
// call told with it once, with the outcome. dones is the caller's, often
// on its stack, so that observing a job allocates nothing of the pool's.
func (p *Pool) take(ctx context.Context, job *Job, d *broker.Delivery, dones []func(Outcome)) (context.Context, []func(Outcome)) {
	if len(p.observers) == 0 {
		return ctx, dones
	}
	from := Source{Exchange: d.Exchange, RoutingKey: d.RoutingKey}
	for _, o := range p.observers {
		next, done := o.Job(ctx, job, from)
		if next != nil {
			ctx = next
		}
		if done != nil {
			dones = append(dones, done)
		}
	}
	return ctx, dones
}

// told calls the funcs take returned with out, in reverse order.
func told(dones []func(Outcome), out Outcome) {
	for i := len(dones) - 1; i >= 0; i-- {
		dones[i](out)
	}
}

// observedJobs is how many observers' funcs a job's handling keeps
// without allocating: metrics and tracing.
const observedJobs = 2

// observed settles d, whose handler does not run, under the pool's
// observers as process does: a delivery returned to its queue at shutdown,
// a quarantined job whose crash is counted. settle completes out.
func (p *Pool) observed(ctx context.Context, q *queueRun, d *broker.Delivery, settle func(ctx context.Context, f facts, out *Outcome)) {
	f := p.facts(q, d)
	job, out := p.newJob(q, d, f)
	var buf [observedJobs]func(Outcome)
	ctx, dones := p.take(ctx, job, d, buf[:0])
	f.now = p.opts.now()
	settle(ctx, f, &out)
	told(dones, out)
}
