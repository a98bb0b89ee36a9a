package deadletter

import (
	"context"
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
	var fn func(Entry, broker.Message) error
	if seen != nil {
		fn = func(e Entry, _ broker.Message) error { return seen(e) }
	}
	return purge(ctx, conn, queue, f, fn)
}

// purge is Purge, handing seen the message as it was delivered too.
func purge(ctx context.Context, conn *broker.Conn, queue string, f Filter, seen func(Entry, broker.Message) error) (deleted, kept int, retErr error) {
	h, err := hold(ctx, conn, queue, maxBrowse)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if err := h.release(ctx); err != nil && retErr == nil {
			retErr = err
		}
	}()
	now := time.Now()
	for {
		dl, msg, err := h.nextRaw(ctx)
		if err != nil || dl == nil {
			return deleted, kept, err
		}
		e := NewEntry(dl)
		if !f.Match(e, now) {
			kept++
			continue
		}
		if seen != nil {
			if err := seen(e, msg); err != nil {
				return deleted, kept, fmt.Errorf("deadletter: job %s not deleted: %w", e.Envelope.ID, err)
			}
		}
		if err := dl.Ack(); err != nil {
			return deleted, kept, fmt.Errorf("deadletter: delete job %s: %w", e.Envelope.ID, err)
		}
		deleted++
	}
}
