package deadletter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
)

// maxBrowse is the most messages one read holds: the largest prefetch
// AMQP can express.
const maxBrowse = 65535

// held reads a queue holding what it reads: up to the count the queue had
// at its start (so it ends, and sees no message twice), nothing settled
// unless the caller settles it, and everything else returned with one
// nack, in order, by release. Browse, Replay and Purge share it.
type held struct {
	conn  *broker.Conn
	queue string
	c     *broker.Consumer // nil when the queue was empty
	start int              // messages in the queue at the start
	total int
	read  int
	got   []*broker.Delivery // every delivery read, to count those removed
}

func hold(ctx context.Context, conn *broker.Conn, queue string, opts ...broker.ConsumeOption) (*held, error) {
	d := broker.NewDeclarer(conn)
	info, err := d.QueueInfo(ctx, queue)
	d.Close(context.WithoutCancel(ctx))
	if err != nil {
		if errors.Is(err, broker.ErrNoQueue) {
			return nil, fmt.Errorf("deadletter: %w; a work queue's dead letters are in <queue>.dlq", err)
		}
		return nil, fmt.Errorf("deadletter: %w", err)
	}
	h := &held{conn: conn, queue: queue, start: info.Messages, total: min(info.Messages, maxBrowse)}
	if h.total == 0 {
		return h, nil
	}
	if h.c, err = broker.Consume(ctx, conn, queue, append([]broker.ConsumeOption{broker.WithPrefetch(h.total)}, opts...)...); err != nil {
		return nil, fmt.Errorf("deadletter: %w", err)
	}
	return h, nil
}

// nextRaw returns the next message, also as it was delivered (every
// property, the headers in broker.Table's types), or nil when the count
// taken at the start is reached or no more comes (a message may be held by
// another consumer: it does not wait forever for it).
func (h *held) nextRaw(ctx context.Context) (*broker.Delivery, broker.Message, error) {
	if h.c == nil || h.read >= h.total {
		return nil, broker.Message{}, nil
	}
	nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	dl, msg, ok := h.c.NextRaw(nctx)
	cancel()
	if !ok {
		return nil, broker.Message{}, ctx.Err()
	}
	h.read++
	h.got = append(h.got, dl)
	return dl, msg, nil
}

// next is nextRaw without the message as delivered.
func (h *held) next(ctx context.Context) (*broker.Delivery, error) {
	dl, _, err := h.nextRaw(ctx)
	return dl, err
}

// release returns what was not settled, and is back in the queue when it
// returns, for the next reader (closing the channel would return it too,
// but some time later), then closes the consumer.
func (h *held) release(ctx context.Context) error {
	if h.c == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	h.c.Cancel(cctx)
	err := h.c.ReturnAll(cctx)
	h.c.Close(cctx)
	if err != nil {
		return fmt.Errorf("deadletter: %w", err)
	}
	h.settle(cctx)
	return nil
}

// settle waits, briefly, until the queue counts again what was returned
// to it: a quorum queue applies a requeue through its log, after the
// channel has answered, and the next reader would take its count too early
// and miss jobs. Others' consumers or arrivals only make the wait end
// sooner or later; it gives up after three seconds.
func (h *held) settle(ctx context.Context) {
	removed := 0
	for _, dl := range h.got {
		if dl.Settled() {
			removed++
		}
	}
	want := h.start - removed
	if removed == len(h.got) {
		return // nothing returned
	}
	d := broker.NewDeclarer(h.conn)
	defer d.Close(context.WithoutCancel(ctx))
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for {
		info, err := d.QueueInfo(ctx, h.queue)
		if err != nil || info.Messages >= want {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Browse reads the messages of queue without removing any: it consumes up
// to the number of messages the queue held when it started (so it ends,
// and sees no message twice), handing each to fn, which returns false to
// stop early. It never acks: when it returns, every message is back in the
// queue, in its order on a classic queue.
//
// It returns the number of messages seen. It reads at most 65,535 messages
// in one call. Note that on a quorum queue each read counts as a delivery
// of the message (x-delivery-count).
func Browse(ctx context.Context, conn *broker.Conn, queue string, fn func(Entry) bool) (seen int, retErr error) {
	h, err := hold(ctx, conn, queue)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err := h.release(ctx); err != nil && retErr == nil {
			retErr = err
		}
	}()
	for {
		dl, err := h.next(ctx)
		if err != nil || dl == nil {
			return h.read, err
		}
		if !fn(NewEntry(dl)) {
			return h.read, nil
		}
	}
}
