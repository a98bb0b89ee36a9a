package broker

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// CloudEvents binary content mode, as the CloudEvents AMQP protocol
// binding names its application properties: each attribute is a header
// named with the prefix "cloudEvents_" (or "cloudEvents:", which warren
// reads but never writes), and datacontenttype is the content_type
// property. See docs/wire-format.md, "CloudEvents".
const (
	ceSpecVersion = "1.0"
	cePrefix      = "cloudEvents_"
	cePrefixColon = "cloudEvents:"

	// maxCloudEventSource bounds the source and subject AsCloudEvent
	// takes, in bytes: headers travel in one frame.
	maxCloudEventSource = 1024
)

// CloudEvent is what a job carries of the CloudEvents attributes (binary
// content mode of the CloudEvents AMQP protocol binding).
type CloudEvent struct {
	SpecVersion string // "1.0"
	ID          string // the job id
	Source      string // a URI-reference naming the producer's context
	Type        string // the job type
	Subject     string // optional
	// Time is when the job was first published (the timestamp property,
	// in whole seconds), in UTC; zero when the message gives none.
	Time time.Time
	// DataContentType is the content_type property.
	DataContentType string
	// Extensions are the other attributes (cloudEvents_<name>), by name,
	// their values as in Envelope.Headers; nil when there is none.
	Extensions map[string]any
}

// AsCloudEvent marks the job as a CloudEvent of the given source (a
// URI-reference, such as "/billing" or "https://example.com/billing",
// 1 to 1024 bytes) and optional subject: its headers carry the
// CloudEvents binary-mode attributes cloudEvents_specversion ("1.0"),
// cloudEvents_id (the job id), cloudEvents_type (the job type),
// cloudEvents_source, cloudEvents_time (the job's timestamp, RFC 3339)
// and cloudEvents_subject when not empty, so CloudEvents tooling reads the
// job; datacontenttype is its content_type, application/msgpack. The
// attributes are written from the job's own properties when it is
// published, and retries, dead-lettering and replays keep both. The
// producer's headers may add extension attributes (cloudEvents_<name>,
// lower-case letters and digits). See also WithCloudEvents, for every job
// of a Publisher, and MarkEnvelope (package outbox).
func AsCloudEvent(source, subject string) PublishOption {
	return func(o *publishOptions) error {
		if err := checkCloudEventSource(source); err != nil {
			return fmt.Errorf("%w: AsCloudEvent: %w", ErrInvalidOption, err)
		}
		if len(subject) > maxCloudEventSource || !utf8.ValidString(subject) {
			return fmt.Errorf("%w: AsCloudEvent: the subject %.40q is not 0 to %d bytes of UTF-8", ErrInvalidOption, subject, maxCloudEventSource)
		}
		o.ce = &cloudEventMark{source: source, subject: subject}
		return nil
	}
}

// WithCloudEvents marks every job of the Publisher as a CloudEvent of
// source, as AsCloudEvent(source, "") does; a job published with
// AsCloudEvent takes that one's source and subject instead. For a
// Publisher only.
func WithCloudEvents(source string) PublisherOption {
	return func(o *publisherOptions) error {
		if err := checkCloudEventSource(source); err != nil {
			return fmt.Errorf("broker: WithCloudEvents: %w", err)
		}
		o.ce = &cloudEventMark{source: source}
		o.publisherOnly = "WithCloudEvents"
		return nil
	}
}

// cloudEventMark is what AsCloudEvent and WithCloudEvents put on a job;
// the other attributes come from its envelope.
type cloudEventMark struct {
	source, subject string
}

// checkCloudEventSource checks that s is a URI-reference (RFC 3986).
func checkCloudEventSource(s string) error {
	if s == "" || len(s) > maxCloudEventSource {
		return fmt.Errorf("the source is %d bytes; give a URI-reference of 1 to %d bytes, such as \"/billing\"", len(s), maxCloudEventSource)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r > unicode.MaxASCII || unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("the source %.40q has spaces, control or non-ASCII characters; percent-encode them (a URI-reference, such as \"/billing\")", s)
	}
	if _, err := url.Parse(s); err != nil {
		return fmt.Errorf("the source %.40q is not a URI-reference: %w", s, err)
	}
	return nil
}

