// Circuit breakers: the marker a pool holds while its breaker on a queue
// is open, so that callers and operators see it.

package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/warrenmq/warren/internal/logfield"
)

// breakerPrefix names the marker queues of open breakers.
const breakerPrefix = "warren.breaker."

// BreakerMarker is the queue a worker pool consumes while its circuit
// breaker on queue is open, instead of queue: warren.breaker.QUEUE, an
// empty, durable, auto-delete classic queue. Its consumer count is the
// number of pools whose breaker on queue is open (a half-open pool
// consumes queue itself, for its trials); the broker deletes it when
// the last of them leaves, and a pool that dies leaves with its
// connection. (Durable, as RabbitMQ 4 deprecates transient queues that
// are not exclusive; auto-delete, so nothing is left behind.)
func BreakerMarker(queue string) string { return breakerPrefix + queue }

// HoldBreakerMarker consumes queue's BreakerMarker, declaring it first,
// until ctx ends; a lost channel or connection is made good again with
// backoff, as the pool's breaker is still open. It returns once ctx ends,
// after the marker's channel is closed (the broker then deletes the
// marker if no other pool holds it).
func HoldBreakerMarker(ctx context.Context, conn *Conn, queue string) {
	name := BreakerMarker(queue)
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 200*time.Millisecond, 10*time.Second, 0
	for ctx.Err() == nil {
		lost, err := holdMarker(ctx, conn, name)
		if err == nil {
			b.Reset()
			select {
			case <-ctx.Done():
			case <-lost:
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		wait := b.NextBackOff()
		conn.opts.log.Debug().Err(err).Str(logfield.Queue, name).Dur(logfield.RetryIn, wait).Msg("broker: could not hold the breaker marker; retrying")
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// holdMarker declares and consumes the marker queue on a channel of its
// own, closed when ctx ends; lost is closed when the channel is lost
// before that.
func holdMarker(ctx context.Context, conn *Conn, name string) (lost <-chan struct{}, err error) {
	ch, err := conn.channelWait(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := ch.QueueDeclare(name, true, true, false, false, nil); err != nil {
		ch.Close()
		return nil, fmt.Errorf("broker: declare %s: %w", name, err)
	}
	// The queue may have been deleted since (its last holder left just
	// then): the consume fails, and the caller tries again.
	msgs, err := ch.Consume(name, "", true, false, false, false, nil)
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("broker: consume %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = closeChannel(cctx, ch, "breaker marker channel")
				cancel()
				for range msgs { // nothing is published there; drained until closed
				}
				return
			case _, ok := <-msgs:
				if !ok {
					return
				}
			}
		}
	}()
	return done, nil
}

// BreakerOpen returns how many pools hold queue's breaker open (the
// consumers of its BreakerMarker), 0 when none does.
func BreakerOpen(ctx context.Context, conn *Conn, queue string) (int, error) {
	d := NewDeclarer(conn)
	defer d.Close(context.WithoutCancel(ctx))
	return breakersOpen(ctx, d, queue)
}

func breakersOpen(ctx context.Context, d *Declarer, queue string) (int, error) {
	info, err := d.QueueInfo(ctx, BreakerMarker(queue))
	if errors.Is(err, ErrNoQueue) {
		return 0, nil
	}
	return info.Consumers, err
}
