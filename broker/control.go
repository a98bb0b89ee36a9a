// Pausing queues: the desired state kept by the broker, and the
// notifications that carry changes to every worker at once.

package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/topology"
)

// ControlExchange is the fanout exchange warren's control messages go
// through: every worker pool binds a queue of its own to it and hears a
// pause or a resume at once.
const ControlExchange = "warren.control"

// pausedPrefix names the marker queues of paused queues.
const pausedPrefix = "warren.paused."

// PausedMarker is the queue whose existence says that queue is paused:
// warren.paused.QUEUE, a durable quorum queue that holds nothing. The
// broker keeps it across restarts and, in a cluster, on a majority of
// nodes, so a worker that starts later, or reconnects after a failover,
// still finds the queue paused.
func PausedMarker(queue string) string { return pausedPrefix + queue }

// Control message types (the AMQP type property); the body is the queue's
// name.
const (
	controlPause  = "warren.pause"
	controlResume = "warren.resume"
)

// SetPaused pauses or resumes queue across every worker pool that consumes
// it: it records the desired state in the broker (PausedMarker), then
// tells the pools through ControlExchange. A pool that misses the message
// (reconnecting at the time) reads the marker when it consumes again and
// every PauseRecheck. Pausing stops new deliveries; jobs already running
// finish, and jobs wait in the queue, never retried or dead-lettered.
func SetPaused(ctx context.Context, conn *Conn, queue string, paused bool) error {
	if queue == "" {
		return errors.New("broker: SetPaused: empty queue name")
	}
	if n := len(PausedMarker(queue)); n > 255 {
		return fmt.Errorf("broker: pause %q: the marker queue's name would be %d bytes, over AMQP's 255; shorten the queue's name", queue, n)
	}
	d := NewDeclarer(conn)
	defer d.Close(context.WithoutCancel(ctx))
	if err := d.DeclareExchange(ctx, topology.Exchange{Name: ControlExchange, Kind: "fanout", Durable: true}); err != nil {
		return fmt.Errorf("broker: declare %s: %w", ControlExchange, err)
	}
	typ := controlResume
	if paused {
		typ = controlPause
		if err := d.DeclareQueue(ctx, topology.Queue{Name: PausedMarker(queue), Type: topology.Quorum, Durable: true, Args: topology.Table{"x-queue-type": topology.Quorum}}); err != nil {
			return fmt.Errorf("broker: pause %q: %w", queue, err)
		}
	} else if _, err := d.DeleteQueue(ctx, PausedMarker(queue), false); err != nil && !errors.Is(err, ErrNoQueue) {
		return fmt.Errorf("broker: resume %q: %w", queue, err)
	}
	ch, err := conn.channelWait(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	// Not confirmed: the marker is the state; the message only saves the
	// pools the wait for their next check.
	if err := ch.PublishWithContext(ctx, ControlExchange, "", false, false, amqp.Publishing{
		Type: typ, Body: []byte(queue), Timestamp: time.Now(),
	}); err != nil {
		return fmt.Errorf("broker: tell the workers: %w (the state is recorded; they see it at their next check)", err)
	}
	return nil
}

// IsPaused reports whether queue is paused (its PausedMarker exists).
func IsPaused(ctx context.Context, conn *Conn, queue string) (bool, error) {
	d := NewDeclarer(conn)
	defer d.Close(context.WithoutCancel(ctx))
	return d.QueueExists(ctx, PausedMarker(queue))
}

// ControlMessage is a pause or a resume heard on ControlExchange.
type ControlMessage struct {
	Queue  string
	Paused bool
}

// WatchControl binds an exclusive, server-named queue to ControlExchange
// (declaring the exchange) and returns the pause and resume messages it
// receives, until ctx ends or the channel is lost: then the returned
// channel closes, and the caller watches again (and reads the markers, as
// it may have missed messages meanwhile).
func WatchControl(ctx context.Context, conn *Conn) (<-chan ControlMessage, error) {
	ch, err := conn.channelWait(ctx)
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) (<-chan ControlMessage, error) {
		ch.Close()
		return nil, fmt.Errorf("broker: watch %s: %s: %w", ControlExchange, what, err)
	}
	if err := ch.ExchangeDeclare(ControlExchange, "fanout", true, false, false, false, nil); err != nil {
		return fail("declare", err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return fail("declare a queue", err)
	}
	if err := ch.QueueBind(q.Name, "", ControlExchange, false, nil); err != nil {
		return fail("bind", err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return fail("consume", err)
	}
	out := make(chan ControlMessage)
	go func() {
		defer close(out)
		defer ch.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case d, ok := <-deliveries:
				if !ok {
					return
				}
				var m ControlMessage
				switch d.Type {
				case controlPause:
					m = ControlMessage{Queue: string(d.Body), Paused: true}
				case controlResume:
					m = ControlMessage{Queue: string(d.Body)}
				default:
					continue // another kind of control message, for others
				}
				select {
				case out <- m:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}
