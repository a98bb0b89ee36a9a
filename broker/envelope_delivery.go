package broker

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// message is what readMessage reads: the properties and body that
// amqp.Delivery, amqp.Return and Message share.
type message struct {
	contentType, contentEncoding string
	messageID, typ, appID        string
	correlationID, replyTo       string
	expiration                   string
	timestamp                    time.Time
	priority                     uint8
	// headers are in amqp091-go's types or in warren's (Table, Decimal);
	// what lands in Envelope.Headers is converted to warren's.
	headers map[string]any
	// headersErr is set when the header table could not be read: the
	// message came without it.
	headersErr *amqp.HeadersError
	body       []byte
	// typeOptional is set for direct replies, which carry no type (the
	// caller knows it): no error is made for its absence.
	typeOptional bool
}

// messageOf takes what readMessage reads from a delivery.
func messageOf(d *amqp.Delivery) message {
	return message{
		contentType:     d.ContentType,
		contentEncoding: d.ContentEncoding,
		messageID:       d.MessageId,
		typ:             d.Type,
		appID:           d.AppId,
		correlationID:   d.CorrelationId,
		replyTo:         d.ReplyTo,
		expiration:      d.Expiration,
		timestamp:       d.Timestamp,
		priority:        d.Priority,
		headers:         d.Headers,
		headersErr:      d.HeadersErr,
		body:            d.Body,
	}
}

// messageOfReturn takes what readMessage reads from a message the broker
// returned as unroutable.
func messageOfReturn(r *amqp.Return) message {
	return message{
		contentType:     r.ContentType,
		contentEncoding: r.ContentEncoding,
		messageID:       r.MessageId,
		typ:             r.Type,
		appID:           r.AppId,
		correlationID:   r.CorrelationId,
		replyTo:         r.ReplyTo,
		expiration:      r.Expiration,
		timestamp:       r.Timestamp,
		priority:        r.Priority,
		headers:         r.Headers,
		headersErr:      r.HeadersErr,
		body:            r.Body,
	}
}

// readMessage reads m leniently: it returns the envelope as far as it
// could be read, and an error when m is not a well-formed job. A header
// that could not be read stays in Headers as it came, so a malformed job
// can still be dead-lettered without losing anything.
func readMessage(m *message) (*Envelope, error) {
	e := new(Envelope)
	return e, readMessageInto(m, e)
}

// readMessageInto is readMessage into e, which must be a zero Envelope:
// a Consumer allocates it with its Delivery.
func readMessageInto(m *message, e *Envelope) error {
	id, typ, ts := m.messageID, m.typ, m.timestamp
	if (id == "" || typ == "") && len(m.headers) > 0 {
		// A message from CloudEvents tooling: its id, type and time may
		// be attributes only.
		id, typ, ts = cloudEventProperties(m.headers, id, typ, ts)
	}
	var first error
	if !isMsgpack(m.contentType) {
		if m.contentType == "" {
			first = fmt.Errorf("%w: the message has no content type", ErrUnsupportedContentType)
		} else {
			first = fmt.Errorf("%w: got %q", ErrUnsupportedContentType, m.contentType)
		}
	} else if enc := m.contentEncoding; enc != "" && !strings.EqualFold(enc, "identity") {
		first = fmt.Errorf("%w: content encoding %q; publish the MessagePack body uncompressed", ErrUnsupportedContentType, enc)
	} else if typ == "" && !m.typeOptional {
		first = fmt.Errorf("%w (message id %q)", ErrMissingType, id)
	}
	// Field by field: e is zero already, and assigning a whole Envelope
	// copies every byte of it, a good part of a delivery's cost.
	e.ID, e.Type, e.ContentType, e.AppID = id, typ, m.contentType, m.appID
	e.CorrelationID, e.ReplyTo, e.Expiration = m.correlationID, m.replyTo, m.expiration
	e.Timestamp, e.Priority, e.Attempt, e.Body = ts.UTC(), m.priority, 1, m.body
	var problems []string
	fail := func(err error) {
		problems = append(problems, err.Error())
	}
	failure := func() *Failure {
		if e.Failure == nil {
			e.Failure = &Failure{}
		}
		return e.Failure
	}
	for name, v := range m.headers {
		var err error
		switch name {
		case HeaderAttempt:
			e.Attempt, err = headerInt(name, v, 1, MaxAttempt)
		case HeaderReplayCount:
			e.ReplayCount, err = headerInt(name, v, 0, MaxReplayCount)
		case HeaderVersion:
			e.Version, err = headerInt(name, v, 1, MaxVersion)
		case HeaderCrashes:
			e.Crashes, err = headerInt(name, v, 0, MaxAttempt)
		case HeaderError:
			failure().Error, err = headerString(name, v)
		case HeaderErrorClass:
			failure().Class, err = headerString(name, v)
		case HeaderFirstFailedAt:
			failure().FirstFailedAt, err = headerTime(name, v)
		case HeaderFailedAt:
			failure().FailedAt, err = headerTime(name, v)
		case HeaderOriginExchange:
			failure().Origin.Exchange, err = headerString(name, v)
		case HeaderOriginRoutingKey:
			failure().Origin.RoutingKey, err = headerString(name, v)
		case HeaderOriginQueue:
			failure().Origin.Queue, err = headerString(name, v)
		case HeaderWorkerHost:
			failure().WorkerHost, err = headerString(name, v)
		case HeaderDeadline:
			e.Deadline, err = headerDeadline(name, v)
		case HeaderReplyStatus:
			e.ReplyStatus, err = headerString(name, v)
		case HeaderTraceparent, HeaderTracestate:
			// Trace context is advisory (W3C: ignore what cannot be
			// parsed): a value of another type stays a user header.
			if s, ok := stringOf(v); ok {
				if name == HeaderTraceparent {
					e.Traceparent = s
				} else {
					e.Tracestate = s
				}
				break
			}
			fallthrough
		default:
			if e.Headers == nil {
				e.Headers = make(map[string]any, len(m.headers))
			}
			e.Headers[name] = fromWire(v)
		}
		if err != nil {
			fail(err)
			if e.Headers == nil {
				e.Headers = make(map[string]any, len(m.headers))
			}
			e.Headers[name] = fromWire(v)
		}
	}
	if m.headersErr != nil {
		// Without headers there is nothing else to find wrong in them.
		h := &HeadersError{err: m.headersErr}
		if first != nil {
			return fmt.Errorf("%w; %w", first, h)
		}
		return fmt.Errorf("%w (message id %q): %w", ErrMalformedEnvelope, id, h)
	}
	if first != nil {
		return first
	}
	if len(problems) > 0 {
		slices.Sort(problems) // map order is random; messages should not be
		return fmt.Errorf("%w (message id %q): %s", ErrMalformedEnvelope, id, strings.Join(problems, "; "))
	}
	return nil
}

