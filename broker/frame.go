package broker

import (
	"fmt"
	"math"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A message's properties and headers travel in one content header frame,
// which the broker refuses when it exceeds the connection's frame_max: it
// then closes the whole connection (501 FRAME_ERROR, frame_too_large),
// taking every channel on it down, other publishers' and consumers'
// included. amqp091-go sends such a frame as it is, and a property it
// cannot encode (a short string over 255 bytes, a header value of a type
// AMQP lacks) leaves a method frame without its content header on the
// wire, which the broker answers by closing the connection too; so does a
// header value RabbitMQ cannot parse (a NaN or infinite float). warren
// measures the frame before sending and refuses the job instead.

const (
	// frameOverhead is a frame's type, channel, size and end octets.
	frameOverhead = 8
	// contentHeaderFixed is a content header's class, weight, body size
	// and property flags.
	contentHeaderFixed = 2 + 2 + 8 + 2
	// defaultFrameMax is RabbitMQ's default frame_max, assumed while no
	// connection has negotiated one.
	defaultFrameMax = 131072
	// minFrameMax is the smallest frame_max AMQP lets a peer negotiate.
	minFrameMax = 4096
	// maxFastProperties bounds the properties of a message without
	// headers: 9 short strings of at most 255 bytes, and the fixed-size
	// fields. It is below minFrameMax, so such a message needs no count.
	maxFastProperties = contentHeaderFixed + 9*(1+maxShortString) + 1 + 1 + 8
)

// A compile-time check that maxFastProperties fits the smallest frame.
const _ = uint(minFrameMax - frameOverhead - maxFastProperties)

// checkFrame returns an error wrapping ErrInvalidJob and
// ErrHeadersTooLarge when msg's content header frame would exceed
// frameMax (0: unknown, RabbitMQ's default is assumed), or when a property
// or header cannot be encoded. jobID names the message in the error.
func checkFrame(msg *amqp.Publishing, frameMax int, jobID string) error {
	if len(msg.Headers) == 0 && shortPropertiesFit(msg) {
		return nil
	}
	n, err := contentHeaderSize(msg)
	if err != nil {
		return fmt.Errorf("%w: job %s: %v; RabbitMQ would close the connection", ErrInvalidJob, jobID, err)
	}
	if frameMax <= 0 {
		frameMax = defaultFrameMax
	}
	if limit := frameMax - frameOverhead; n > limit {
		return fmt.Errorf("%w: %w: job %s: its properties and headers take %d bytes, and the connection's frame_max allows %d; RabbitMQ would close the connection: keep large data in the body",
			ErrInvalidJob, ErrHeadersTooLarge, jobID, n, limit)
	}
	return nil
}

// shortPropertiesFit reports whether every short-string property of msg
// is at most 255 bytes.
func shortPropertiesFit(msg *amqp.Publishing) bool {
	for _, s := range [...]string{msg.ContentType, msg.ContentEncoding, msg.CorrelationId, msg.ReplyTo,
		msg.Expiration, msg.MessageId, msg.Type, msg.UserId, msg.AppId} {
		if len(s) > maxShortString {
			return false
		}
	}
	return true
}

// contentHeaderSize returns the size of msg's content header frame
// payload, as amqp091-go encodes it, or why it cannot be encoded.
func contentHeaderSize(msg *amqp.Publishing) (int, error) {
	n := contentHeaderFixed
	for _, p := range [...]struct{ name, v string }{
		{"content_type", msg.ContentType}, {"content_encoding", msg.ContentEncoding},
		{"correlation_id", msg.CorrelationId}, {"reply_to", msg.ReplyTo}, {"expiration", msg.Expiration},
		{"message_id", msg.MessageId}, {"type", msg.Type}, {"user_id", msg.UserId}, {"app_id", msg.AppId},
	} {
		if p.v == "" {
			continue
		}
		if len(p.v) > maxShortString {
			return 0, fmt.Errorf("property %s is %d bytes, AMQP allows at most %d", p.name, len(p.v), maxShortString)
		}
		n += 1 + len(p.v)
	}
	if len(msg.Headers) > 0 {
		t, err := tableSize(msg.Headers, 0)
		if err != nil {
			return 0, fmt.Errorf("headers: %w", err)
		}
		n += t
	}
	if msg.DeliveryMode > 0 {
		n++
	}
	if msg.Priority > 0 {
		n++
	}
	if !msg.Timestamp.IsZero() {
		n += 8
	}
	return n, nil
}

// tableSize is the encoded size of a field table: its length, then each
// name and value.
func tableSize(t amqp.Table, depth int) (int, error) {
	n := 4
	for name, v := range t {
		if len(name) > maxShortString {
			return 0, fmt.Errorf("header name %.40q… is %d bytes, AMQP allows at most %d", name, len(name), maxShortString)
		}
		f, err := fieldSize(v, depth)
		if err != nil {
			return 0, fmt.Errorf("header %q: %w", name, err)
		}
		n += 1 + len(name) + f
	}
	return n, nil
}

// fieldSize is the encoded size of one field value, its type octet
// included, for the types amqp091-go writes.
func fieldSize(v any, depth int) (int, error) {
	if depth >= maxHeaderDepth {
		return 0, fmt.Errorf("nested deeper than %d levels", maxHeaderDepth)
	}
	switch v := v.(type) {
	case nil:
		return 1, nil
	case bool, byte, int8:
		return 2, nil
	case int16, uint16:
		return 3, nil
	case int, int32, uint32:
		return 5, nil
	case float32:
		return 5, finite(float64(v))
	case float64:
		return 9, finite(v)
	case int64, time.Time:
		return 9, nil
	case amqp.Decimal:
		return 6, nil
	case string:
		return 5 + len(v), nil
	case []byte:
		return 5 + len(v), nil
	case []any:
		n := 5
		for i, e := range v {
			f, err := fieldSize(e, depth+1)
			if err != nil {
				return 0, fmt.Errorf("element %d: %w", i, err)
			}
			n += f
		}
		return n, nil
	case amqp.Table:
		t, err := tableSize(v, depth+1)
		return 1 + t, err
	}
	return 0, fmt.Errorf("a %T cannot be sent in an AMQP header", v)
}

// finite refuses what RabbitMQ's table parser does not read: it closes the
// connection (541 INTERNAL_ERROR) on a NaN or an infinity.
func finite(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("%v: RabbitMQ refuses NaN and infinities in headers; send a string", f)
	}
	return nil
}
