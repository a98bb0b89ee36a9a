package broker

import (
	"context"
	"errors"
	"fmt"
)

// Hooks let metrics and tracing see every publish and call without the
// broker package knowing either: a hook is called as a message is about to
// be built, and the func it returns is called once with the outcome. A
// Publisher or Caller without hooks pays one nil check per message.
//
// A hook is called before the message is built from its envelope, so it
// may change the envelope: a tracing hook writes its span's context into
// env.Traceparent and env.Tracestate. It runs on the publishing goroutine:
// keep it quick, and do not publish from it.

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
	// KindRequest is a Caller's request; only call hooks see it.
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

// PublishInfo describes a publish to its hooks. The job itself (id, type,
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

// PublishHook is called for every message a Publisher or Sender publishes
// from an envelope (Publisher.Publish and PublishBatch, Sender.Send,
// Sender.Publish and Sender.Reply), once its destination is known and
// before the message is built, so that it may set env.Traceparent and
// env.Tracestate. It returns a ctx derived from ctx, passed to the next
// hook (nil keeps ctx), and a func, which may be nil, that the Publisher
// or Sender calls once with the outcome: nil once confirmed (or written,
// for a direct reply), else the publish's error. For Sender.Send the
// outcome is known when Confirmation.Wait returns: call it, or the func is
// never called.
//
// A publish refused before it has a destination (an invalid job or
// option, a job type without a route) returns its error without calling
// the hooks. Sender.PublishMessage, which moves messages as they are,
// calls none.
type PublishHook func(ctx context.Context, info PublishInfo, env *Envelope) (context.Context, func(err error))

// CallHook is called by Caller.Call once the request's envelope and
// destination are known, before the request is built and sent (so that it
// may set env.Traceparent and env.Tracestate; info.Kind is KindRequest).
// It returns a ctx derived from ctx, passed to the next hook (nil keeps
// ctx), and a func, which may be nil, that Call calls once with the error
// it returns: nil when a reply came and the job succeeded, a *RemoteError,
// an error wrapping ErrReplyTimeout, or another error.
type CallHook func(ctx context.Context, info PublishInfo, request *Envelope) (context.Context, func(err error))

// WithPublishHook adds h to the hooks of the Publisher or Sender. It may be given
// several times: the hooks are called in order, each with the ctx the one
// before returned, and their done funcs in reverse order.
func WithPublishHook(h PublishHook) PublisherOption {
	return func(o *publisherOptions) error {
		if h == nil {
			return errors.New("broker: WithPublishHook: nil hook")
		}
		o.hooks = append(o.hooks, h)
		return nil
	}
}

// WithCallHook adds h to the hooks of the Caller. It may be given several
// times, with the order of WithPublishHook.
func WithCallHook(h CallHook) CallerOption {
	return func(o *callerOptions) error {
		if h == nil {
			return errors.New("broker: WithCallHook: nil hook")
		}
		o.hooks = append(o.hooks, h)
		return nil
	}
}

// chainHooks returns one hook calling hooks in order, nil when there are
// none.
func chainHooks[H ~func(context.Context, PublishInfo, *Envelope) (context.Context, func(error))](hooks []H) H {
	switch len(hooks) {
	case 0:
		return nil
	case 1:
		return hooks[0]
	}
	hooks = append([]H(nil), hooks...)
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
