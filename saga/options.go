package saga

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/worker"
)

// DefaultTimeoutInterval is how often a coordinator looks for sagas past
// their step's deadline, unless told otherwise.
const DefaultTimeoutInterval = time.Second

// Option configures NewCoordinator. Options can fail: a bad value is an
// error from NewCoordinator.
type Option func(*options) error

type options struct {
	replyQueue      string
	log             zerolog.Logger
	relay           bool
	relayOpts       []outbox.Option
	poolOpts        []worker.QueueOption
	timeoutInterval time.Duration
	hook            func(stage string) // tests: see export_test.go
}

// WithReplyQueue names the durable queue the coordinator's commands name as
// reply_to and the coordinator consumes. Required. Declare it in the
// topology (no binding needed: replies come through the default exchange),
// e.g. `orders.saga.replies: {type: quorum}`; every coordinator of the same
// sagas uses the same queue.
func WithReplyQueue(name string) Option {
	return func(o *options) error {
		if name == "" {
			return fmt.Errorf("saga: WithReplyQueue: empty queue name")
		}
		o.replyQueue = name
		return nil
	}
}

// WithLogger sets the coordinator's logger (default: none). Each reply
// and command is logged at Debug, timeouts and ignored replies at Info,
// a saga left failed at Error.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}

// WithoutRelay makes Run consume replies and watch timeouts without running
// an outbox relay: for a service that runs its relays elsewhere (warren
// outbox relay, or another outbox.Relay on the same database). Without any
// relay, commands are written but never sent.
func WithoutRelay() Option {
	return func(o *options) error {
		o.relay = false
		return nil
	}
}

// WithRelayOptions configures the coordinator's outbox relay.
func WithRelayOptions(opts ...outbox.Option) Option {
	return func(o *options) error {
		o.relayOpts = append(o.relayOpts, opts...)
		return nil
	}
}

// WithReplyQueueOptions configures the consumer of the reply queue, e.g.
// worker.Concurrency.
func WithReplyQueueOptions(opts ...worker.QueueOption) Option {
	return func(o *options) error {
		o.poolOpts = append(o.poolOpts, opts...)
		return nil
	}
}

// WithTimeoutInterval sets how often the coordinator looks for sagas past
// their step's deadline (default DefaultTimeoutInterval): a timeout is
// noticed up to this late.
func WithTimeoutInterval(d time.Duration) Option {
	return func(o *options) error {
		if d < 10*time.Millisecond || d > time.Hour {
			return fmt.Errorf("saga: WithTimeoutInterval(%s): must be from 10ms to 1h", d)
		}
		o.timeoutInterval = d
		return nil
	}
}
