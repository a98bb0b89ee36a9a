package deadletter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
)

// maxBrowse is the most messages one consumer holds: the largest prefetch
// AMQP can express (a 16-bit field).
const maxBrowse = 65535

// pageSize is the most messages a held read takes through one consumer;
// past it, a read of more opens another. Tests lower it.
var pageSize = maxBrowse

// held reads a queue holding what it reads: up to the count the queue had
// at its start (so it ends, and sees no message twice) and at most max,
// nothing settled unless the caller settles it, and everything else
// returned with one nack per consumer, in order, by release. Browse,
// Replay and Purge share it.
//
// One consumer holds at most 65,535 unacked messages (its prefetch): a
// read of more takes them in pages, each through a consumer of its own,
// opened once the one before has taken its page, so the broker delivers
// it the messages after those (all stay held until release).
type held struct {
	conn   *broker.Conn
	queue  string
	opts   []broker.ConsumeOption
	cs     []*broker.Consumer // one per page; none when the queue was empty
	inPage int                // delivered by the last consumer
	start  int                // messages in the queue at the start
	total  int                // to read: start, at most max
	read   int
	got    []*broker.Delivery // every delivery read, to count those removed
}

func hold(ctx context.Context, conn *broker.Conn, queue string, max int, opts ...broker.ConsumeOption) (*held, error) {
	d := broker.NewDeclarer(conn)
	info, err := d.QueueInfo(ctx, queue)
	d.Close(context.WithoutCancel(ctx))
	if err != nil {
		if errors.Is(err, broker.ErrNoQueue) {
			return nil, fmt.Errorf("deadletter: %w; a work queue's dead letters are in <queue>.dlq", err)
		}
		return nil, fmt.Errorf("deadletter: %w", err)
	}
	h := &held{conn: conn, queue: queue, opts: opts, start: info.Messages, total: min(info.Messages, max)}
	if h.total == 0 {
		return h, nil
	}
	if err := h.page(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// page opens the consumer of the next page.
func (h *held) page(ctx context.Context) error {
	n := min(pageSize, h.total-h.read)
	c, err := broker.Consume(ctx, h.conn, h.queue, append([]broker.ConsumeOption{broker.WithPrefetch(n)}, h.opts...)...)
	if err != nil {
		return fmt.Errorf("deadletter: %w", err)
	}
	h.cs, h.inPage = append(h.cs, c), 0
	return nil
}

// nextRaw returns the next message, also as it was delivered (every
// property, the headers in broker.Table's types), or nil when the count
// taken at the start is reached or no more comes (a message may be held by
// another consumer: it does not wait forever for it).
func (h *held) nextRaw(ctx context.Context) (*broker.Delivery, broker.Message, error) {
	if len(h.cs) == 0 || h.read >= h.total {
		return nil, broker.Message{}, nil
	}
	if h.inPage >= pageSize {
		if err := h.page(ctx); err != nil {
			return nil, broker.Message{}, err
		}
	}
	nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	dl, msg, ok := h.cs[len(h.cs)-1].NextRaw(nctx)
	cancel()
	if !ok {
		return nil, broker.Message{}, ctx.Err()
	}
	h.read++
	h.inPage++
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
	if len(h.cs) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var err error
	for _, c := range h.cs { // the pages in order: the queue keeps its order
		c.Cancel(cctx)
		if rerr := c.ReturnAll(cctx); rerr != nil && err == nil {
			err = rerr
		}
		c.Close(cctx)
	}
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
// in one call; BrowseWith reads more. Note that on a quorum queue each
// read counts as a delivery of the message (x-delivery-count).
func Browse(ctx context.Context, conn *broker.Conn, queue string, fn func(Entry) bool) (seen int, retErr error) {
	s, err := BrowseWith(ctx, conn, queue, BrowseOptions{}, fn)
	return s.Seen, err
}

// DefaultMax is the most messages Browse reads in one call: what one
// consumer can hold unacked.
const DefaultMax = maxBrowse

// BrowseOptions configure BrowseWith.
type BrowseOptions struct {
	// Max is the most messages read (0: DefaultMax). A read of more than
	// DefaultMax holds them all unacked until it returns, through one
	// consumer per 65,535: the broker keeps them in memory meanwhile.
	Max int
}

// BrowseSummary is what a BrowseWith read.
type BrowseSummary struct {
	Seen  int // messages handed to fn
	Total int // messages in the queue at the start
	// Capped is set when the read stopped at opts.Max before the count
	// taken at the start: the rest of the queue was not read.
	Capped bool
}

// BrowseWith is Browse with options: it reads up to opts.Max messages,
// beyond 65,535 when asked, and says how many the queue held.
func BrowseWith(ctx context.Context, conn *broker.Conn, queue string, opts BrowseOptions, fn func(Entry) bool) (s BrowseSummary, retErr error) {
	max := opts.Max
	switch {
	case max < 0:
		return s, fmt.Errorf("deadletter: browse at most %d messages: must be 0 (the default, 65,535) or more", max)
	case max == 0:
		max = DefaultMax
	}
	h, err := hold(ctx, conn, queue, max)
	if err != nil {
		return s, err
	}
	s.Total = h.start
	defer func() {
		if err := h.release(ctx); err != nil && retErr == nil {
			retErr = err
		}
	}()
	for {
		dl, err := h.next(ctx)
		if err != nil || dl == nil {
			s.Seen = h.read
			s.Capped = err == nil && h.read == h.total && h.total < h.start
			return s, err
		}
		if !fn(NewEntry(dl)) {
			s.Seen = h.read
			return s, nil
		}
	}
}
