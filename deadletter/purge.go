package deadletter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
)

// Purge deletes the jobs of queue that match f, for good, and returns what
// it deleted (each is passed to seen first, when set, e.g. to write it
// out). Like Replay it reads up to the count taken at its start and returns
// what it keeps with one nack, in order. It reads at most 65,535 messages
// in one call.
func Purge(ctx context.Context, conn *broker.Conn, queue string, f Filter, seen func(Entry) error) (deleted, kept int, retErr error) {
	d := broker.NewDeclarer(conn)
	info, err := d.QueueInfo(ctx, queue)
	d.Close()
	if err != nil {
		if errors.Is(err, broker.ErrNoQueue) {
			return 0, 0, fmt.Errorf("deadletter: %w; a work queue's dead letters are in <queue>.dlq", err)
		}
		return 0, 0, fmt.Errorf("deadletter: %w", err)
	}
	total := min(info.Messages, maxBrowse)
	if total == 0 {
		return 0, 0, nil
	}
	c, err := broker.Consume(ctx, conn, queue, broker.WithPrefetch(total))
	if err != nil {
		return 0, 0, fmt.Errorf("deadletter: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		c.Cancel(cctx)
		if err := c.ReturnAll(cctx); err != nil && retErr == nil {
			retErr = fmt.Errorf("deadletter: %w", err)
		}
		c.Close(cctx)
	}()
	now := time.Now()
	for read := 0; read < total; read++ {
		nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		dl, ok := c.Next(nctx)
		cancel()
		if !ok {
			return deleted, kept, ctx.Err()
		}
		e := NewEntry(dl)
		if !f.Match(e, now) {
			kept++
			continue
		}
		if seen != nil {
			if err := seen(e); err != nil {
				return deleted, kept, fmt.Errorf("deadletter: job %s not deleted: %w", e.Envelope.ID, err)
			}
		}
		if err := dl.Ack(); err != nil {
			return deleted, kept, fmt.Errorf("deadletter: delete job %s: %w", e.Envelope.ID, err)
		}
		deleted++
	}
	return deleted, kept, nil
}