// isMsgpack reports whether a content type names MessagePack, ignoring
// case and parameters ("application/msgpack; charset=binary").
func isMsgpack(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	return strings.EqualFold(ct, ContentType) || strings.EqualFold(ct, contentTypeX) || strings.EqualFold(ct, contentTypeVnd)
}

// headerInt reads an integer header sent as any AMQP integer type (py-amqp's
// 'L' included, which amqp091-go reads as int64), or as a double with an
// integral value (some clients send every number so), and checks it lies in
// [lo, hi].
func headerInt(name string, v any, lo, hi int64) (int, error) {
	n, err := headerInt64(name, v, lo, hi)
	return int(n), err
}

// headerInt64 is headerInt for ranges wider than an int may hold.
func headerInt64(name string, v any, lo, hi int64) (int64, error) {
	var n int64
	switch x := v.(type) {
	case int8:
		n = int64(x)
	case int16:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case int:
		n = int64(x)
	case uint8:
		n = int64(x)
	case uint16:
		n = int64(x)
	case uint32:
		n = int64(x)
	case uint:
		// uint and uint64 are not types amqp091-go reads ('L' is an
		// int64), but a Delivery may be built by hand.
		return headerInt64(name, uint64(x), lo, hi)
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("header %q: %d is out of range [%d, %d]", name, x, lo, hi)
		}
		n = int64(x)
	case float64:
		if x != math.Trunc(x) || x < math.MinInt64 || x >= math.MaxInt64 {
			return 0, fmt.Errorf("header %q: %v is not an integer", name, x)
		}
		n = int64(x)
	default:
		return 0, fmt.Errorf("header %q: want an integer, got %s", name, describe(v))
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("header %q: %d is out of range [%d, %d]", name, n, lo, hi)
	}
	return n, nil
}

func stringOf(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	}
	return "", false
}

func headerString(name string, v any) (string, error) {
	s, ok := stringOf(v)
	if !ok {
		return "", fmt.Errorf("header %q: want a string, got %s", name, describe(v))
	}
	return s, nil
}

// headerTime reads an RFC 3339 time (any fraction of a second) as UTC.
func headerTime(name string, v any) (time.Time, error) {
	s, ok := stringOf(v)
	if !ok {
		return time.Time{}, fmt.Errorf("header %q: want an RFC 3339 time string, got %s", name, describe(v))
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("header %q: %.64q is not an RFC 3339 time such as 2026-11-24T10:00:00.123Z", name, s)
	}
	// In UTC it must still have four digits, so it can be written back.
	if t = t.UTC(); t.Year() < 0 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("header %q: %q is outside the years 0000 to 9999 in UTC", name, s)
	}
	return t, nil
}

// headerDeadline reads warren-deadline: Unix milliseconds as any AMQP
// integer (what warren writes: no text to format and parse on every
// request), or an RFC 3339 time string.
func headerDeadline(name string, v any) (time.Time, error) {
	if _, ok := stringOf(v); ok {
		return headerTime(name, v)
	}
	// Years 0000 to 9999, as for the times written as text.
	const lo, hi = -62167219200000, 253402300799999
	ms, err := headerInt64(name, v, lo, hi)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w (Unix milliseconds, or an RFC 3339 time string)", err)
	}
	return time.UnixMilli(ms).UTC(), nil
}

// describe names a header value in errors without echoing much of it.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "void"
	case string:
		return fmt.Sprintf("string %.32q", x)
	}
	return fmt.Sprintf("%T", v)
}
