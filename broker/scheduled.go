package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/topology"
)

// Scheduled jobs: a job published now that reaches its work queues later.
// The delay is held by the broker in the delay cascade (see
// topology.DelayRoute), not by a timer in this process, so it survives the
// producer's exit and is honoured to the second however many other delays
// are waiting.

// QueueRouter lists the work queues jobs of a type reach. A scheduled job
// (At, In) needs it: the delay cascade delivers to queues by name, not
// through the exchange a route names. *topology.Topology is one; give it to
// NewPublisher with WithRouter.
type QueueRouter interface {
	QueuesFor(jobType string) ([]string, error)
}

// A scheduled job (At, In) reaches each of its work queues at its time,
// to the second (rounded up); a delay of zero or less delivers it now.
//
// The queues are the one named with ToQueue, or else those the job type's
// route reaches, which the publisher's router (WithRouter) must list: it
// must be a QueueRouter, such as *topology.Topology. To names an exchange
// and is refused, as a delay targets queues; To("", queue), the default
// exchange, names a queue and is taken as ToQueue(queue). The queues must
// be work queues of a topology applied to the broker: the cascade delivers
// to those only, and keeps a job for any other queue in
// warren.delay.unroutable. A queue named with ToQueue is checked to exist
// first, which costs a round trip.
//
// Before anything is published, scheduling fails with an error wrapping
// ErrInvalidJob (the job), ErrNoRoute (no queue known for the job type, in a
// *PublishError), ErrNoQueue (the ToQueue queue does not exist) or
// topology.ErrDelayTooLong (a delay over topology.MaxDelay), or when To
// names an exchange.
//
// A job for several queues is published once per queue, with the same ID,
// and the confirms are awaited together. Publish returns nil only when
// every copy was confirmed. Otherwise it returns, for each queue whose copy
// failed, a *PublishError naming the queue (errors.Join of them when more
// than one failed), with the guarantees of Publish: the copy may or may not
// be stored, and the copies for the other queues are. Publishing the job
// again with the same ID is safe, as handlers de-duplicate on it: to all its
// queues, or to each failed one with ToQueue.

// publishDelayed publishes env into the delay cascade for each of its
// queues, with the confirms pipelined, and waits for all of them.
func (p *Publisher) publishDelayed(ctx context.Context, env *Envelope, o publishOptions) error {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("broker: schedule job %s (type %q): "+format, append([]any{env.ID, env.Type}, args...)...)
	}
	d := o.delay(time.Now())
	t := o.target
	var queues []string
	switch {
	case t.explicit && t.exchange != "":
		return refuse("To(%q, %q) names an exchange, but a delayed job goes to queues; name its queue with ToQueue instead", t.exchange, t.key)
	case t.explicit:
		// ToQueue, or To with the default exchange, which names a queue
		// too.
		if t.key == "" {
			return refuse("ToQueue: the queue name is empty; name a work queue")
		}
		queues = []string{t.key}
	default:
		var err error
		if queues, err = p.routeQueues(env.Type); err != nil {
			return &PublishError{JobID: env.ID, JobType: env.Type, Err: err}
		}
	}
	// Every route before anything is published: a delay too long for one
	// queue is too long for all.
	targets := make([]publishTarget, len(queues))
	for i, q := range queues {
		exchange, key, err := topology.DelayRoute(q, d)
		if err != nil {
			return refuse("%w; schedule it at most topology.MaxDelay ahead", err)
		}
		if len(key) > maxShortString {
			return refuse("queue name %q is too long for the delay routing key (at most %d bytes); name a work queue of the topology",
				q, maxShortString-2*topology.DelayLevels)
		}
		targets[i] = publishTarget{exchange: exchange, key: key, explicit: true}
	}
	if t.explicit {
		if err := p.checkQueue(ctx, queues[0]); err != nil {
			return refuse("%w", err)
		}
	}

	// Pipelined: every copy is sent before any confirm is awaited.
	sent := make([]*inflight, len(queues))
	var errs []error
	for i, target := range targets {
		f, err := p.s.start(ctx, KindJob, env, target)
		if err != nil {
			errs = append(errs, forQueue(err, queues[i]))
			continue
		}
		sent[i] = f
	}
	for i, f := range sent {
		if f == nil {
			continue
		}
		if err := f.wait(ctx); err != nil {
			errs = append(errs, forQueue(err, queues[i]))
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// forQueue adds the queue's name to the reason of a failed copy of a job.
func forQueue(err error, queue string) error {
	var pe *PublishError
	if errors.As(err, &pe) {
		pe.Err = fmt.Errorf("copy for queue %q: %w", queue, pe.Err)
	}
	return err
}

// routeQueues returns the queues the publisher's router says jobs of
// jobType reach.
func (p *Publisher) routeQueues(jobType string) ([]string, error) {
	qr, ok := p.s.pipe.router.(QueueRouter)
	if !ok {
		return nil, &noRouteError{msg: fmt.Sprintf(
			"no queue for job type %q: a delayed job goes to queues, and the publisher has no router that lists them; "+
				"name the queue with ToQueue, or create the publisher WithRouter(topology)", jobType)}
	}
	queues, err := qr.QueuesFor(jobType)
	if err != nil {
		return nil, &noRouteError{msg: fmt.Sprintf("no queue for job type %q: %v; ToQueue names the queue explicitly", jobType, err), cause: err}
	}
	if len(queues) == 0 {
		return nil, &noRouteError{msg: fmt.Sprintf(
			"no queue for job type %q: its route reaches no queue; bind a queue to its exchange, or name the queue with ToQueue", jobType)}
	}
	return queues, nil
}

// checkQueue makes sure a queue named with ToQueue exists: the delay cascade
// would keep a delayed job for a missing queue in warren.delay.unroutable,
// without a word.
func (p *Publisher) checkQueue(ctx context.Context, queue string) error {
	d := NewDeclarer(p.s.pipe.conn)
	defer d.Close(context.WithoutCancel(ctx))
	ok, err := d.QueueExists(ctx, queue)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: no queue %q", ErrNoQueue, queue)
	}
	return nil
}

// *topology.Topology routes both ways.
var (
	_ Router      = (*topology.Topology)(nil)
	_ QueueRouter = (*topology.Topology)(nil)
)
