package broker

import (
	"fmt"
	"sync"
	"time"
)

// acker groups the acks of one consumer channel.
//
// Delivery tags on a channel count up from 1, and a consumer's channel
// carries only its deliveries. base is the highest tag such that every tag
// up to it is settled on the wire or acked locally; finished holds the tags
// above base that are. One basic.ack with multiple=true, naming the highest
// tag acked locally up to base, settles every delivery the handlers
// finished in order; a delivery nacked on the way is already settled, and
// a multiple ack passes over it (it acks only what is still outstanding).
//
// Invariants, which keep the broker from closing the channel with "unknown
// delivery tag" (a tag settled twice):
//   - a tag is sent in a single-tag ack or nack at most once, and only
//     while it is above base, so no multiple ack has covered it yet;
//   - base only passes tags that are in finished, so a multiple ack never
//     covers a delivery still being handled;
//   - a multiple ack names a tag acked locally and not yet sent.
type acker struct {
	ch    settler
	batch int
	delay time.Duration

	mu       sync.Mutex
	base     uint64            // every tag <= base is settled on the wire or acked locally
	last     uint64            // the highest tag <= base acked locally and not yet on the wire
	unsent   int               // tags <= base acked locally and not yet on the wire
	finished map[uint64]uint64 // tags > base: tick when acked locally, or onWire
	tick     uint64            // flush generation, for acking stragglers one by one
	armed    bool              // timer is running: the acks made meanwhile ride on its flush
	closed   bool
	timer    *time.Timer // runs fire; nil when batch is 1
}

// settler is the part of *amqp.Channel the acker uses.
type settler interface {
	Ack(tag uint64, multiple bool) error
	Nack(tag uint64, multiple, requeue bool) error
}

// onWire marks a finished tag whose ack or nack was sent on its own.
const onWire = 0

func newAcker(ch settler, batch int, delay time.Duration) *acker {
	a := &acker{
		ch:       ch,
		batch:    batch,
		delay:    delay,
		finished: make(map[uint64]uint64),
		tick:     1,
	}
	if batch > 1 {
		// A timer's function, not a goroutine waiting on a channel:
		// arming it costs no wake-up, so at a few jobs per delay (a
		// sequential caller's) grouping acks costs one wake-up per flush
		// instead of two.
		a.timer = time.AfterFunc(time.Hour, a.fire)
		a.timer.Stop()
	}
	return a
}

// markClosed stops the acker: nothing is sent after it returns. A flush
// running at the time finishes first (it holds mu).
func (a *acker) markClosed() {
	a.mu.Lock()
	a.closed = true
	if a.timer != nil {
		a.timer.Stop()
	}
	a.mu.Unlock()
}

func (a *acker) closedErr() error {
	return fmt.Errorf("%w: the consumer's channel closed before the delivery was settled; the broker returns it to the queue", ErrClosed)
}

// ack records tag as handled and sends the acks that are due: the grouped
// prefix once it is a batch long; else the timer sends it within the
// delay.
//
// A request's ack is grouped like any other, even when nothing else of the
// channel is outstanding. Its reply has gone by then, so its caller does
// not wait for the ack; the broker does not either, as long as the batch
// leaves most of the prefetch free (at most a quarter of it, see
// WithAckBatch). Sending it at once instead cost a frame (and a write) per
// call to the client and to the broker: a sequential caller's calls/s rose
// by about 8% when its acks were grouped (docs/benchmarks.md).
func (a *acker) ack(tag uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return a.closedErr()
	}
	if a.batch == 1 {
		return a.sendLocked(tag, func() error { return a.ch.Ack(tag, false) })
	}
	if tag == a.base+1 {
		// The oldest outstanding one, as most are: base passes it without
		// a trip through the map.
		a.base, a.last = tag, tag
		a.unsent++
	} else {
		a.finished[tag] = a.tick
	}
	a.advanceLocked()
	if a.unsent >= a.batch {
		return a.flushPrefixLocked()
	}
	a.armLocked()
	return nil
}

// armLocked starts the timer that flushes the grouped acks, unless it
// runs.
func (a *acker) armLocked() {
	if !a.armed {
		a.armed = true
		a.timer.Reset(a.delay)
	}
}

// nack settles tag with basic.nack, at once.
func (a *acker) nack(tag uint64, requeue bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return a.closedErr()
	}
	return a.sendLocked(tag, func() error { return a.ch.Nack(tag, false, requeue) })
}

// sendLocked sends a single-tag settlement and records it.
func (a *acker) sendLocked(tag uint64, send func() error) error {
	if err := send(); err != nil {
		return a.wireErr(err)
	}
	a.finished[tag] = onWire
	a.advanceLocked()
	return nil
}

// advanceLocked moves base over the finished tags that follow it.
func (a *acker) advanceLocked() {
	for len(a.finished) > 0 {
		t, ok := a.finished[a.base+1]
		if !ok {
			return
		}
		delete(a.finished, a.base+1)
		a.base++
		if t != onWire {
			a.unsent++
			a.last = a.base
		}
	}
}

// flushPrefixLocked sends one multiple ack for the acks waiting up to
// base. Its tag is the highest of them, never a tag already settled: the
// broker refuses a multiple ack naming a tag it no longer holds.
func (a *acker) flushPrefixLocked() error {
	if a.unsent == 0 {
		return nil
	}
	if err := a.ch.Ack(a.last, true); err != nil {
		return a.wireErr(err)
	}
	a.unsent = 0
	return nil
}

// flushTick sends the prefix, and acks one by one the deliveries that
// finished behind an unfinished one before the previous tick.
func (a *acker) flushTick() (pending bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.armed = false
	if a.closed {
		return false, nil
	}
	if err := a.flushPrefixLocked(); err != nil {
		return false, err
	}
	for tag, t := range a.finished {
		if t == onWire {
			continue
		}
		if t < a.tick {
			if err := a.ch.Ack(tag, false); err != nil {
				return false, a.wireErr(err)
			}
			a.finished[tag] = onWire
			continue
		}
		pending = true
	}
	a.tick++
	a.armed = pending
	if pending {
		a.timer.Reset(a.delay)
	}
	return pending, nil
}

// flushAll sends every ack still grouped.
func (a *acker) flushAll() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	return a.flushAllLocked()
}

func (a *acker) flushAllLocked() error {
	if err := a.flushPrefixLocked(); err != nil {
		return err
	}
	for tag, t := range a.finished {
		if t == onWire {
			continue
		}
		if err := a.ch.Ack(tag, false); err != nil {
			return a.wireErr(err)
		}
		a.finished[tag] = onWire
	}
	return nil
}

func (a *acker) wireErr(err error) error {
	return fmt.Errorf("%w: settle delivery: %w", ErrClosed, err)
}

// fire sends the acks grouped since the timer was armed (flushTick
// re-arms it while stragglers wait). A failing channel is left to its
// consumer's watcher, which reports why; the broker returns what was not
// acked.
func (a *acker) fire() {
	_, _ = a.flushTick()
}
