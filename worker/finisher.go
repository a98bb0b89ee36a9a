package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
)

// Finisher is told of each job that reached its end in a pool — handled,
// dead-lettered, or rejected for want of a dead-letter queue — after what
// must outlive the delivery is stored (its dead letter, its reply) and
// before the delivery is acked. It is where work that must happen once a
// job is over, and must not be lost with a crash, goes: counting a
// batch's outcomes, continuing a workflow.
//
// An error (or a panic) leaves the delivery unacked: it is returned to its
// queue after a pause and runs again, and the Finisher hears of it again.
// A worker that dies between a Finisher's return and the ack gives the
// same. So a Finisher must be idempotent, keyed on the job's id.
//
// Unlike an Observer, which hears of every delivery once it is settled,
// best effort, a Finisher is part of the settlement.
type Finisher interface {
	FinishJob(ctx context.Context, job *Job, end End) error
}

// FinisherFunc makes a Finisher of a func.
type FinisherFunc func(ctx context.Context, job *Job, end End) error

// FinishJob calls f.
func (f FinisherFunc) FinishJob(ctx context.Context, job *Job, end End) error {
	return f(ctx, job, end)
}

// End is how a job ended.
type End struct {
	// Status is Succeeded, DeadLettered or Rejected.
	Status Status
	// Class and Err are the failure, when the job failed for good; ""
	// and nil when it succeeded.
	Class string
	Err   error
	// Result is what the handler set with Job.SetResult, nil otherwise.
	Result any
}

// WithFinisher adds a Finisher to the pool. Several are called in the
// order given; the first error stops the others (they hear of the job
// again when it runs again).
func WithFinisher(f Finisher) Option {
	return func(o *options) error {
		if f == nil {
			return errors.New("worker: WithFinisher: nil Finisher")
		}
		o.finishers = append(o.finishers, f)
		return nil
	}
}

// finish tells the pool's finishers that d's job ended with status and
// reports whether they all returned nil. When one fails, d has been
// returned to its queue (after the settle pause), and out says so.
func (p *Pool) finish(ctx context.Context, q *queueRun, d *broker.Delivery, ack acknowledger, v verdict, out *Outcome, status Status) bool {
	if err := p.continueChain(ctx, q, d, v, status); err != nil {
		switch {
		case errors.Is(err, errChainRetry) || ctx.Err() != nil:
			jobFields(q.log.Error().Err(err), d.Envelope, out.Attempt).Msg("worker: could not continue the job's chain; returning the job to its queue to run again")
			out.Class, out.Err = v.class, errors.Join(v.cause, err)
			p.pauseThenRequeue(ctx, q, d, ack, out)
			return false
		case status == Succeeded:
			// It never will: the job is parked, its slip with it, for an
			// operator to fix the topology and replay it.
			jobFields(q.log.Error().Err(err), d.Envelope, out.Attempt).Msg("worker: the job's chain cannot go on; dead-lettering the job")
			f := p.facts(q, d)
			f.now = p.opts.now()
			p.settle(ctx, q, d, ack, f.deadLetter(ClassChain, err), out)
			return false
		default:
			jobFields(q.log.Error().Err(err), d.Envelope, out.Attempt).
				Msg("worker: a chain's step failed for good and its compensations cannot start; the step is parked with its slip: fix the cause and replay it")
		}
	}
	if len(p.opts.finishers) == 0 {
		return true
	}
	job, _ := p.newJob(q, d, p.facts(q, d))
	end := End{Status: status, Class: v.class, Err: v.cause, Result: v.result}
	for _, f := range p.opts.finishers {
		if err := callFinisher(ctx, f, job, end); err != nil {
			jobFields(q.log.Error().Err(err), d.Envelope, out.Attempt).Stringer(logfield.Status, status).
				Msg("worker: a finisher failed; returning the job to its queue to run again")
			out.Class, out.Err = v.class, errors.Join(v.cause, err)
			p.pauseThenRequeue(ctx, q, d, ack, out)
			return false
		}
	}
	return true
}

func callFinisher(ctx context.Context, f Finisher, job *Job, end End) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("worker: finisher panicked: %v", r)
		}
	}()
	return f.FinishJob(ctx, job, end)
}
