package rawmsg

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// Publishing is m as amqp091-go sends it: every property, the headers in
// amqp091-go's types (tables and decimals converted at any depth), the
// body not copied.
func Publishing(m broker.Message) amqp.Publishing {
	p := amqp.Publishing{
		ContentType:     m.ContentType,
		ContentEncoding: m.ContentEncoding,
		DeliveryMode:    m.DeliveryMode,
		Priority:        m.Priority,
		CorrelationId:   m.CorrelationID,
		ReplyTo:         m.ReplyTo,
		Expiration:      m.Expiration,
		MessageId:       m.MessageID,
		Timestamp:       m.Timestamp,
		Type:            m.Type,
		UserId:          m.UserID,
		AppId:           m.AppID,
		Body:            m.Body,
	}
	if m.Headers != nil {
		p.Headers = toWire(m.Headers).(amqp.Table)
	}
	return p
}

// Message is the message of a delivery amqp091-go read: every property,
// the headers in broker.Table's types, the body not copied.
func Message(d *amqp.Delivery) broker.Message {
	m := broker.Message{
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		CorrelationID:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      d.Expiration,
		MessageID:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		UserID:          d.UserId,
		AppID:           d.AppId,
		Body:            d.Body,
	}
	if d.Headers != nil {
		m.Headers = fromWire(d.Headers).(broker.Table)
	}
	return m
}

// Envelope reads the job envelope of a delivery amqp091-go read, as a
// warren consumer does.
func Envelope(d *amqp.Delivery) (*broker.Envelope, error) {
	return Message(d).Envelope()
}

// Publish puts msgs on queue through the default exchange, as they are,
// with amqp091-go alone, and waits for the broker's confirms.
func Publish(t testing.TB, queue string, msgs ...broker.Message) {
	t.Helper()
	ch := brokertest.Channel(t)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		c, err := ch.PublishWithDeferredConfirmWithContext(brokertest.Context(t, 5*time.Second), "", queue, true, false, Publishing(m))
		if err != nil {
			t.Fatal(err)
		}
		if !c.Wait() {
			t.Fatalf("publish to %s nacked", queue)
		}
	}
}

func toWire(v any) any {
	switch x := v.(type) {
	case broker.Table:
		out := make(amqp.Table, len(x))
		for k, el := range x {
			out[k] = toWire(el)
		}
		return out
	case map[string]any:
		return toWire(broker.Table(x))
	case broker.Decimal:
		return amqp.Decimal(x)
	case []any:
		if x == nil {
			return x
		}
		out := make([]any, len(x))
		for i, el := range x {
			out[i] = toWire(el)
		}
		return out
	}
	return v
}

func fromWire(v any) any {
	switch x := v.(type) {
	case amqp.Table:
		out := make(broker.Table, len(x))
		for k, el := range x {
			out[k] = fromWire(el)
		}
		return out
	case amqp.Decimal:
		return broker.Decimal(x)
	case []any:
		if x == nil {
			return x
		}
		out := make([]any, len(x))
		for i, el := range x {
			out[i] = fromWire(el)
		}
		return out
	}
	return v
}
