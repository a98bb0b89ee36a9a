package deadletter

import (
	"context"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/warrenmq/warren/broker"
)

// Target says where replayed jobs go. The zero Target sends each job back
// to its origin: the exchange and routing key it was published with when it
// failed (warren's headers, else RabbitMQ's x-death).
type Target struct {
	Exchange   string
	RoutingKey string
	Set        bool // Exchange and RoutingKey were given (the default exchange is "")
}

// ToQueue is the Target of a queue, through the default exchange.
func ToQueue(queue string) Target { return Target{RoutingKey: queue, Set: true} }

// ReplayOptions configure Replay.
type ReplayOptions struct {
	Filter Filter
	To     Target
	// DryRun reports what would move, and moves nothing.
	DryRun bool
	// Limit stops after this many jobs moved (0: no limit).
	Limit int
	// Rate caps the jobs moved per second (0 or +Inf: no cap). Any
	// positive value works, however large or small; a negative one or
	// NaN is an error.
	Rate float64
	// Progress, when set, is called after each message read, with the
	// number read and the count taken at the start.
	Progress func(read, total int)
	// Now is the clock of the age filters (default time.Now).
	Now func() time.Time
}

// Moved is one job replayed (or that would be, in a dry run).
type Moved struct {
	Entry      Entry
	Exchange   string
	RoutingKey string
}

// Failed is one job that matched and could not be moved: it stays in the
// dead-letter queue.
type Failed struct {
	Entry Entry
	Err   error
}

// Summary is what a Replay did.
type Summary struct {
	Total   int // messages in the queue at the start
	Read    int
	Moved   []Moved
	Skipped int // did not match the filter, or past the limit: left in place
	Failed  []Failed
}

// Replay moves the jobs of a dead-letter queue that match opts.Filter back
// to their origin (or opts.To), for another run: the attempt count reset,
// the replay count plus one, the id and the failure headers (the job's
// history) kept. A request's deadline and direct reply-to address are
// dropped: its caller is long gone.
//
// Each job is published with a confirm and as mandatory, and its delivery
// is acked only once the copy is confirmed (the move protocol of
// RabbitMQ's shovel, ack-mode on-confirm; up to 256 confirms are awaited
// at once): if the process dies, a job is at worst both replayed and still
// in the dead-letter queue, never neither. Replay reads no more than
// the messages the queue held when it started, so a job that fails again
// during the replay is not replayed twice. The jobs it leaves (not
// matching, past the limit, failed to publish) are returned with one nack
// and keep their order as far as RabbitMQ allows. It reads at most 65,535
// messages in one call.
func Replay(ctx context.Context, conn *broker.Conn, pub *broker.Sender, queue string, opts ReplayOptions) (s Summary, retErr error) {
	if opts.Rate < 0 || math.IsNaN(opts.Rate) {
		return s, fmt.Errorf("deadletter: rate %v: must be positive (0: no cap)", opts.Rate)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	// Acks grouped: a job acked late is at worst replayed and still in
	// the dead-letter queue, which release settles before it returns.
	h, err := hold(ctx, conn, queue, maxBrowse, broker.WithAckBatch(replayWindow/4, 5*time.Millisecond))
	if err != nil {
		return s, err
	}
	s.Total = h.total
	defer func() {
		if err := h.release(ctx); err != nil && retErr == nil {
			retErr = err
		}
	}()
	pace := pacer(opts)
	// Publishes in flight, oldest first: each delivery is acked once its
	// copy is confirmed, and not before.
	var window []sent
	defer func() {
		// On the way out (done, or interrupted), wait a little for what
		// is in flight, so what the broker has is acked, not left to be
		// replayed twice.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, m := range window {
			m.settle(wctx, &s)
		}
	}()
	for {
		dl, err := h.next(ctx)
		if err != nil {
			return s, err
		}
		if dl == nil {
			return s, nil
		}
		s.Read++
		e := NewEntry(dl)
		if !opts.Filter.Match(e, now()) || (opts.Limit > 0 && len(s.Moved)+len(window) >= opts.Limit) {
			s.Skipped++
		} else if err := pace(ctx); err != nil {
			return s, err // this job and the rest stay in the queue
		} else if m, err := send(ctx, pub, dl, e, opts); err != nil {
			s.Failed = append(s.Failed, Failed{Entry: e, Err: err})
		} else if m.conf == nil { // a dry run
			s.Moved = append(s.Moved, m.moved)
		} else {
			window = append(window, m)
			// Ack what is confirmed as soon as it is (a kill then leaves
			// few jobs both replayed and parked); wait only when the
			// window is full.
			for len(window) > 0 && (len(window) >= replayWindow || window[0].conf.Ready()) {
				window[0].settle(ctx, &s)
				window = window[1:]
			}
		}
		if opts.Progress != nil {
			opts.Progress(s.Read, s.Total)
		}
	}
}