// put writes the attributes into h, from env's properties.
func (c *cloudEventMark) put(h map[string]any, env *Envelope) {
	h[cePrefix+"specversion"] = ceSpecVersion
	h[cePrefix+"id"] = env.ID
	h[cePrefix+"type"] = env.Type
	h[cePrefix+"source"] = c.source
	if !env.Timestamp.IsZero() {
		h[cePrefix+"time"] = env.Timestamp.UTC().Format(time.RFC3339)
	}
	if c.subject != "" {
		h[cePrefix+"subject"] = c.subject
	}
}

// CloudEventOf returns the CloudEvents attributes env carries, and whether
// it carries them: cloudEvents_specversion and cloudEvents_source (or the
// same with "cloudEvents:") as strings. The id and type are the
// attributes', else the job's; the time the attribute's (an RFC 3339
// string or an AMQP timestamp), else the job's timestamp;
// datacontenttype is the content type.
func CloudEventOf(env *Envelope) (CloudEvent, bool) {
	if env == nil || len(env.Headers) == 0 {
		return CloudEvent{}, false
	}
	prefix := cePrefix
	sv, ok := stringOf(env.Headers[prefix+"specversion"])
	if !ok {
		prefix = cePrefixColon
		if sv, ok = stringOf(env.Headers[prefix+"specversion"]); !ok {
			return CloudEvent{}, false
		}
	}
	src, ok := stringOf(env.Headers[prefix+"source"])
	if !ok || sv == "" || src == "" {
		return CloudEvent{}, false
	}
	ce := CloudEvent{SpecVersion: sv, Source: src, ID: env.ID, Type: env.Type, Time: env.Timestamp, DataContentType: env.ContentType}
	for name, v := range env.Headers {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		attr := name[len(prefix):]
		switch attr {
		case "specversion", "source":
		case "id":
			if s, ok := stringOf(v); ok && s != "" {
				ce.ID = s
			}
		case "type":
			if s, ok := stringOf(v); ok && s != "" {
				ce.Type = s
			}
		case "subject":
			ce.Subject, _ = stringOf(v)
		case "time":
			if t, ok := cloudEventTime(v); ok {
				ce.Time = t
			}
		default:
			if ce.Extensions == nil {
				ce.Extensions = make(map[string]any)
			}
			ce.Extensions[attr] = v
		}
	}
	return ce, true
}

// cloudEventTime reads a time attribute: an RFC 3339 string or an AMQP
// timestamp, in UTC.
func cloudEventTime(v any) (time.Time, bool) {
	if t, ok := v.(time.Time); ok {
		return t.UTC(), true
	}
	s, ok := stringOf(v)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// cloudEventProperties fills in what a message from CloudEvents tooling
// gives in attributes rather than properties: the id, the type and the
// timestamp, each only where the property is empty. Called only for a
// message without a message_id or a type.
func cloudEventProperties(h map[string]any, id, typ string, ts time.Time) (string, string, time.Time) {
	// Constant names: no string is built on the way.
	colon := false
	if _, ok := stringOf(h[cePrefix+"specversion"]); !ok {
		if _, ok := stringOf(h[cePrefixColon+"specversion"]); !ok {
			return id, typ, ts
		}
		colon = true
	}
	attr := func(underscore, colonName string) any {
		if colon {
			return h[colonName]
		}
		return h[underscore]
	}
	if s, ok := stringOf(attr(cePrefix+"id", cePrefixColon+"id")); ok && id == "" && len(s) <= maxShortString {
		id = s
	}
	if s, ok := stringOf(attr(cePrefix+"type", cePrefixColon+"type")); ok && typ == "" && len(s) <= maxShortString {
		typ = s
	}
	if ts.IsZero() {
		if t, ok := cloudEventTime(attr(cePrefix+"time", cePrefixColon+"time")); ok && t.Year() >= 1970 && t.Year() <= 9999 {
			ts = t.Truncate(time.Second)
		}
	}
	return id, typ, ts
}
