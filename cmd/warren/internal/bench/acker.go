package bench

// multiAcker settles deliveries of one channel: *amqp.Channel, or a fake in
// tests. Ack with multiple set acks every unacked tag up to tag.
type multiAcker interface {
	Ack(tag uint64, multiple bool) error
}

// batchAcker is how a careful hand-written consumer with concurrent
// handlers acks in batches: the handlers hand each finished delivery tag to
// one goroutine (run), which tracks the highest tag below which every tag
// is finished and acks up to it with multiple=true, once batch tags are
// pending or when no finished tag is waiting (flush on idle: no timer, and
// no ack waits for more work). A tag still being handled is never acked:
// the acker only ever acks up to the first tag not finished.
//
// Delivery tags of a channel start at 1 and grow by one per delivery, and
// the channel has one consumer, so every tag up to the highest delivered is
// one of its deliveries.
type batchAcker struct {
	ch    multiAcker
	batch uint64
	acked uint64 // every tag up to it is acked
	next  uint64 // the lowest tag not finished; every tag below it is finished
	// finished holds the finished tags above next: those that completed
	// before an earlier one. At most a prefetch window of them.
	finished map[uint64]struct{}
}

// ackBatch is the batch of a consumer with prefetch: a quarter of the
// window (32 at the default 128), at least 1. Acks held back keep the
// broker from sending more, so the batch stays well below the window: the
// broker always has three quarters of it to refill, while a multiple ack
// still settles many deliveries at once.
func ackBatch(prefetch int) int { return max(1, prefetch/4) }

func newBatchAcker(ch multiAcker, batch int) *batchAcker {
	return &batchAcker{ch: ch, batch: uint64(max(batch, 1)), next: 1, finished: make(map[uint64]struct{})}
}

// finish records that the delivery tag was handled.
func (a *batchAcker) finish(tag uint64) {
	if tag != a.next {
		a.finished[tag] = struct{}{}
		return
	}
	a.next++
	for {
		if _, ok := a.finished[a.next]; !ok {
			return
		}
		delete(a.finished, a.next)
		a.next++
	}
}

// pending is how many finished tags await their ack.
func (a *batchAcker) pending() uint64 { return a.next - 1 - a.acked }

// flush acks every contiguous finished tag not acked yet, in one ack.
func (a *batchAcker) flush() error {
	if a.pending() == 0 {
		return nil
	}
	a.acked = a.next - 1
	return a.ch.Ack(a.acked, true)
}

// run takes finished tags until tags is closed, acking as it goes, and
// flushes what is left. After a failed ack it sends no more but still takes
// the tags, so that no handler waits on it; it returns the first error.
func (a *batchAcker) run(tags <-chan uint64) error {
	var err error
	for tag := range tags {
		a.finish(tag)
		if err == nil && (a.pending() >= a.batch || len(tags) == 0) {
			err = a.flush()
		}
	}
	if err == nil {
		err = a.flush()
	}
	return err
}
