package broker

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Message is an AMQP message as warren reads and publishes it, without
// interpreting it as a job: its properties, headers and body. Consumer's
// NextRaw returns one as the broker delivered it, Sender.PublishMessage sends one
// exactly as it is, and Envelope.Message and Message.Envelope convert
// between a message and a job's envelope.
//
// Zero values are absent properties (AMQP does not tell an absent
// priority or delivery mode from 0).
type Message struct {
	ContentType     string
	ContentEncoding string
	// DeliveryMode is 2 for a persistent message, 1 (or 0) for a
	// transient one.
	DeliveryMode  uint8
	Priority      uint8
	CorrelationID string
	ReplyTo       string
	Expiration    string
	MessageID     string
	// Timestamp is in whole seconds.
	Timestamp time.Time
	Type      string
	UserID    string
	AppID     string
	// Headers are the message's headers (nil when it has none), each
	// value of the Go type Table documents for its AMQP field type.
	Headers Table
	// Body is the message body, byte for byte (not copied).
	Body []byte
}

// Table is an AMQP field table: the headers of a message, or a table
// nested in them. Its values are of the Go type of their AMQP field type,
// as warren reads them and writes them:
//
//	bool                 boolean (t)
//	int8, uint8          short-short int and uint (b, B)
//	int16, uint16        short int and uint (s, u)
//	int32, uint32        long int and uint (I, i)
//	int64                long-long int (l)
//	int                  long int (I); written only, never read
//	float32, float64     float and double (f, d)
//	Decimal              decimal (D)
//	string               long string (S)
//	[]byte               byte array (x)
//	time.Time            timestamp (T), in whole seconds
//	Table                nested table (F)
//	[]any                field array (A) of these values; an empty one is read as nil
//	nil                  void (V)
//
// Its JSON form (MarshalJSON, UnmarshalJSON) keeps each value's field
// type, for files that carry messages exactly (see package deadletter).
type Table map[string]any

// Decimal is an AMQP decimal value: Value × 10^-Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// Envelope reads the job envelope of m, as a worker reads a delivered
// message. The body is not copied or decoded: call Decode, which checks
// it first.
//
// It accepts the content types application/msgpack, application/x-msgpack
// and application/vnd.msgpack, in any case and with any parameters;
// integer headers as any AMQP integer type (or a double with an integral
// value); string headers as long strings or byte arrays. A missing attempt
// header means the first attempt. The error wraps ErrUnsupportedContentType,
// ErrMissingType or ErrMalformedEnvelope (naming the header): such a
// message cannot be handled and belongs in a dead-letter queue.
func (m Message) Envelope() (*Envelope, error) {
	return fromMessage(&message{
		contentType:     m.ContentType,
		contentEncoding: m.ContentEncoding,
		messageID:       m.MessageID,
		typ:             m.Type,
		appID:           m.AppID,
		correlationID:   m.CorrelationID,
		replyTo:         m.ReplyTo,
		expiration:      m.Expiration,
		timestamp:       m.Timestamp,
		priority:        m.Priority,
		headers:         m.Headers,
		body:            m.Body,
	})
}

// fromMessage is readMessage returning no envelope with an error.
func fromMessage(m *message) (*Envelope, error) {
	e, err := readMessage(m)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// messageOfDelivery is the Message of a delivery: every property, the
// headers in warren's types, the body not copied.
func messageOfDelivery(d *amqp.Delivery) Message {
	return Message{
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
		Headers:         tableOf(d.Headers),
		Body:            d.Body,
	}
}

// publishing is the amqp091-go message of m, its headers converted to
// amqp091-go's types (nil when there is none).
func (m *Message) publishing() amqp.Publishing {
	return m.publishingWith(wireTable(m.Headers))
}

// publishingWith is the amqp091-go message of m with the headers h,
// already in amqp091-go's types.
func (m *Message) publishingWith(h amqp.Table) amqp.Publishing {
	return amqp.Publishing{
		Headers:         h,
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
}

// tableOf converts a table amqp091-go read into a Table: nested tables and
// decimals become warren's types, the rest is kept. nil stays nil.
func tableOf(t amqp.Table) Table {
	if t == nil {
		return nil
	}
	out := make(Table, len(t))
	for k, v := range t {
		out[k] = fromWire(v)
	}
	return out
}

// fromWire converts one value amqp091-go read into warren's types. Arrays
// are copied only when an element changes.
func fromWire(v any) any {
	switch x := v.(type) {
	case amqp.Table:
		return tableOf(x)
	case amqp.Decimal:
		return Decimal(x)
	case []any:
		return mapArray(x, fromWire)
	}
	return v
}

// wireTable converts a Table into amqp091-go's types for sending: a new
// table, nil when t is empty.
func wireTable(t map[string]any) amqp.Table {
	if len(t) == 0 {
		return nil
	}
	out := make(amqp.Table, len(t))
	for k, v := range t {
		out[k] = toWire(v)
	}
	return out
}

// toWire converts one value into amqp091-go's types: Table (and a plain
// map[string]any) to amqp.Table, Decimal to amqp.Decimal, arrays copied
// only when an element changes. Other values are kept, so amqp091-go
// refuses what AMQP cannot carry.
func toWire(v any) any {
	switch x := v.(type) {
	case Table:
		return wireNested(x)
	case map[string]any:
		return wireNested(x)
	case Decimal:
		return amqp.Decimal(x)
	case []any:
		return mapArray(x, toWire)
	}
	return v
}

// mapArray applies convert to each element of a, copying a only once an
// element changes: most arrays hold nothing to convert, and are returned
// as they are.
func mapArray(a []any, convert func(any) any) []any {
	var out []any
	for i, el := range a {
		c := convert(el)
		if out == nil && !sameValue(c, el) {
			out = make([]any, len(a))
			copy(out, a[:i])
		}
		if out != nil {
			out[i] = c
		}
	}
	if out == nil {
		return a
	}
	return out
}

// wireNested is wireTable for a nested table, which stays a table when
// empty.
func wireNested(t map[string]any) amqp.Table {
	out := make(amqp.Table, len(t))
	for k, v := range t {
		out[k] = toWire(v)
	}
	return out
}

// sameValue reports whether a conversion left a value as it was: only
// tables, arrays and decimals change, and they change type or identity.
func sameValue(converted, orig any) bool {
	switch orig.(type) {
	case amqp.Table, amqp.Decimal, Table, map[string]any, Decimal:
		return false
	case []any:
		a, b := converted.([]any), orig.([]any)
		return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
	}
	return true
}
