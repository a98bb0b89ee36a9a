package deadletter

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/jsonwire"
)

// RecordVersion is the version of the export format that Encoder writes
// and Decoder reads (docs/cli.md describes it). A new version is made for
// any change a version-1 reader would misread or refuse.
const RecordVersion = 1

// MaxRecordBytes is the longest line a Decoder reads: a message of
// RabbitMQ's largest default size (128 MiB), in base64, with room for its
// properties and headers.
const MaxRecordBytes = 256 << 20

// The JSON form of a Record: one line of the export format.

// wireRecord is one line of the export format.
type wireRecord struct {
	Version       int             `json:"version"`
	Queue         text            `json:"queue"`
	ExportedAt    *time.Time      `json:"exported_at,omitempty"`
	ID            text            `json:"id,omitempty"`
	Type          text            `json:"type,omitempty"`
	Class         text            `json:"class,omitempty"`
	Error         text            `json:"error,omitempty"`
	DeliveryCount int             `json:"delivery_count,omitempty"`
	Properties    wireProperties  `json:"properties"`
	Headers       json.RawMessage `json:"headers,omitempty"` // a broker.Table
	Body          *[]byte         `json:"body"`              // base64; a pointer so that a missing body is told from an empty one
}

type wireProperties struct {
	ContentType     text            `json:"content_type,omitempty"`
	ContentEncoding text            `json:"content_encoding,omitempty"`
	DeliveryMode    uint8           `json:"delivery_mode,omitempty"`
	Priority        uint8           `json:"priority,omitempty"`
	CorrelationID   text            `json:"correlation_id,omitempty"`
	ReplyTo         text            `json:"reply_to,omitempty"`
	Expiration      text            `json:"expiration,omitempty"`
	MessageID       text            `json:"message_id,omitempty"`
	Timestamp       *jsonwire.Stamp `json:"timestamp,omitempty"`
	Type            text            `json:"type,omitempty"`
	UserID          text            `json:"user_id,omitempty"`
	AppID           text            `json:"app_id,omitempty"`
}

// MarshalJSON writes r as one line of the export format (without the
// newline). It fails for what the format cannot hold exactly: a header
// value of a type broker.Table does not list, a header name that is not
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
		s := jsonwire.Stamp(p.Timestamp.Unix())
		w.Properties.Timestamp = &s
	}
	if len(r.Headers) > 0 {
		h, err := r.Headers.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("deadletter: headers of message %q: %w", r.Properties.MessageID, err)
		}
		w.Headers = h
	}
	return jsonwire.Marshal(w)
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
		return errors.New(`no "version": not a record of a warren dead-letter export`)
	}
	var version int
	if err := json.Unmarshal(*probe.Version, &version); err != nil || version < 1 {
		return fmt.Errorf(`"version" is %s; want a positive integer`, jsonwire.Short(*probe.Version))
	}
	if version > RecordVersion {
		return fmt.Errorf("record version %d was written by a newer warren (this one reads version %d); import it with that version", version, RecordVersion)
	}
	var w wireRecord
	if err := jsonwire.StrictUnmarshal(b, &w); err != nil {
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
		out.Properties.Timestamp = p.Timestamp.Time()
	}
	if len(w.Headers) > 0 {
		var h broker.Table
		if err := h.UnmarshalJSON(w.Headers); err != nil {
			return fmt.Errorf("headers: %w", err)
		}
		if len(h) > 0 {
			out.Headers = h
		}
	}
	*r = out
	return nil
}

// maxShortString is the longest AMQP short string: property values,
// header and queue names.
const maxShortString = 255

// text is a string that is written as a JSON string when it is UTF-8, and
// as {"b64": …} when it is not (AMQP strings are bytes; JSON strings are
// UTF-8, and encoding/json would replace the bytes it cannot write).
type text string

func (s text) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(s)) {
		return jsonwire.Quote(string(s)), nil
	}
	return jsonwire.Marshal(struct {
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
	if err := jsonwire.StrictUnmarshal(b, &o); err != nil || o.B64 == nil {
		return fmt.Errorf(`want a string, or {"b64": …} for bytes that are not UTF-8; got %s`, jsonwire.Short(b))
	}
	raw, err := base64.StdEncoding.DecodeString(*o.B64)
	if err != nil {
		return fmt.Errorf(`"b64" is not base64: %w`, err)
	}
	*s = text(raw)
	return nil
}
