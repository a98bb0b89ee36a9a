package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/topology"
)

// Declarer declares topology entities on a connection; it implements
// topology.Declarer. It uses one channel and opens a new one after the broker
// closes it (a failed passive declare or a conflict closes the channel).
//
// Declarations are AMQP calls that cannot be cancelled once sent; ctx is
// checked before each one. Close it when done.
type Declarer struct {
	conn *Conn
	mu   sync.Mutex
	ch   *amqp.Channel
}

var _ topology.Declarer = (*Declarer)(nil)

// NewDeclarer returns a Declarer using conn.
func NewDeclarer(conn *Conn) *Declarer {
	return &Declarer{conn: conn}
}

// Close closes the declarer's channel, waiting for the broker's answer
// until ctx ends.
func (d *Declarer) Close(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil || d.ch.IsClosed() {
		return nil
	}
	ch := d.ch
	d.ch = nil
	return closeChannel(ctx, ch, "declarer channel")
}

// do runs fn on the declarer's channel, replacing the channel when the broker
// closed it.
func (d *Declarer) do(ctx context.Context, fn func(ch *amqp.Channel) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil || d.ch.IsClosed() {
		ch, err := d.conn.channelWait(ctx)
		if err != nil {
			return err
		}
		d.ch = ch
	}
	return fn(d.ch)
}

func (d *Declarer) exists(ctx context.Context, fn func(ch *amqp.Channel) error) (bool, error) {
	err := d.do(ctx, fn)
	var ae *amqp.Error
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ae) && ae.Code == amqp.NotFound:
		return false, nil
	default:
		return false, err
	}
}

func (d *Declarer) ExchangeExists(ctx context.Context, name string) (bool, error) {
	if name == "" || strings.HasPrefix(name, "amq.") {
		return true, nil // the default exchange and amq.* always exist
	}
	ok, err := d.exists(ctx, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclarePassive(name, topology.KindDirect, false, false, false, false, nil)
	})
	if err != nil {
		return false, fmt.Errorf("broker: check exchange %q: %w", name, err)
	}
	return ok, nil
}

func (d *Declarer) QueueExists(ctx context.Context, name string) (bool, error) {
	ok, err := d.exists(ctx, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("broker: check queue %q: %w", name, err)
	}
	return ok, nil
}

func (d *Declarer) DeclareExchange(ctx context.Context, x topology.Exchange) error {
	err := d.do(ctx, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare(x.Name, x.Kind, x.Durable, x.AutoDelete, x.Internal, false, amqp.Table(x.Args))
	})
	return declareError("exchange", x.Name, err)
}

func (d *Declarer) DeclareQueue(ctx context.Context, q topology.Queue) error {
	err := d.do(ctx, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(q.Name, q.Durable, q.AutoDelete, q.Exclusive, false, amqp.Table(q.Args))
		return err
	})
	return declareError("queue", q.Name, err)
}

func (d *Declarer) Bind(ctx context.Context, b topology.Binding) error {
	err := d.do(ctx, func(ch *amqp.Channel) error {
		if b.ToExchange != "" {
			return ch.ExchangeBind(b.ToExchange, b.RoutingKey, b.Exchange, false, amqp.Table(b.Args))
		}
		return ch.QueueBind(b.Queue, b.RoutingKey, b.Exchange, false, amqp.Table(b.Args))
	})
	if err != nil {
		dest := "queue " + b.Queue
		if b.ToExchange != "" {
			dest = "exchange " + b.ToExchange
		}
		return fmt.Errorf("broker: bind exchange %q to %s with key %q: %w", b.Exchange, dest, b.RoutingKey, err)
	}
	return nil
}

// declareError turns RabbitMQ's 406 PRECONDITION_FAILED into a
// *topology.ConflictError naming the differing argument.
func declareError(kind, name string, err error) error {
	if err == nil {
		return nil
	}
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		return &topology.ConflictError{Kind: kind, Name: name, Argument: inequivalentArg(ae.Reason), Reason: ae.Reason}
	}
	if errors.As(err, &ae) && ae.Code == amqp.AccessRefused {
		return fmt.Errorf("broker: declare %s %q: the user may not configure it (check its permissions): %w", kind, name, err)
	}
	return fmt.Errorf("broker: declare %s %q: %w", kind, name, err)
}

// inequivalentArg extracts the argument from RabbitMQ's reason text, e.g.
// "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in
// vhost '/': received 'quorum' but current is 'classic'".
func inequivalentArg(reason string) string {
	const marker = "inequivalent arg '"
	i := strings.Index(reason, marker)
	if i < 0 {
		return ""
	}
	rest := reason[i+len(marker):]
	j := strings.IndexByte(rest, '\'')
	if j < 0 {
		return ""
	}
	return rest[:j]
}

// QueueInfo is what a passive declare tells of a queue.
type QueueInfo struct {
	Name      string
	Messages  int // ready, not counting those delivered and unacked
	Consumers int
}

// QueueInfo returns the queue's ready message and consumer counts, by
// passive declaration. A missing queue is an error wrapping ErrNoQueue.
func (d *Declarer) QueueInfo(ctx context.Context, name string) (QueueInfo, error) {
	var q amqp.Queue
	err := d.do(ctx, func(ch *amqp.Channel) error {
		var err error
		q, err = ch.QueueDeclarePassive(name, false, false, false, false, nil)
		return err
	})
	if err != nil {
		return QueueInfo{}, queueErr("inspect", name, err)
	}
	return QueueInfo{Name: q.Name, Messages: q.Messages, Consumers: q.Consumers}, nil
}

// Purge removes every ready message of the queue (queue.purge) and returns
// how many it removed. Messages delivered and not yet acked stay.
func (d *Declarer) Purge(ctx context.Context, name string) (int, error) {
	var n int
	err := d.do(ctx, func(ch *amqp.Channel) error {
		var err error
		n, err = ch.QueuePurge(name, false)
		return err
	})
	if err != nil {
		return 0, queueErr("purge", name, err)
	}
	return n, nil
}

// DeleteQueue deletes the queue (queue.delete) and returns how many
// messages were in it, now gone with it. With ifEmpty the broker deletes it
// only when it holds no ready message; otherwise the error wraps
// ErrQueueNotEmpty and nothing changes. A missing queue is an error
// wrapping ErrNoQueue.
func (d *Declarer) DeleteQueue(ctx context.Context, name string, ifEmpty bool) (int, error) {
	var n int
	err := d.do(ctx, func(ch *amqp.Channel) error {
		var err error
		n, err = ch.QueueDelete(name, false, ifEmpty, false)
		return err
	})
	var ae *amqp.Error
	if ifEmpty && errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		return 0, fmt.Errorf("broker: delete queue %q: %w", name, ErrQueueNotEmpty)
	}
	if err != nil {
		return 0, queueErr("delete", name, err)
	}
	return n, nil
}

func queueErr(what, name string, err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return fmt.Errorf("broker: %s queue %q: %w", what, name, ErrNoQueue)
	}
	return fmt.Errorf("broker: %s queue %q: %w", what, name, err)
}
