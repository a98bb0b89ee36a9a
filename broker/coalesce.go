package broker

import (
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
)

// coalescer lets the writers that take turns on one channel share their
// flushes (group commit): a writer that knows another is queued behind it
// leaves its frames in the connection's write buffer, and the last writer
// in line flushes for all. Under load, many messages leave in one write
// instead of one write each; a writer alone flushes at once, as before.
// Frames never wait longer than it takes the writers queued at the time to
// write theirs: every writer leaves through leave, and the last one
// flushes, whether it wrote or failed.
//
// Use it around the critical section that publishes:
//
//	g.enter()
//	mu.Lock()
//	defer func() { g.leave(); mu.Unlock() }()
//	... publish with g.publish(ch, ...)
type coalescer struct {
	queued atomic.Int32 // writers between enter and leave

	// The channel with frames left in its connection's buffer, nil when
	// none: guarded by the writers' lock.
	unflushed flusher
}

// flusher is what a coalescer needs of a channel: *amqp.Channel, or a
// fake in tests.
type flusher interface {
	PublishUnflushed(exchange, key string, mandatory, immediate bool, msg amqp.Publishing) (*amqp.DeferredConfirmation, error)
	PublishWithDeferredConfirm(exchange, key string, mandatory, immediate bool, msg amqp.Publishing) (*amqp.DeferredConfirmation, error)
	Flush() error
}

// enter counts a writer in, before it takes the lock.
func (g *coalescer) enter() { g.queued.Add(1) }

// publish publishes msg on ch, unflushed when another writer is queued.
// The writers' lock must be held.
func (g *coalescer) publish(ch flusher, exchange, key string, mandatory bool, msg amqp.Publishing) error {
	if g.queued.Load() > 1 {
		if _, err := ch.PublishUnflushed(exchange, key, mandatory, false, msg); err != nil {
			return err
		}
		g.unflushed = ch
		return nil
	}
	if _, err := ch.PublishWithDeferredConfirm(exchange, key, mandatory, false, msg); err != nil {
		return err
	}
	if g.unflushed == ch {
		g.unflushed = nil // flushed with msg
	}
	return nil
}

// leave counts the writer out, with the lock still held, and flushes
// what was left unflushed when it is the last in line. A failed flush is
// the connection's loss, which its readers and watchers report.
func (g *coalescer) leave() {
	if g.queued.Add(-1) == 0 && g.unflushed != nil {
		_ = g.unflushed.Flush()
		g.unflushed = nil
	}
}
