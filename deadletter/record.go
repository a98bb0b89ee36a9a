package deadletter

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
)

// RecordVersion is the version of the export format that Encoder writes
// and Decoder reads (docs/cli.md describes it). A new version is made for
// any change a version-1 reader would misread or refuse.
const RecordVersion = 1

// MaxRecordBytes is the longest line a Decoder reads: a message of
// RabbitMQ's largest default size (128 MiB), in base64, with room for its
// properties and headers.
const MaxRecordBytes = 256 << 20

// maxFieldDepth is how deeply tables and arrays may nest in the headers
// (the headers table itself at depth 0): amqp091-go reads no deeper.
const maxFieldDepth = 32

// deliveryCountHeader is the header a quorum queue adds to a message it
// delivers again: the count of its earlier deliveries from that queue.
const deliveryCountHeader = "x-delivery-count"

// Record is one dead-lettered message as exported: the message exactly as
// the broker delivered it (every property, the headers with their AMQP
// types, the body's bytes), the queue it was read from, and, for people
// reading the file, a few fields derived from it.
//
// A Record's JSON form is one line of the export format (MarshalJSON,
// UnmarshalJSON): headers as {"t": type, "v": value} objects that keep
// each AMQP field type, the body in base64. What Publishing returns
// survives the trip through JSON as it goes on the wire: the same
// properties, header types and values, and body bytes (the only thing not
// kept is a NaN's payload bits). Values read back have the Go types
// amqp091-go reads (an empty array is a nil []any; times are in UTC).
type Record struct {
	// Queue is the queue the message was read from; an import sends the
	// message back to a queue of that name unless told otherwise.
	Queue string
	// ExportedAt is when the record was written (zero: not said).
	ExportedAt time.Time

	// ID, Type, Class and Error are derived from the message, for
	// readers (jq, grep): the job id and type, the error class and text
	// as dlq list shows them. They are not part of the message: Publishing
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
	// Headers are the message's headers with the Go types amqp091-go gives
	// each AMQP field type (nil when it has none).
	Headers amqp.Table
	// Body is the message body, byte for byte.
	Body []byte
}

// Properties are the AMQP basic properties of a message but its headers.
// Zero values are absent properties (AMQP, and amqp091-go, do not tell an
// absent priority or delivery mode from 0).
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
func NewRecord(queue string, msg amqp.Publishing) Record {
	return newRecord(queue, msg, entryOf(msg))
}

// entryOf reads msg as dlq list would.
func entryOf(msg amqp.Publishing) Entry {
	d := &amqp.Delivery{
		Headers: msg.Headers, ContentType: msg.ContentType, ContentEncoding: msg.ContentEncoding,
		DeliveryMode: msg.DeliveryMode, Priority: msg.Priority, CorrelationId: msg.CorrelationId,
		ReplyTo: msg.ReplyTo, Expiration: msg.Expiration, MessageId: msg.MessageId,
		Timestamp: msg.Timestamp, Type: msg.Type, UserId: msg.UserId, AppId: msg.AppId, Body: msg.Body,
	}
	env, err := broker.FromDelivery(d)
	if err != nil {
		env = &broker.Envelope{ID: msg.MessageId, Type: msg.Type, ContentType: msg.ContentType, Headers: msg.Headers, Body: msg.Body}
	}
	return NewEntry(&broker.Delivery{Envelope: env, Err: err})
}