// pacer returns the wait before each job moved: none without a rate (or
// in a dry run), else a token bucket of one job, which takes any rate,
// from a job an hour to more jobs a second than a clock can tick.
func pacer(opts ReplayOptions) func(context.Context) error {
	if opts.Rate == 0 || math.IsInf(opts.Rate, 1) || opts.DryRun {
		return func(context.Context) error { return nil }
	}
	lim := rate.NewLimiter(rate.Limit(opts.Rate), 1)
	return func(ctx context.Context) error {
		if err := lim.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The next job is due after the deadline.
			return fmt.Errorf("deadletter: at %v job(s) a second the next job is due after the deadline: %w", opts.Rate, context.DeadlineExceeded)
		}
		return nil
	}
}

// replayWindow is how many replayed jobs may await their confirms at once.
const replayWindow = 256

// sent is one replayed job awaiting its confirm.
type sent struct {
	dl    *broker.Delivery
	moved Moved
	conf  *broker.Confirmation // nil in a dry run
}

// settle waits for m's confirm and then acks its delivery; a job that was
// not confirmed stays in the dead-letter queue.
func (m sent) settle(ctx context.Context, s *Summary) {
	if err := m.conf.Wait(ctx); err != nil {
		s.Failed = append(s.Failed, Failed{Entry: m.moved.Entry, Err: err})
		return
	}
	if err := m.dl.Ack(); err != nil {
		// Published but still in the dead-letter queue: replayed twice at
		// worst if it is replayed again.
		s.Failed = append(s.Failed, Failed{Entry: m.moved.Entry,
			Err: fmt.Errorf("replayed, but could not be removed from the dead-letter queue (it may run twice): %w", err)})
		return
	}
	s.Moved = append(s.Moved, m.moved)
}

// send republishes one job, without waiting for its confirm.
func send(ctx context.Context, pub *broker.Sender, dl *broker.Delivery, e Entry, opts ReplayOptions) (sent, error) {
	exchange, key := opts.To.Exchange, opts.To.RoutingKey
	if !opts.To.Set {
		if e.Origin.Queue == "" && e.Origin.Exchange == "" && e.Origin.RoutingKey == "" {
			return sent{}, ErrUnknownOrigin
		}
		exchange, key = e.Origin.Exchange, e.Origin.RoutingKey
		if exchange == "" && key == "" {
			key = e.Origin.Queue // published to the queue through the default exchange
		}
	}
	m := sent{dl: dl, moved: Moved{Entry: e, Exchange: exchange, RoutingKey: key}}
	if opts.DryRun {
		return m, nil
	}
	if e.Malformed != nil {
		return sent{}, fmt.Errorf("%w (%w)", ErrNotAJob, e.Malformed)
	}
	r := *e.Envelope
	r.Attempt = 1
	r.ReplayCount = min(r.ReplayCount+1, broker.MaxReplayCount)
	r.Deadline = time.Time{}
	if broker.IsCallerReplyTo(r.ReplyTo) {
		r.ReplyTo = "" // the caller that waited is gone
	}
	conf, err := pub.Send(ctx, broker.KindReplay, &r, exchange, key)
	if err != nil {
		return sent{}, err
	}
	m.conf = conf
	return m, nil
}
