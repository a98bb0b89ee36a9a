package deadletter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
)

// maxBrowse is the most messages one Browse holds: the largest prefetch
// AMQP can express.
const maxBrowse = 65535

// Browse reads the messages of queue without removing any: it consumes up
// to the number of messages the queue held when it started (so it ends,
// and sees no message twice), handing each to fn, which returns false to
// stop early. It never acks: when it returns, its channel closes and the
// broker puts every message back, in its order on a classic queue.
//
// It returns the number of messages seen. It reads at most 65,535 messages
// in one call. Note that on a quorum queue each read counts as a delivery
// of the message (x-delivery-count).
func Browse(ctx context.Context, conn *broker.Conn, queue string, fn func(Entry) bool) (seen int, retErr error) {
	d := broker.NewDeclarer(conn)
	info, err := d.QueueInfo(ctx, queue)
	d.Close()
	if err != nil {
		if errors.Is(err, broker.ErrNoQueue) {
			return 0, fmt.Errorf("deadletter: %w; a work queue's dead letters are in <queue>.dlq", err)
		}
		return 0, fmt.Errorf("deadletter: %w", err)
	}
	want := min(info.Messages, maxBrowse)
	if want == 0 {
		return 0, nil
	}
	c, err := broker.Consume(ctx, conn, queue, broker.WithPrefetch(want))
	if err != nil {
		return 0, fmt.Errorf("deadletter: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		c.Cancel(cctx)
		// No ack was sent: everything goes back, and is back in the queue
		// when Browse returns, for the next reader. Closing the channel
		// would return them too, but some time after it returns.
		if err := c.ReturnAll(cctx); err != nil && retErr == nil {
			retErr = fmt.Errorf("deadletter: %w", err)
		}
		c.Close(cctx)
	}()
	for seen < want {
		// A message may be held by another consumer; do not wait forever
		// for the count taken at the start.
		nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		dl, ok := c.Next(nctx)
		cancel()
		if !ok {
			if err := ctx.Err(); err != nil {
				return seen, err
			}
			return seen, nil
		}
		seen++
		if !fn(NewEntry(dl)) {
			break
		}
	}
	return seen, nil
}