func newRecord(queue string, msg amqp.Publishing, e Entry) Record {
	r := Record{
		Queue: queue,
		ID:    msg.MessageId,
		Type:  msg.Type,
		Class: e.Class,
		Error: e.Error,
		Properties: Properties{
			ContentType:     msg.ContentType,
			ContentEncoding: msg.ContentEncoding,
			DeliveryMode:    msg.DeliveryMode,
			Priority:        msg.Priority,
			CorrelationID:   msg.CorrelationId,
			ReplyTo:         msg.ReplyTo,
			Expiration:      msg.Expiration,
			MessageID:       msg.MessageId,
			Timestamp:       msg.Timestamp,
			Type:            msg.Type,
			UserID:          msg.UserId,
			AppID:           msg.AppId,
		},
		Headers: msg.Headers,
		Body:    msg.Body,
	}
	if v, ok := msg.Headers[deliveryCountHeader]; ok {
		if n, ok := intOf(v); ok {
			r.DeliveryCount = n
			r.Headers = make(amqp.Table, len(msg.Headers)-1)
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

// Publishing returns the message of r, as it was read: properties,
// headers and body (not copied). The derived fields are not part of it.
func (r Record) Publishing() amqp.Publishing {
	p := r.Properties
	msg := amqp.Publishing{
		ContentType:     p.ContentType,
		ContentEncoding: p.ContentEncoding,
		DeliveryMode:    p.DeliveryMode,
		Priority:        p.Priority,
		CorrelationId:   p.CorrelationID,
		ReplyTo:         p.ReplyTo,
		Expiration:      p.Expiration,
		MessageId:       p.MessageID,
		Timestamp:       p.Timestamp,
		Type:            p.Type,
		UserId:          p.UserID,
		AppId:           p.AppID,
		Body:            r.Body,
	}
	if len(r.Headers) > 0 {
		msg.Headers = r.Headers
	}
	return msg
}

// The JSON form.

// wireRecord is one line of the export format.
type wireRecord struct {
	Version       int                        `json:"version"`
	Queue         text                       `json:"queue"`
	ExportedAt    *time.Time                 `json:"exported_at,omitempty"`
	ID            text                       `json:"id,omitempty"`
	Type          text                       `json:"type,omitempty"`
	Class         text                       `json:"class,omitempty"`
	Error         text                       `json:"error,omitempty"`
	DeliveryCount int                        `json:"delivery_count,omitempty"`
	Properties    wireProperties             `json:"properties"`
	Headers       map[string]json.RawMessage `json:"headers,omitempty"`
	Body          *[]byte                    `json:"body"` // base64; a pointer so that a missing body is told from an empty one
}

type wireProperties struct {
	ContentType     text   `json:"content_type,omitempty"`
	ContentEncoding text   `json:"content_encoding,omitempty"`
	DeliveryMode    uint8  `json:"delivery_mode,omitempty"`
	Priority        uint8  `json:"priority,omitempty"`
	CorrelationID   text   `json:"correlation_id,omitempty"`
	ReplyTo         text   `json:"reply_to,omitempty"`
	Expiration      text   `json:"expiration,omitempty"`
	MessageID       text   `json:"message_id,omitempty"`
	Timestamp       *stamp `json:"timestamp,omitempty"`
	Type            text   `json:"type,omitempty"`
	UserID          text   `json:"user_id,omitempty"`
	AppID           text   `json:"app_id,omitempty"`
}

// wireValue is a header value with its AMQP type: {"t": type, "v": value},
// {"t": "string", "b64": …} for a string that is not UTF-8, {"t": "void"}.
type wireValue struct {
	T   string          `json:"t"`
	V   json.RawMessage `json:"v,omitempty"`
	B64 *string         `json:"b64,omitempty"`
}

// Type names of header values, one per AMQP field type (its letter in
// RabbitMQ's table encoding in the comment).
const (
	tBool      = "bool"      // t
	tInt8      = "int8"      // b
	tUint8     = "uint8"     // B
	tInt16     = "int16"     // s
	tUint16    = "uint16"    // u
	tInt32     = "int32"     // I
	tUint32    = "uint32"    // i
	tInt64     = "int64"     // l
	tFloat32   = "float32"   // f
	tFloat64   = "float64"   // d
	tDecimal   = "decimal"   // D
	tString    = "string"    // S
	tBytes     = "bytes"     // x
	tTimestamp = "timestamp" // T
	tTable     = "table"     // F
	tArray     = "array"     // A
	tVoid      = "void"      // V
)

// MarshalJSON writes r as one line of the export format (without the
// newline). It fails for what the format cannot hold exactly: a header
// value of a type amqp091-go does not write, a header name that is not
// UTF-8, tables nested deeper than 32 levels, a timestamp with a fraction
// of a second.
func (r Record) MarshalJSON() ([]byte, error) {
	body := r.Body
	if body == nil {
		body = []byte{} // "", not null
	}
	w := wireRecord{
		Version:       RecordVersion,
		Queue:         text(r.Queue),
		ID:            text(r.ID),
		Type:          text(r.Type),
		Class:         text(r.Class),
		Error:         text(r.Error),
		DeliveryCount: r.DeliveryCount,
		Body:          &body,
	}
	if !r.ExportedAt.IsZero() {
		t := r.ExportedAt.UTC()
		w.ExportedAt = &t
	}
	p := r.Properties
	w.Properties = wireProperties{
		ContentType: text(p.ContentType), ContentEncoding: text(p.ContentEncoding),
		DeliveryMode: p.DeliveryMode, Priority: p.Priority,
		CorrelationID: text(p.CorrelationID), ReplyTo: text(p.ReplyTo), Expiration: text(p.Expiration),
		MessageID: text(p.MessageID), Type: text(p.Type), UserID: text(p.UserID), AppID: text(p.AppID),
	}
	if !p.Timestamp.IsZero() {
		if p.Timestamp.Nanosecond() != 0 {
			return nil, errors.New("deadletter: the timestamp property has a fraction of a second; AMQP timestamps are whole seconds")
		}
		s := stamp(p.Timestamp.Unix())
		w.Properties.Timestamp = &s
	}
	if len(r.Headers) > 0 {
		h, err := encodeTable(r.Headers, 0)
		if err != nil {
			return nil, fmt.Errorf("deadletter: headers of message %q: %w", r.Properties.MessageID, err)
		}
		w.Headers = h
	}
	return marshal(w)
}

// UnmarshalJSON reads one line of the export format. It refuses what a
// version-1 record does not hold (unknown fields, unknown value types,
// values out of their type's range) rather than guess: a record that
// reads is published exactly as it was exported.
func (r *Record) UnmarshalJSON(b []byte) error {
	// The version first, leniently: a newer record may have fields this
	// one does not know. json.Unmarshal also checks the whole line is one
	// JSON value.
	var probe struct {
		Version *json.RawMessage `json:"version"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if probe.Version == nil {
		return errors.New(`no "version": not a record of warren dlq export`)
	}
	var version int
	if err := json.Unmarshal(*probe.Version, &version); err != nil || version < 1 {
		return fmt.Errorf(`"version" is %s; want a positive integer`, shortJSON(*probe.Version))
	}
	if version > RecordVersion {
		return fmt.Errorf("record version %d was written by a newer warren (this one reads version %d); import it with that version", version, RecordVersion)
	}
	var w wireRecord
	if err := strictUnmarshal(b, &w); err != nil {
		return err
	}
	if w.Body == nil {
		return errors.New(`no "body"; an empty body is "body": ""`)
	}
	if w.DeliveryCount < 0 {
		return fmt.Errorf(`"delivery_count" %d is negative`, w.DeliveryCount)
	}
	p := w.Properties
	out := Record{
		Queue:         string(w.Queue),
		ID:            string(w.ID),
		Type:          string(w.Type),
		Class:         string(w.Class),
		Error:         string(w.Error),
		DeliveryCount: w.DeliveryCount,
		Properties: Properties{
			ContentType: string(p.ContentType), ContentEncoding: string(p.ContentEncoding),
			DeliveryMode: p.DeliveryMode, Priority: p.Priority,
			CorrelationID: string(p.CorrelationID), ReplyTo: string(p.ReplyTo), Expiration: string(p.Expiration),
			MessageID: string(p.MessageID), Type: string(p.Type), UserID: string(p.UserID), AppID: string(p.AppID),
		},
		Body: *w.Body,
	}
	if out.Body == nil {
		out.Body = []byte{}
	}
	for _, f := range [...]struct {
		name string
		v    text
	}{
		{"queue", w.Queue}, {"content_type", p.ContentType}, {"content_encoding", p.ContentEncoding},
		{"correlation_id", p.CorrelationID}, {"reply_to", p.ReplyTo}, {"expiration", p.Expiration},
		{"message_id", p.MessageID}, {"type", p.Type}, {"user_id", p.UserID}, {"app_id", p.AppID},
	} {
		if len(f.v) > maxShortString {
			return fmt.Errorf("%s is %d bytes; AMQP allows at most %d", f.name, len(f.v), maxShortString)
		}
	}
	if w.ExportedAt != nil {
		if y := w.ExportedAt.UTC().Year(); y < 0 || y > 9999 {
			return fmt.Errorf(`"exported_at" is in the year %d in UTC; RFC 3339 has years 0000 to 9999`, y)
		}
		out.ExportedAt = *w.ExportedAt
	}
	if p.Timestamp != nil {
		out.Properties.Timestamp = p.Timestamp.time()
	}
	if len(w.Headers) > 0 {
		h, err := decodeTable(w.Headers, 0)
		if err != nil {
			return fmt.Errorf("headers: %w", err)
		}
		out.Headers = h
	}
	*r = out
	return nil
}

// maxShortString is the longest AMQP short string: property values,
// header and queue names.
const maxShortString = 255

func encodeTable(t amqp.Table, depth int) (map[string]json.RawMessage, error) {
	if depth > maxFieldDepth {
		return nil, fmt.Errorf("tables and arrays nest deeper than %d levels; amqp091-go reads no deeper", maxFieldDepth)
	}
	out := make(map[string]json.RawMessage, len(t))
	for k, v := range t {
		if !utf8.ValidString(k) {
			return nil, fmt.Errorf("header name %q is not UTF-8; the export format cannot hold it", k)
		}
		if len(k) > maxShortString {
			return nil, fmt.Errorf("header name %.40q… is %d bytes; AMQP allows at most %d", k, len(k), maxShortString)
		}
		b, err := encodeValue(v, depth)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		out[k] = b
	}
	return out, nil
}

// encodeValue writes one header value with its AMQP type.
func encodeValue(v any, depth int) (json.RawMessage, error) {
	num := func(t string, n int64) (json.RawMessage, error) {
		return marshal(wireValue{T: t, V: json.RawMessage(strconv.FormatInt(n, 10))})
	}
	switch x := v.(type) {
	case nil:
		return marshal(wireValue{T: tVoid})
	case bool:
		return marshal(wireValue{T: tBool, V: json.RawMessage(strconv.FormatBool(x))})
	case int8:
		return num(tInt8, int64(x))
	case uint8:
		return num(tUint8, int64(x))
	case int16:
		return num(tInt16, int64(x))
	case uint16:
		return num(tUint16, int64(x))
	case int32:
		return num(tInt32, int64(x))
	case int:
		// amqp091-go writes an int as a 32-bit signed integer.
		if x < math.MinInt32 || x > math.MaxInt32 {
			return nil, fmt.Errorf("int %d does not fit the 32 bits amqp091-go sends an int as; use an int64", x)
		}
		return num(tInt32, int64(x))
	case uint32:
		return num(tUint32, int64(x))
	case int64:
		// A string: JSON readers in some languages round integers above 2^53.
		return marshal(wireValue{T: tInt64, V: quote(strconv.FormatInt(x, 10))})
	case float32:
		return marshal(wireValue{T: tFloat32, V: floatJSON(float64(x), 32)})
	case float64:
		return marshal(wireValue{T: tFloat64, V: floatJSON(x, 64)})
	case amqp.Decimal:
		b, err := marshal(wireDecimal{Scale: x.Scale, Value: x.Value})
		if err != nil {
			return nil, err
		}
		return marshal(wireValue{T: tDecimal, V: b})
	case string:
		if utf8.ValidString(x) {
			return marshal(wireValue{T: tString, V: quote(x)})
		}
		s := base64.StdEncoding.EncodeToString([]byte(x))
		return marshal(wireValue{T: tString, B64: &s})
	case []byte:
		return marshal(wireValue{T: tBytes, V: quote(base64.StdEncoding.EncodeToString(x))})
	case time.Time:
		if x.Nanosecond() != 0 {
			return nil, errors.New("timestamp has a fraction of a second; AMQP timestamps are whole seconds")
		}
		b, err := marshal(stamp(x.Unix()))
		if err != nil {
			return nil, err
		}
		return marshal(wireValue{T: tTimestamp, V: b})
	case amqp.Table:
		t, err := encodeTable(x, depth+1)
		if err != nil {
			return nil, err
		}
		b, err := marshal(t)
		if err != nil {
			return nil, err
		}
		return marshal(wireValue{T: tTable, V: b})
	case []any:
		if depth+1 > maxFieldDepth {
			return nil, fmt.Errorf("tables and arrays nest deeper than %d levels; amqp091-go reads no deeper", maxFieldDepth)
		}
		a := make([]json.RawMessage, len(x))
		for i, el := range x {
			b, err := encodeValue(el, depth+1)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			a[i] = b
		}
		b, err := marshal(a)
		if err != nil {
			return nil, err
		}
		return marshal(wireValue{T: tArray, V: b})
	}
	return nil, fmt.Errorf("a %T is not an AMQP field value amqp091-go writes", v)
}

type wireDecimal struct {
	Scale uint8 `json:"scale"`
	Value int32 `json:"value"`
}

// floatJSON writes f as the shortest JSON number that reads back as the
// same float of its size, or as a string for what JSON numbers cannot be:
// "NaN", "Infinity", "-Infinity".
func floatJSON(f float64, bits int) json.RawMessage {
	switch {
	case math.IsNaN(f):
		return quote("NaN")
	case math.IsInf(f, 1):
		return quote("Infinity")
	case math.IsInf(f, -1):
		return quote("-Infinity")
	}
	return json.RawMessage(strconv.FormatFloat(f, 'g', -1, bits))
}

func decodeTable(m map[string]json.RawMessage, depth int) (amqp.Table, error) {
	if depth > maxFieldDepth {
		return nil, fmt.Errorf("tables and arrays nest deeper than %d levels; amqp091-go reads no deeper", maxFieldDepth)
	}
	t := make(amqp.Table, len(m))
	for k, raw := range m {
		if len(k) > maxShortString {
			return nil, fmt.Errorf("header name %.40q… is %d bytes; AMQP allows at most %d", k, len(k), maxShortString)
		}
		v, err := decodeValue(raw, depth)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		t[k] = v
	}
	return t, nil
}

// decodeValue reads one header value into the Go type amqp091-go gives its
// AMQP type.
func decodeValue(raw json.RawMessage, depth int) (any, error) {
	var w wireValue
	if err := strictUnmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf(`want {"t": type, "v": value}: %w`, err)
	}
	if w.T == tVoid {
		if w.V != nil || w.B64 != nil {
			return nil, errors.New(`a void value has no "v"`)
		}
		return nil, nil
	}
	if w.B64 != nil {
		if w.T != tString || w.V != nil {
			return nil, errors.New(`"b64" is only for a string (that is not UTF-8), instead of "v"`)
		}
		b, err := base64.StdEncoding.DecodeString(*w.B64)
		if err != nil {
			return nil, fmt.Errorf(`"b64" is not base64: %w`, err)
		}
		return string(b), nil
	}
	if w.V == nil || string(w.V) == "null" {
		return nil, fmt.Errorf(`a %q value needs "v" (a value without one is {"t": "void"})`, w.T)
	}
	switch w.T {
	case tBool:
		var b bool
		if err := json.Unmarshal(w.V, &b); err != nil {
			return nil, fmt.Errorf("want true or false, got %s", shortJSON(w.V))
		}
		return b, nil
	case tInt8:
		n, err := intJSON(w.V, math.MinInt8, math.MaxInt8)
		return int8(n), err
	case tUint8:
		n, err := intJSON(w.V, 0, math.MaxUint8)
		return uint8(n), err
	case tInt16:
		n, err := intJSON(w.V, math.MinInt16, math.MaxInt16)
		return int16(n), err
	case tUint16:
		n, err := intJSON(w.V, 0, math.MaxUint16)
		return uint16(n), err
	case tInt32:
		n, err := intJSON(w.V, math.MinInt32, math.MaxInt32)
		return int32(n), err
	case tUint32:
		n, err := intJSON(w.V, 0, math.MaxUint32)
		return uint32(n), err
	case tInt64:
		v := w.V
		var s string
		if json.Unmarshal(v, &s) == nil {
			v = json.RawMessage(s) // written as a string; a number is read too
		}
		return intJSON(v, math.MinInt64, math.MaxInt64)
	case tFloat32:
		f, err := floatOf(w.V, 32)
		return float32(f), err
	case tFloat64:
		return floatOf(w.V, 64)
	case tDecimal:
		var d wireDecimal
		if err := strictUnmarshal(w.V, &d); err != nil {
			return nil, fmt.Errorf(`want {"scale": 0-255, "value": a 32-bit integer}: %w`, err)
		}
		return amqp.Decimal{Scale: d.Scale, Value: d.Value}, nil
	case tString:
		var s string
		if err := json.Unmarshal(w.V, &s); err != nil {
			return nil, fmt.Errorf("want a JSON string, got %s", shortJSON(w.V))
		}
		return s, nil
	case tBytes:
		var s string
		if err := json.Unmarshal(w.V, &s); err != nil {
			return nil, fmt.Errorf("want a base64 string, got %s", shortJSON(w.V))
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("not base64: %w", err)
		}
		return b, nil
	case tTimestamp:
		var s stamp
		if err := json.Unmarshal(w.V, &s); err != nil {
			return nil, err
		}
		return s.time(), nil
	case tTable:
		var m map[string]json.RawMessage
		if err := json.Unmarshal(w.V, &m); err != nil || m == nil {
			return nil, fmt.Errorf("want a JSON object of typed values, got %s", shortJSON(w.V))
		}
		return decodeTable(m, depth+1)
	case tArray:
		if depth+1 > maxFieldDepth {
			return nil, fmt.Errorf("tables and arrays nest deeper than %d levels; amqp091-go reads no deeper", maxFieldDepth)
		}
		var a []json.RawMessage
		if err := json.Unmarshal(w.V, &a); err != nil || a == nil {
			return nil, fmt.Errorf("want a JSON array of typed values, got %s", shortJSON(w.V))
		}
		if len(a) == 0 {
			return []any(nil), nil // as amqp091-go reads an empty array
		}
		out := make([]any, len(a))
		for i, el := range a {
			v, err := decodeValue(el, depth+1)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			out[i] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown type %q; the types are bool, int8, uint8, int16, uint16, int32, uint32, int64, float32, float64, decimal, string, bytes, timestamp, table, array, void", w.T)
}

// intJSON reads a JSON integer (no fraction, no exponent) in [lo, hi].
func intJSON(v json.RawMessage, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("want an integer from %d to %d, got %s", lo, hi, shortJSON(v))
	}
	return n, nil
}

// floatOf reads what floatJSON writes.
func floatOf(v json.RawMessage, bits int) (float64, error) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		switch s {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf(`want a JSON number, "NaN", "Infinity" or "-Infinity", got %s`, shortJSON(v))
	}
	f, err := strconv.ParseFloat(string(v), bits)
	if err != nil || !json.Valid(v) {
		return 0, fmt.Errorf("want a %d-bit float, got %s", bits, shortJSON(v))
	}
	return f, nil
}

// text is a string that is written as a JSON string when it is UTF-8, and
// as {"b64": …} when it is not (AMQP strings are bytes; JSON strings are
// UTF-8, and encoding/json would replace the bytes it cannot write).
type text string

func (s text) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(s)) {
		return quote(string(s)), nil
	}
	return marshal(struct {
		B64 string `json:"b64"`
	}{base64.StdEncoding.EncodeToString([]byte(s))})
}

func (s *text) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = text(str)
		return nil
	}
	var o struct {
		B64 *string `json:"b64"`
	}
	if err := strictUnmarshal(b, &o); err != nil || o.B64 == nil {
		return fmt.Errorf(`want a string, or {"b64": …} for bytes that are not UTF-8; got %s`, shortJSON(b))
	}
	raw, err := base64.StdEncoding.DecodeString(*o.B64)
	if err != nil {
		return fmt.Errorf(`"b64" is not base64: %w`, err)
	}
	*s = text(raw)
	return nil
}

// stamp is an AMQP timestamp, seconds since the Unix epoch, written in RFC
// 3339 in UTC ("2026-11-24T10:00:00Z"), or as a decimal string of the
// seconds when its year is outside 0000-9999, where RFC 3339 cannot go.
type stamp int64

// Seconds since the epoch of 0000-01-01T00:00:00Z and of the first second
// after 9999-12-31T23:59:59Z.
const (
	minStamp = -62167219200
	endStamp = 253402300800
)

func (s stamp) MarshalJSON() ([]byte, error) {
	if s < minStamp || s >= endStamp {
		return quote(strconv.FormatInt(int64(s), 10)), nil
	}
	return quote(time.Unix(int64(s), 0).UTC().Format(time.RFC3339)), nil
}

func (s *stamp) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("want a timestamp string such as \"2026-11-24T10:00:00Z\", got %s", shortJSON(b))
	}
	if n, err := strconv.ParseInt(str, 10, 64); err == nil {
		*s = stamp(n)
		return nil
	}
	t, err := time.Parse(time.RFC3339, str)
	if err != nil {
		return fmt.Errorf("timestamp %.40q is not RFC 3339 such as \"2026-11-24T10:00:00Z\", nor a count of seconds", str)
	}
	if t.Nanosecond() != 0 {
		return fmt.Errorf("timestamp %.40q has a fraction of a second; AMQP timestamps are whole seconds", str)
	}
	*s = stamp(t.Unix())
	return nil
}

func (s stamp) time() time.Time { return time.Unix(int64(s), 0).UTC() }

// marshal is json.Marshal without HTML escaping ("<" stays "<": the lines
// are read by people and tools, not embedded in HTML).
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func quote(s string) json.RawMessage {
	b, _ := marshal(s) // a valid UTF-8 string always encodes
	return b
}

// strictUnmarshal decodes one JSON value, refusing fields v does not have.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// shortJSON quotes the start of a JSON fragment for an error message.
func shortJSON(b []byte) string {
	const n = 40
	if len(b) > n {
		return fmt.Sprintf("%q…", b[:n])
	}
	return fmt.Sprintf("%q", b)
}
