package deadletter

import (
	"time"

	"github.com/warrenmq/warren/broker"
)

// deliveryCountHeader is the header a quorum queue adds to a message it
// delivers again: the count of its earlier deliveries from that queue.
const deliveryCountHeader = "x-delivery-count"

// Record is one dead-lettered message as exported: the message exactly as
// the broker delivered it (every property, the headers with their AMQP
// types, the body's bytes), the queue it was read from, and, for people
// reading the file, a few fields derived from it.
//
// A Record's JSON form is one line of the export format (MarshalJSON,
// UnmarshalJSON): headers in broker.Table's JSON form, {"t": type, "v":
// value} objects that keep each AMQP field type, the body in base64. What
// Message returns survives the trip through JSON as it goes on the wire:
// the same properties, header types and values, and body bytes (the only
// thing not kept is a NaN's payload bits). Values read back have the Go
// types broker.Table lists (an empty array is a nil []any; times are in
// UTC).
type Record struct {
	// Queue is the queue the message was read from; an import sends the
	// message back to a queue of that name unless told otherwise.
	Queue string
	// ExportedAt is when the record was written (zero: not said).
	ExportedAt time.Time

	// ID, Type, Class and Error are derived from the message, for
	// readers (jq, grep): the job id and type, the error class and text
	// as dlq list shows them. They are not part of the message: Message
	// ignores them and an import does not read them.
	ID    string
	Type  string
	Class string
	Error string
	// DeliveryCount is the x-delivery-count a quorum queue added to the
	// message when it delivered it again (the exporter's own reads count),
	// taken out of Headers: it describes deliveries from the queue read,
	// not the message.
	DeliveryCount int

	// Properties are the message's AMQP properties.
	Properties Properties
	// Headers are the message's headers with the Go type broker.Table
	// lists for each AMQP field type (nil when it has none).
	Headers broker.Table
	// Body is the message body, byte for byte.
	Body []byte
}

// Properties are the AMQP basic properties of a message but its headers.
// Zero values are absent properties (AMQP does not tell an absent
// priority or delivery mode from 0).
type Properties struct {
	ContentType     string
	ContentEncoding string
	DeliveryMode    uint8
	Priority        uint8
	CorrelationID   string
	ReplyTo         string
	Expiration      string
	MessageID       string
	// Timestamp is in whole seconds.
	Timestamp time.Time
	Type      string
	UserID    string
	AppID     string
}

// NewRecord makes the record of msg, a message read from queue, as
// broker.Consumer.NextRaw returns it. A quorum queue's x-delivery-count
// header goes to DeliveryCount. The derived fields are read as dlq list
// reads them, except that a message that is not a well-formed job is of
// class "malformed" (unless RabbitMQ dead-lettered it) even if it carries
// warren's failure headers. Nothing is checked here: a header value that
// cannot be written makes MarshalJSON (and Encoder.Encode) fail.
func NewRecord(queue string, msg broker.Message) Record {
	return newRecord(queue, msg, entryOf(msg))
}

// entryOf reads msg as dlq list would.
func entryOf(msg broker.Message) Entry {
	env, err := msg.Envelope()
	if err != nil {
		env = &broker.Envelope{ID: msg.MessageID, Type: msg.Type, ContentType: msg.ContentType, Headers: msg.Headers, Body: msg.Body}
	}
	return NewEntry(&broker.Delivery{Envelope: env, Err: err})
}

func newRecord(queue string, msg broker.Message, e Entry) Record {
	r := Record{
		Queue: queue,
		ID:    msg.MessageID,
		Type:  msg.Type,
		Class: e.Class,
		Error: e.Error,
		Properties: Properties{
			ContentType:     msg.ContentType,
			ContentEncoding: msg.ContentEncoding,
			DeliveryMode:    msg.DeliveryMode,
			Priority:        msg.Priority,
			CorrelationID:   msg.CorrelationID,
			ReplyTo:         msg.ReplyTo,
			Expiration:      msg.Expiration,
			MessageID:       msg.MessageID,
			Timestamp:       msg.Timestamp,
			Type:            msg.Type,
			UserID:          msg.UserID,
			AppID:           msg.AppID,
		},
		Headers: msg.Headers,
		Body:    msg.Body,
	}
	if v, ok := msg.Headers[deliveryCountHeader]; ok {
		if n, ok := intOf(v); ok {
			r.DeliveryCount = n
			r.Headers = make(broker.Table, len(msg.Headers)-1)
			for k, v := range msg.Headers {
				if k != deliveryCountHeader {
					r.Headers[k] = v
				}
			}
		}
	}
	if len(r.Headers) == 0 {
		r.Headers = nil
	}
	return r
}

func intOf(v any) (int, bool) {
	switch x := v.(type) {
	case int8:
		return int(x), true
	case int16:
		return int(x), true
	case int32:
		return int(x), true
	case int64:
		return int(x), true
	case uint8:
		return int(x), true
	case uint16:
		return int(x), true
	case uint32:
		return int(x), true
	}
	return 0, false
}

// Message returns the message of r, as it was read: properties,
// headers and body (not copied). The derived fields are not part of it.
func (r Record) Message() broker.Message {
	p := r.Properties
	msg := broker.Message{
		ContentType:     p.ContentType,
		ContentEncoding: p.ContentEncoding,
		DeliveryMode:    p.DeliveryMode,
		Priority:        p.Priority,
		CorrelationID:   p.CorrelationID,
		ReplyTo:         p.ReplyTo,
		Expiration:      p.Expiration,
		MessageID:       p.MessageID,
		Timestamp:       p.Timestamp,
		Type:            p.Type,
		UserID:          p.UserID,
		AppID:           p.AppID,
		Body:            r.Body,
	}
	if len(r.Headers) > 0 {
		msg.Headers = r.Headers
	}
	return msg
}
