package worker

import (
	"context"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
)

// correlationID is the correlation id env's reply carries: its own, else,
// for a request, its id.
func correlationID(env *broker.Envelope) string {
	if env.CorrelationID == "" && env.ReplyTo != "" {
		return env.ID
	}
	return env.CorrelationID
}

// process handles one delivery and settles it: decide, before the
// handler and again after it, then settle (verdict.go, settle.go). ctx is
// the pool's job context: it ends at the shutdown deadline. ack settles
// d: d itself, but for tests. w keeps the handler timeout for the
// goroutine calling process. waited is how long d waited for its rate
// limits; gen the generation of q's circuit breaker it was admitted in.
func (p *Pool) process(ctx context.Context, w *watchdog, q *queueRun, d *broker.Delivery, ack acknowledger, waited time.Duration, gen uint64) {
	f := p.facts(q, d)
	// The job and its handler's ctx in one allocation.
	run := new(struct {
		job  Job
		hctx handlerCtx
	})
	job, out := &run.job, p.initJob(&run.job, q, d, f)
	out.RateWait = waited
	// The observers' ctx (a span's) is the parent of everything the
	// delivery leads to: the handler, and the publishes of its retry, dead
	// letter or reply.
	var buf [observedJobs]func(Outcome)
	ctx, dones := p.take(ctx, job, d, buf[:0])
	defer func() { told(dones, out) }()

	// One reading of the clock for the decision, the handler's start and
	// its deadline, and one for its end and the decision after it:
	// reading it is a good part of the pool's cost per job.
	f.now = p.opts.now()
	start := f.now

	// Messages that cannot be jobs, bodies over the limit, expired
	// requests and suspects are settled before any handler or decoder
	// sees them.
	if v := decide(f); v.kind != verdictRun {
		p.settle(ctx, q, d, ack, v, &out)
		p.breakerRecord(q, gen, f) // a trial that ran nothing gives its turn back
		return
	}

	hctx := &run.hctx
	hctx.init(ctx, start.Add(q.cfg.handlerTimeout))
	// What the handler publishes carries the job's correlation id: the
	// conversation's, else the job's own id, which starts one.
	if hctx.corr = job.CorrelationID; hctx.corr == "" {
		hctx.corr = job.ID
	}
	w.start(hctx)
	err := p.call(hctx, job)
	end := p.opts.now()
	out.Duration = end.Sub(start)
	f.ran, f.err, f.result = true, err, job.result
	f.timedOut = hctx.Err() == context.DeadlineExceeded
	w.end(hctx)
	f.shutdown = ctx.Err() != nil
	f.now = end
	// The breaker first: when this outcome opens it, the consumer is
	// cancelled before the job is retried or returned to the queue, so
	// this pool does not take it again at once.
	p.breakerRecord(q, gen, f)
	p.settle(ctx, q, d, ack, decide(f), &out)
}

// newJob returns the job of d as its handler sees it, and its outcome so
// far.
func (p *Pool) newJob(q *queueRun, d *broker.Delivery, f facts) (*Job, Outcome) {
	job := new(Job)
	return job, p.initJob(job, q, d, f)
}

// initJob makes job, a zero Job, the job of d, and returns its outcome so
// far.
func (p *Pool) initJob(job *Job, q *queueRun, d *broker.Delivery, f facts) Outcome {
	env := d.Envelope
	out := Outcome{Queue: q.queue.Name, JobID: env.ID, JobType: env.Type, Attempt: max(env.Attempt, 1)}
	*job = Job{
		ID:            env.ID,
		Type:          env.Type,
		Version:       env.Version,
		Queue:         q.queue.Name,
		Attempt:       out.Attempt,
		MaxAttempts:   f.policy.MaxAttempts,
		CorrelationID: correlationID(env),
		ReplyTo:       env.ReplyTo,
		Headers:       env.Headers,
		PublishedAt:   env.Timestamp,
		Redelivered:   d.Redelivered || d.Queue == q.queue.QuarantineQueue,
		Envelope:      env,
		limits:        p.opts.limits,
	}
	return out
}

// facts returns what decide knows of d before its handler runs, but the
// time: the caller reads the clock just before it decides.
func (p *Pool) facts(q *queueRun, d *broker.Delivery) facts {
	f := facts{
		d:          d,
		work:       q.queue,
		maxBytes:   maxBytes(p.opts.limits),
		panics:     p.opts.panics,
		crashLimit: p.opts.crashLimit,
		host:       p.opts.host,
		random:     rand.Float64(),
		breaker:    q.br != nil,
	}
	if d.Err == nil {
		// Not for a malformed message: its type may be anything.
		f.policy = q.retryPolicy(d.Envelope.Type)
	}
	return f
}

func maxBytes(l broker.Limits) int {
	if l.MaxBytes <= 0 {
		return broker.DefaultMaxBytes
	}
	return l.MaxBytes
}

// call runs the handler, after validating the job's payload
// (WithValidator), turning a panic into a *PanicError.
func (p *Pool) call(ctx context.Context, job *Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	if p.valid != nil {
		if err := p.valid.check(job); err != nil {
			return err
		}
	}
	return p.handler.HandleJob(ctx, job)
}

// jobFields adds to e the fields every line about a job carries: job_id,
// job_type, attempt, correlation_id when set, trace_id when the job has a
// trace context (the queue is on the queue's logger already). Nothing is
// done, and nothing allocated, when e's level is disabled.
func jobFields(e *zerolog.Event, env *broker.Envelope, attempt int) *zerolog.Event {
	if !e.Enabled() {
		return e
	}
	e = e.Str(logfield.JobID, env.ID).Str(logfield.JobType, env.Type).Int(logfield.Attempt, attempt)
	if corr := correlationID(env); corr != "" {
		e = e.Str(logfield.CorrelationID, corr)
	}
	if id := traceID(env.Traceparent); id != "" {
		e = e.Str(logfield.TraceID, id)
	}
	return e
}

// traceID returns the trace id of a W3C traceparent
// ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>"), "" when it
// has none that is valid.
func traceID(traceparent string) string {
	const idEnd = 3 + 32
	if len(traceparent) < 55 || traceparent[2] != '-' || traceparent[idEnd] != '-' || traceparent[:2] == "ff" {
		return ""
	}
	if len(traceparent) > 55 && (traceparent[:2] == "00" || traceparent[55] != '-') {
		return "" // version 00 has exactly four fields; later ones may add more
	}
	id := traceparent[3:idEnd]
	zero := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c == '0':
		case '1' <= c && c <= '9', 'a' <= c && c <= 'f':
			zero = false
		default:
			return ""
		}
	}
	if zero {
		return ""
	}
	return id
}
