package broker

import (
	"context"
)

// Raw messages, for tools that move messages as they are (dead-letter
// export and import): what is read is the message as the broker delivered
// it, and what is published is exactly what is given, nothing added,
// changed or checked as a job.

// NextRaw is Next, also returning the message as the broker delivered it:
// every property (including content encoding, delivery mode and user id,
// which the Envelope does not keep), the headers with the Go type Table
// documents for each AMQP field type (warren's own headers not
// interpreted), and the body, not copied. The Delivery is settled as one
// from Next.
func (c *Consumer) NextRaw(ctx context.Context) (*Delivery, Message, bool) {
	select {
	case d, ok := <-c.in:
		if !ok {
			c.ended()
			return nil, Message{}, false
		}
		return c.wrap(&d), messageOfDelivery(&d), true
	case <-ctx.Done():
		return nil, Message{}, false
	}
}

// PublishRaw publishes msg exactly as it is (properties, headers, body;
// the app id is not filled in, nothing is generated) to exchange with
// routingKey, as mandatory, and waits for the broker's confirm, with the
// guarantees of Publish: nil only once the broker has the message; a
// return is ErrUnroutable (through the default exchange: no queue of that
// name), a nack ErrNacked, a missing exchange ErrNoExchange, a lost
// channel ErrClosed. The error is a *PublishError naming msg's message id
// and type.
//
// The broker checks what a job publish never sets: a user_id property
// other than the connection's user makes it close the channel
// (PRECONDITION_FAILED), which fails this publish with ErrClosed; the next
// publish opens a new channel.
func (p *Publisher) PublishRaw(ctx context.Context, exchange, routingKey string, msg Message) error {
	t := publishTarget{exchange: exchange, key: routingKey, explicit: true}
	f := &inflight{env: &Envelope{ID: msg.MessageID, Type: msg.Type}, target: t}
	if err := ctx.Err(); err != nil {
		return f.fail(err)
	}
	if err := p.checkExchange(ctx, exchange); err != nil {
		return f.fail(err)
	}
	if err := p.conn.waitUnblocked(ctx); err != nil {
		return f.fail(err)
	}
	pub := msg.publishing()
	pub.Headers = withoutBrokerHeaders(pub.Headers)
	pd, err := p.send(ctx, t, pub, msg.MessageID)
	if err != nil {
		return f.fail(err)
	}
	f.pending = pd
	return f.wait(ctx)
}
