// Failing fast: a Call to a queue nobody consumes fails at once instead
// of waiting out its deadline.

package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultConsumerCheck is how long a Caller with WithConsumerCheck(0)
// keeps what it learnt of a queue's consumers.
const DefaultConsumerCheck = time.Second

// WithConsumerCheck makes a Call fail at once when no worker consumes the
// queue its request goes to, instead of waiting for its deadline
// (ErrReplyTimeout); period is how long the Caller trusts what it learnt
// of a queue before it asks the broker again (0: DefaultConsumerCheck).
// Without it, a request waits in its queue for a worker until its
// deadline, which is what a caller wants while workers start or restart:
// so the check is not the default.
//
// Before it publishes a request, a Call checks the queue the request goes
// to with a passive queue.declare, which tells its consumer count: with
// none, it fails at once with an *UnavailableError wrapping
// ErrQueuePaused (warren queue pause), ErrBreakerOpen (the circuit
// breakers of the pools consuming it are open) or ErrNoConsumer. The
// answer, either way, is kept for the period given, so a busy caller adds
// one round trip per queue and period, not one per call; a consumer that
// leaves within the period is noticed at the next check (the calls
// meanwhile time out as before). The check needs the request's queue: a
// request sent to a queue (ToQueue, or To with the default exchange), or
// routed by a Router that tells its queues (a *topology.Topology does);
// other requests are sent unchecked.
func WithConsumerCheck(period time.Duration) CallerOption {
	return func(o *callerOptions) error {
		if period < 0 {
			return fmt.Errorf("broker: consumer check period %s is negative; give how long to keep a check's answer, or 0 for DefaultConsumerCheck", period)
		}
		if period == 0 {
			period = DefaultConsumerCheck
		}
		o.checkPeriod = period
		return nil
	}
}

// Why a queue cannot take a request now, wrapped by *UnavailableError.
var (
	// ErrNoConsumer: no worker consumes the queue. ErrQueuePaused and
	// ErrBreakerOpen errors wrap it too.
	ErrNoConsumer = errors.New("broker: no worker consumes the queue; start one, or check the route")
	// ErrQueuePaused: the queue is paused (warren queue pause): its workers
	// do not consume it until it is resumed.
	ErrQueuePaused = errors.New("broker: the queue is paused; resume it (warren queue resume) for its workers to take jobs")
	// ErrBreakerOpen: the circuit breakers of the workers consuming the
	// queue are open (its jobs kept failing): they consume it again once
	// their trial jobs succeed.
	ErrBreakerOpen = errors.New("broker: the queue's circuit breaker is open in every worker consuming it; its dependency is failing")
)

// UnavailableError is a Call's error when the queue its request goes to
// has no consumer (see WithConsumerCheck): nothing was published.
// errors.Is matches Err, and ErrNoConsumer.
type UnavailableError struct {
	Queue string
	// Err is ErrQueuePaused, ErrBreakerOpen or ErrNoConsumer.
	Err error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("broker: queue %q cannot take a request now: %v", e.Queue, e.Err)
}

// Unwrap returns Err, and ErrNoConsumer.
func (e *UnavailableError) Unwrap() []error {
	if e.Err == ErrNoConsumer {
		return []error{e.Err}
	}
	return []error{e.Err, ErrNoConsumer}
}

// QueueLister is a Router that also tells which queues a job type's route
// reaches (a *topology.Topology is one): a Caller routed by it checks
// those queues' consumers before it sends a request.
type QueueLister interface {
	QueuesFor(jobType string) ([]string, error)
}

// consumerCheck keeps, per queue, the last answer to "can it take a
// request?" for period.
type consumerCheck struct {
	conn   *Conn
	period time.Duration

	mu    sync.Mutex
	decl  *Declarer // its own channel: a passive declare of a missing queue closes it, not the Caller's
	cache map[string]*checked
}

// checked is one queue's answer: err (nil when it can), as of at. done is
// closed once they are set; calls that need the answer meanwhile wait.
type checked struct {
	done chan struct{}
	at   time.Time
	err  error
}

func newConsumerCheck(conn *Conn, period time.Duration) *consumerCheck {
	return &consumerCheck{conn: conn, period: period, decl: NewDeclarer(conn), cache: map[string]*checked{}}
}

// check returns nil when one of queues can take a request (a consumer,
// or an answer that could not be had), else the first queue's
// *UnavailableError.
func (cc *consumerCheck) check(ctx context.Context, queues []string) error {
	var first error
	for _, q := range queues {
		err := cc.checkOne(ctx, q)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

func (cc *consumerCheck) checkOne(ctx context.Context, queue string) error {
	for {
		cc.mu.Lock()
		e := cc.cache[queue]
		if e != nil {
			select {
			case <-e.done:
				if time.Since(e.at) < cc.period {
					cc.mu.Unlock()
					return e.err
				}
			default:
				cc.mu.Unlock()
				select { // another call is asking: share its answer
				case <-e.done:
					continue
				case <-ctx.Done():
					return nil // the call's own wait reports ctx
				}
			}
		}
		e = &checked{done: make(chan struct{})}
		cc.cache[queue] = e
		cc.mu.Unlock()
		e.err = cc.ask(ctx, queue)
		e.at = time.Now()
		close(e.done)
		return e.err
	}
}

// ask asks the broker whether queue has a consumer, and if not, why. A
// question that fails (the queue is missing, the connection is down)
// answers nil: the publish then says what is wrong (ErrUnroutable, …).
func (cc *consumerCheck) ask(ctx context.Context, queue string) error {
	info, err := cc.decl.QueueInfo(ctx, queue)
	if err != nil || info.Consumers > 0 {
		return nil
	}
	why := ErrNoConsumer
	if paused, err := cc.decl.QueueExists(ctx, PausedMarker(queue)); err == nil && paused {
		why = ErrQueuePaused
	} else if n, err := breakersOpen(ctx, cc.decl, queue); err == nil && n > 0 {
		why = ErrBreakerOpen
	}
	return &UnavailableError{Queue: queue, Err: why}
}

func (cc *consumerCheck) close(ctx context.Context) error { return cc.decl.Close(ctx) }

// requestQueues returns the queues a request to t (routed for jobType
// when routed) goes to, nil when they cannot be known. A queue named by
// the target is appended to buf (the caller's, on its stack).
func requestQueues(buf []string, t publishTarget, routed bool, r Router, jobType string) []string {
	if t.exchange == "" {
		return append(buf, t.key)
	}
	if !routed {
		return nil
	}
	l, ok := r.(QueueLister)
	if !ok {
		return nil
	}
	qs, err := l.QueuesFor(jobType)
	if err != nil {
		return nil
	}
	return qs
}
