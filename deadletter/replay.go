package deadletter

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	// Rate caps the jobs moved per second (0: no cap).
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
// Each job is published with a confirm and as mandatory before its
// delivery is acked (the move protocol of RabbitMQ's shovel, ack-mode
// on-confirm): if the process dies, a job is at worst both replayed and
// still in the dead-letter queue, never neither. Replay reads no more than
// the messages the queue held when it started, so a job that fails again
// during the replay is not replayed twice. The jobs it leaves (not
// matching, past the limit, failed to publish) are returned with one nack
// and keep their order as far as RabbitMQ allows. It reads at most 65,535
// messages in one call.
func Replay(ctx context.Context, conn *broker.Conn, pub *broker.Publisher, queue string, opts ReplayOptions) (s Summary, retErr error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	h, err := hold(ctx, conn, queue, broker.WithAckBatch(1, time.Millisecond))
	if err != nil {
		return s, err
	}
	s.Total = h.total
	defer func() {
		if err := h.release(ctx); err != nil && retErr == nil {
			retErr = err
		}
	}()
	var pace *time.Ticker
	if opts.Rate > 0 && !opts.DryRun {
		pace = time.NewTicker(time.Duration(float64(time.Second) / opts.Rate))
		defer pace.Stop()
	}
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
		if !opts.Filter.Match(e, now()) || (opts.Limit > 0 && len(s.Moved) >= opts.Limit) {
			s.Skipped++
		} else if err := moveOne(ctx, pub, dl, e, opts, pace, &s); err != nil {
			s.Failed = append(s.Failed, Failed{Entry: e, Err: err})
		}
		if opts.Progress != nil {
			opts.Progress(s.Read, s.Total)
		}
	}
}

// moveOne republishes one job and acks it.
func moveOne(ctx context.Context, pub *broker.Publisher, dl *broker.Delivery, e Entry, opts ReplayOptions, pace *time.Ticker, s *Summary) error {
	exchange, key := opts.To.Exchange, opts.To.RoutingKey
	if !opts.To.Set {
		if e.Origin.Queue == "" && e.Origin.Exchange == "" && e.Origin.RoutingKey == "" {
			return errors.New("the job's origin is unknown (no warren headers, no x-death); replay it with --to")
		}
		exchange, key = e.Origin.Exchange, e.Origin.RoutingKey
		if exchange == "" && key == "" {
			key = e.Origin.Queue // published to the queue through the default exchange
		}
	}
	if opts.DryRun {
		s.Moved = append(s.Moved, Moved{Entry: e, Exchange: exchange, RoutingKey: key})
		return nil
	}
	if pace != nil {
		select {
		case <-pace.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if e.Malformed != nil {
		return fmt.Errorf("the message is not a job (%v); inspect it with warren dlq show, fix the producer, and replay with --to only if a worker can take it as it is", e.Malformed)
	}
	r := *e.Envelope
	r.Attempt = 1
	r.ReplayCount = min(r.ReplayCount+1, broker.MaxReplayCount)
	r.Deadline = time.Time{}
	if _, ok := r.Headers["x-delivery-count"]; ok {
		// The dead-letter queue's count of this message, not the job's.
		h := make(map[string]any, len(r.Headers))
		for k, v := range r.Headers {
			if k != "x-delivery-count" {
				h[k] = v
			}
		}
		r.Headers = h
	}
	if broker.IsDirectReplyTo(r.ReplyTo) {
		r.ReplyTo = "" // the caller that waited is gone
	}
	if err := pub.PublishEnvelope(ctx, &r, exchange, key); err != nil {
		return err
	}
	if err := dl.Ack(); err != nil {
		// Published but still in the dead-letter queue: replayed twice at
		// worst if it is replayed again.
		return fmt.Errorf("replayed, but could not be removed from the dead-letter queue (it may run twice): %w", err)
	}
	s.Moved = append(s.Moved, Moved{Entry: e, Exchange: exchange, RoutingKey: key})
	return nil
}
