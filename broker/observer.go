package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Observer sees what a Conn and everything built on it do, for metrics
// and tracing, without the broker package knowing either. Give it to Dial
// with WithObserver; the Publishers, Senders and Callers on the Conn call
// it for every message they publish from an envelope, and the Conn for
// each change of its state. Packages built on a Conn find it there
// (Conn.Observers): a worker pool uses an Observer that also observes
// jobs (worker.Observer) without being told.
//
// Its methods run on the publishing goroutine, or the Conn's supervising
// one: keep them quick, do not publish from them, and do not call Close.
type Observer interface {
	// Publish is called for every message a Publisher, Sender or Caller
	// publishes from an envelope — a job, a retry, a dead letter, a
	// quarantine move, a replay, a reply, a call's request (info.Kind says
	// which) — once its destination is known and before the message is
	// built from env, so that it may set env.Traceparent and
	// env.Tracestate. It returns a ctx derived from ctx, passed to the next
	// observer (nil keeps ctx), and a func, which may be nil, called once
	// with the outcome:
	//
	//   - for a publish, nil once the broker confirmed it (or, for a reply
	//     to a caller's own address, once written), else the publish's
	//     error; for Sender.Send, when Confirmation.Wait returns (call it,
	//     or the func is never called);
	//   - for a call's request (KindRequest), the error Caller.Call
	//     returns: nil when a reply came and the job succeeded, a
	//     *RemoteError, an error wrapping ErrReplyTimeout, or another.
	//
	// A publish refused before it has a destination (an invalid job or
	// option, a job type without a route) returns its error without
	// calling Publish. Sender.PublishMessage, which moves messages as they
	// are, calls none.
	Publish(ctx context.Context, info PublishInfo, env *Envelope) (context.Context, func(err error))
	// Connection is told of each change of the Conn's state: Disconnected
	// when its connection is lost, Connected when another is open, Closed
	// at the end.
	Connection(StateChange)
}

// WithObserver adds o to the Conn's observers. It may be given several
// times: the observers are called in order, each Publish with the ctx the
// one before returned, and the funcs they return in reverse order.
func WithObserver(o Observer) Option {
	return func(opts *options) error {
		if o == nil {
			return errors.New("broker: WithObserver: nil observer")
		}
		opts.observers = append(opts.observers, o)
		return nil
	}
}

// Observers returns the observers the Conn was dialled with, in order, for
// packages built on a Conn to find those of their own kind (a worker pool
// uses those that also observe jobs).
func (c *Conn) Observers() []Observer { return slices.Clone(c.opts.observers) }

// PublishKind says why a message is published.
type PublishKind uint8

// Publish kinds. A Publisher's jobs are KindJob, a Sender's Reply
// KindReply, a Caller's requests KindRequest; whoever passes a job along
// with Sender.Send or Sender.Publish says which kind it is.
const (
	// KindJob is a producer's job: Publisher.Publish and PublishBatch.
	KindJob PublishKind = iota + 1
	// KindRetry is a failed job republished into the delay cascade for its
	// next attempt (by a worker pool).
	KindRetry
	// KindDeadLetter is a job parked in its dead-letter queue (by a worker
	// pool).
	KindDeadLetter
	// KindReply is the reply to a request: Sender.Reply.
	KindReply
	// KindReplay is a dead-lettered job moved back by an operator.
	KindReplay
	// KindRequest is a Caller's request: the outcome its observers see is
	// how the call ended.
	KindRequest
	// KindQuarantine is a job moved to its queue's quarantine (by a worker
	// pool): it came back from a worker that died holding it, and runs
	// alone until its crashes are counted.
	KindQuarantine
)

// String returns the kind's name as metrics label it: "job", "retry",
// "dead_letter", "reply", "replay", "request", "quarantine".
func (k PublishKind) String() string {
	switch k {
	case KindJob:
		return "job"
	case KindRetry:
		return "retry"
	case KindDeadLetter:
		return "dead_letter"
	case KindReply:
		return "reply"
	case KindReplay:
		return "replay"
	case KindRequest:
		return "request"
	case KindQuarantine:
		return "quarantine"
	}
	return fmt.Sprintf("PublishKind(%d)", int(k))
}

// PublishInfo describes a publish to its observers. The job itself (id, type,
// correlation id, attempt, trace context) is the envelope given with it.
type PublishInfo struct {
	Kind PublishKind
	// Exchange and RoutingKey are where the message goes; the empty
	// exchange is the default exchange, which routes by queue name.
	Exchange   string
	RoutingKey string
	// Confirmed is set when the outcome given to the done func is the
	// broker's confirm; it is not for a reply written to a direct reply-to
	// address (done then reports that it was written) nor for a Caller's
	// request (done reports how the call ended).
	Confirmed bool
}

// publishFunc is an Observer's Publish, or observers' chained.
type publishFunc func(ctx context.Context, info PublishInfo, env *Envelope) (context.Context, func(error))

// chainPublish returns one func calling the observers' Publish in order,
// nil when there are none.
func chainPublish(observers []Observer) publishFunc {
	switch len(observers) {
	case 0:
		return nil
	case 1:
		return observers[0].Publish
	}
	hooks := make([]publishFunc, len(observers))
	for i, o := range observers {
		hooks[i] = o.Publish
	}
	return func(ctx context.Context, info PublishInfo, env *Envelope) (context.Context, func(error)) {
		dones := make([]func(error), 0, len(hooks))
		for _, h := range hooks {
			next, done := h(ctx, info, env)
			if next != nil {
				ctx = next
			}
			if done != nil {
				dones = append(dones, done)
			}
		}
		return ctx, func(err error) {
			for i := len(dones) - 1; i >= 0; i-- {
				dones[i](err)
			}
		}
	}
}

// ObserverFuncs is an Observer made of funcs, either of which may be nil
// (nothing is done then): for an application that watches one thing, such
// as the Conn's state, and for tests.
type ObserverFuncs struct {
	OnPublish    func(ctx context.Context, info PublishInfo, env *Envelope) (context.Context, func(err error))
	OnConnection func(StateChange)
}

// Publish calls f.OnPublish, if set.
func (f ObserverFuncs) Publish(ctx context.Context, info PublishInfo, env *Envelope) (context.Context, func(error)) {
	if f.OnPublish == nil {
		return ctx, nil
	}
	return f.OnPublish(ctx, info, env)
}

// Connection calls f.OnConnection, if set.
func (f ObserverFuncs) Connection(c StateChange) {
	if f.OnConnection != nil {
		f.OnConnection(c)
	}
}
