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
	armed    bool              // the flusher's timer is running or about to: no need to wake it
	closed   bool

	kick chan struct{} // buffered 1: wakes the flusher without blocking a handler
}

// settler is the part of *amqp.Channel the acker uses.
type settler interface {
	Ack(tag uint64, multiple bool) error
	Nack(tag uint64, multiple, requeue bool) error
}

// onWire marks a finished tag whose ack or nack was sent on its own.
const onWire = 0

func newAcker(ch settler, batch int, delay time.Duration) *acker {
	return &acker{
		ch:       ch,
		batch:    batch,
		delay:    delay,
		finished: make(map[uint64]uint64),
		tick:     1,
		kick:     make(chan struct{}, 1),
	}
}

func (a *acker) markClosed() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
}

func (a *acker) closedErr() error {
	return fmt.Errorf("%w: the consumer's channel closed before the delivery was settled; the broker returns it to the queue", ErrClosed)
}

// ack settles tag as handled.
func (a *acker) ack(tag uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return a.closedErr()
	}
	if a.batch == 1 {
		return a.sendLocked(tag, func() error { return a.ch.Ack(tag, false) })
	}
	a.finished[tag] = a.tick
	a.advanceLocked()
	if a.unsent >= a.batch {
		return a.flushPrefixLocked()
	}
	if !a.armed {
		// Wake the flusher once per delay, not once per ack: a wake-up
		// costs more than the ack.
		a.armed = true
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
	return nil
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
	for {
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

// flusher sends grouped acks at most delay after they were made, until
// stop or done is closed. It is the consumer's; Close stops it.
func (a *acker) flusher(stop, done <-chan struct{}) {
	if a.batch == 1 {
		return
	}
	timer := time.NewTimer(a.delay)
	timer.Stop()
	armed := false
	for {
		select {
		case <-stop:
			timer.Stop()
			return
		case <-done:
			timer.Stop()
			return
		case <-a.kick:
			if !armed {
				timer.Reset(a.delay)
				armed = true
			}
			// acker.armed stays set until the timer fires: acks in
			// between do not wake this goroutine.
		case <-timer.C:
			armed = false
			pending, err := a.flushTick()
			if err != nil {
				// The channel is failing; the watcher reports why, and the
				// broker returns what was not acked.
				continue
			}
			if pending {
				timer.Reset(a.delay)
				armed = true
			}
		}
	}
}
