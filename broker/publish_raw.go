package broker

import (
	"context"
)

// Raw messages, for tools that move messages as they are (dead-letter
// export and import): what is read is the message as the broker delivered
// it, and what is published is exactly what is given, nothing added,
// changed or checked as a job (Sender.PublishMessage).

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
