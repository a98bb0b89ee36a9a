package broker

import (
	"context"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Raw messages, for tools that move messages as they are (dead-letter
// export and import): what is read is the message as the broker delivered
// it, and what is published is exactly what is given, nothing added,
// changed or checked as a job (Sender.PublishMessage).

// NextRaw is Next, also returning the message as the broker delivered it:
// every property (including content encoding, delivery mode and user id,
// which the Envelope does not keep), the headers with the Go types
// amqp091-go gives each AMQP field type (warren's own headers not
// interpreted), and the body, not copied. The Delivery is settled as one
// from Next.
func (c *Consumer) NextRaw(ctx context.Context) (*Delivery, amqp.Publishing, bool) {
	select {
	case d, ok := <-c.in:
		if !ok {
			c.ended()
			return nil, amqp.Publishing{}, false
		}
		return c.wrap(&d), amqp.Publishing{
			Headers:         d.Headers,
			ContentType:     d.ContentType,
			ContentEncoding: d.ContentEncoding,
			DeliveryMode:    d.DeliveryMode,
			Priority:        d.Priority,
			CorrelationId:   d.CorrelationId,
			ReplyTo:         d.ReplyTo,
			Expiration:      d.Expiration,
			MessageId:       d.MessageId,
			Timestamp:       d.Timestamp,
			Type:            d.Type,
			UserId:          d.UserId,
			AppId:           d.AppId,
			Body:            d.Body,
		}, true
	case <-ctx.Done():
		return nil, amqp.Publishing{}, false
	}
}
