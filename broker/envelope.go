package broker

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Content types. Jobs are published as ContentType; the others are accepted.
const (
	ContentType    = "application/msgpack"
	contentTypeX   = "application/x-msgpack"
	contentTypeVnd = "application/vnd.msgpack"
)

// Header names warren writes and reads. They carry no "x-" prefix: RabbitMQ
// treats x- headers as its own.
const (
	HeaderAttempt          = "warren-attempt"            // long: number of this attempt, 1 for the first
	HeaderError            = "warren-error"              // string: last error text
	HeaderErrorClass       = "warren-error-class"        // string: last error class
	HeaderFirstFailedAt    = "warren-first-failed-at"    // string, RFC 3339 UTC
	HeaderFailedAt         = "warren-failed-at"          // string, RFC 3339 UTC
	HeaderOriginExchange   = "warren-origin-exchange"    // string
	HeaderOriginRoutingKey = "warren-origin-routing-key" // string
	HeaderOriginQueue      = "warren-origin-queue"       // string
	HeaderReplayCount      = "warren-replay-count"       // long
	HeaderVersion          = "warren-version"            // long: the version of the job type's contract the payload follows (Job.Version); absent: unversioned
	HeaderWorkerHost       = "warren-worker-host"        // string
	HeaderDeadline         = "warren-deadline"           // long-long int, Unix milliseconds (RFC 3339 strings are read too): a request's caller waits no longer
	HeaderReplyStatus      = "warren-reply-status"       // string: "ok" or "error", on replies
	HeaderCrashes          = "warren-crashes"            // long: times the job's worker died while running it alone
	HeaderSchedule         = "warren-schedule"           // string: the schedule that published the job (package scheduler)
	HeaderScheduleTick     = "warren-schedule-tick"      // string, RFC 3339 UTC with nanoseconds: the tick the job is for
	HeaderUniqueKey        = "warren-unique-key"         // string: the unique job's key (UniqueKey, package unique), released at the job's final state
	HeaderBatch            = "warren-batch"              // string: the batch the job is a member of (BatchMember, package batch)
	HeaderTraceparent      = "traceparent"               // W3C trace context
	HeaderTracestate       = "tracestate"
)

// Bounds of the envelope.
const (
	// MaxAttempt is the largest attempt number a message may carry; a
	// larger one is taken for a corrupt header.
	MaxAttempt = 1_000_000
	// MaxVersion is the largest contract version a job may carry.
	MaxVersion = 1_000_000
	// MaxReplayCount is the largest replay count a message may carry.
	MaxReplayCount = 1_000_000
	// MaxErrorHeader is the longest error text written to HeaderError, in
	// bytes; longer texts are cut at a UTF-8 boundary and end with "…".
	// Headers travel in one AMQP frame, so they must stay small.
	MaxErrorHeader = 4096

	maxShortString = 255 // AMQP shortstr: names, ids, types
	maxHeaderDepth = 16  // nesting of []any and tables in one header value

	// failedAtLayout is RFC 3339 in UTC with milliseconds.
	failedAtLayout = "2006-01-02T15:04:05.000Z"
)

// Job is what a producer publishes.
type Job struct {
	// ID identifies the job for its whole life: retries and replays keep it,
	// so handlers can de-duplicate on it. Publish generates one (a UUIDv7)
	// when it is empty. At most 255 bytes.
	ID string
	// Type names the job; workers dispatch on it and the topology routes it.
	// Required, at most 255 bytes.
	Type string
	// Version is the version of the job type's contract that Payload
	// follows (package contract), sent in the warren-version header; 0
	// sends none: the job is unversioned, which consumers read as version 1.
	Version int
	// Payload is encoded with MessagePack. Struct fields use their msgpack
	// tag, else their json tag, else their name.
	Payload any
	// Headers are the producer's own headers. Names starting with "warren-"
	// or "x-" (in any case) are reserved. Values are strings, bools,
	// integers (sent as 64-bit), finite floats (RabbitMQ refuses NaN and
	// infinities), []byte, time.Time (sent in whole seconds), []any and
	// map[string]any of those. A "traceparent" or
	// "tracestate" entry (a string) sets the job's W3C trace context, so an
	// OpenTelemetry propagator can inject into this map.
	Headers map[string]any
	// Priority is used when the queue has a maximum priority.
	Priority uint8
	// CorrelationID ties the job to a conversation: a request's reply
	// carries it, and so does every job a flow leads to. A job without
	// one, and without a ReplyTo, takes the correlation id of the ctx it
	// is published with (ContextWithCorrelationID; a handler's ctx carries
	// its job's). ReplyTo names where a request's reply goes. At most 255
	// bytes each.
	CorrelationID string
	ReplyTo       string
}

// Envelope is a job as it travels: its metadata, read from AMQP properties
// and headers, and its MessagePack body, not yet decoded.
type Envelope struct {
	ID   string
	Type string
	// ContentType is the content type as received. Publishing always
	// writes ContentType (application/msgpack).
	ContentType string
	// Version is the job type's contract version (Job.Version); 0 when the
	// message carries none.
	Version       int
	AppID         string
	CorrelationID string
	ReplyTo       string
	// Timestamp is when the job was first published, in whole seconds
	// (AMQP timestamps have no fraction), in UTC.
	Timestamp time.Time
	Priority  uint8
	// Expiration is the AMQP per-message TTL in milliseconds, as text.
	Expiration string
	// Headers are the producer's own headers, without warren's. Read from
	// a delivery, they hold every header warren does not interpret,
	// including the broker's own (x-death, …) and warren-* headers of newer
	// versions, each value of the Go type Table documents for its AMQP
	// field type (nested tables are Tables).
	Headers map[string]any
	// Attempt counts deliveries to a handler: 1 for the first.
	Attempt int
	// ReplayCount counts how often an operator replayed the job from a
	// dead-letter queue.
	ReplayCount int
	// Crashes counts the times the job's worker process died while running
	// it alone, in quarantine (see package worker): the job may be what
	// kills them.
	Crashes int
	// Failure is set once the job has failed at least once.
	Failure *Failure
	// Trace context (W3C).
	Traceparent string
	Tracestate  string
	// Deadline is when the caller of a request stops waiting for its
	// reply; a worker does not start the job after it. Zero: none.
	Deadline time.Time
	// ReplyStatus is set on replies: ReplyOK, or ReplyError with the
	// failure in Failure.
	ReplyStatus string
	// Body is the MessagePack-encoded payload.
	Body []byte
}

// Failure describes a job's last failure.
type Failure struct {
	Error         string
	Class         string
	FirstFailedAt time.Time
	FailedAt      time.Time
	Origin        Origin
	WorkerHost    string
}

// Origin is where a job was first consumed from.
type Origin struct {
	Exchange   string
	RoutingKey string
	Queue      string
}

// NewJobID returns a new job id, a UUIDv7 (time-ordered), as Publish
// generates for a job without one. Choose the id before publishing when it
// must be recorded first: a reply to a request can arrive before Publish
// returns.
func NewJobID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("broker: generate a job id: %w", err)
	}
	return id.String(), nil
}

// NewEnvelope validates job and returns its envelope for a first attempt:
// the ID generated (a UUIDv7) when empty, the payload encoded with
// MessagePack, Attempt 1 and Timestamp now in whole seconds.
//
// Integer header values of any Go integer type are converted to int64, so
// they travel as AMQP long-long ints (amqp091-go would send a plain int as
// 32 bits). An invalid job gives an error wrapping ErrInvalidJob that lists
// every problem and how to fix it.
func NewEnvelope(job Job) (*Envelope, error) {
	return newEnvelope(job, time.Now())
}

// newEnvelope is NewEnvelope at now.
func newEnvelope(job Job, now time.Time) (*Envelope, error) {
	var problems []string
	switch {
	case job.Type == "":
		problems = append(problems, "Type is empty; set it to the job type workers dispatch on")
	case len(job.Type) > maxShortString:
		problems = append(problems, fmt.Sprintf("Type is %d bytes; AMQP allows at most %d", len(job.Type), maxShortString))
	}
	if job.Version < 0 || job.Version > MaxVersion {
		problems = append(problems, fmt.Sprintf("Version is %d; set 0 (unversioned) or a contract version from 1 to %d", job.Version, MaxVersion))
	}
	for _, f := range [...]struct{ name, value string }{
		{"ID", job.ID},
		{"CorrelationID", job.CorrelationID},
		{"ReplyTo", job.ReplyTo},
	} {
		if len(f.value) > maxShortString {
			problems = append(problems, fmt.Sprintf("%s is %d bytes; AMQP allows at most %d", f.name, len(f.value), maxShortString))
		}
	}
	e := &Envelope{
		ID:            job.ID,
		Type:          job.Type,
		ContentType:   ContentType,
		Version:       job.Version,
		CorrelationID: job.CorrelationID,
		ReplyTo:       job.ReplyTo,
		Timestamp:     now.UTC().Truncate(time.Second),
		Priority:      job.Priority,
		Attempt:       1,
	}
	problems = append(problems, e.setHeaders(job.Headers)...)
	body, err := encodePayload(job.Payload)
	if err != nil {
		problems = append(problems, fmt.Sprintf("Payload of type %T cannot be encoded with MessagePack: %v", job.Payload, err))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidJob, strings.Join(problems, "; "))
	}
	e.Body = body
	if e.ID == "" {
		id, err := NewJobID()
		if err != nil {
			return nil, err
		}
		e.ID = id
	}
	return e, nil
}

// setHeaders copies the job's headers into e, converted to AMQP field
// values, with the trace context taken out. It returns the problems found,
// sorted.
func (e *Envelope) setHeaders(h map[string]any) []string {
	if len(h) == 0 {
		return nil
	}
	var problems []string
	out := make(map[string]any, len(h))
	for name, v := range h {
		if name == HeaderTraceparent || name == HeaderTracestate {
			s, ok := v.(string)
			if !ok {
				problems = append(problems, fmt.Sprintf("header %q: W3C trace context must be a string, not %T", name, v))
			} else if name == HeaderTraceparent {
				e.Traceparent = s
			} else {
				e.Tracestate = s
			}
			continue
		}
		if p := checkHeaderName(name); p != "" {
			problems = append(problems, p)
			continue
		}
		fv, err := fieldValue(v, 0)
		if err != nil {
			problems = append(problems, fmt.Sprintf("header %q: %v", name, err))
			continue
		}
		out[name] = fv
	}
	if len(out) > 0 {
		e.Headers = out
	}
	slices.Sort(problems) // map order is random; messages should not be
	return problems
}

func checkHeaderName(name string) string {
	switch {
	case name == "":
		return "a header name is empty"
	case len(name) > maxShortString:
		return fmt.Sprintf("header %.40q…: name is %d bytes; AMQP allows at most %d", name, len(name), maxShortString)
	case hasPrefixFold(name, "warren-"):
		return fmt.Sprintf("header %q: names starting with \"warren-\" are reserved for warren; rename it", name)
	case hasPrefixFold(name, "x-"):
		return fmt.Sprintf("header %q: names starting with \"x-\" are reserved for RabbitMQ; rename it", name)
	}
	return ""
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// fieldValue converts v to a Table value warren writes as the AMQP field
// type a reader in any language expects: every integer as int64, maps as
// Table.
func fieldValue(v any, depth int) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, []byte, int64, float32, float64, time.Time, Decimal:
		return v, nil
	case amqp.Decimal:
		return Decimal(x), nil
	case int:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint:
		return uintValue(uint64(x))
	case uint64:
		return uintValue(x)
	case []string:
		a := make([]any, len(x))
		for i, s := range x {
			a[i] = s
		}
		return a, nil
	case []any:
		if depth >= maxHeaderDepth {
			return nil, fmt.Errorf("nested deeper than %d levels", maxHeaderDepth)
		}
		a := make([]any, len(x))
		for i, el := range x {
			fv, err := fieldValue(el, depth+1)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			a[i] = fv
		}
		return a, nil
	case map[string]any:
		return tableValue(x, depth)
	case Table:
		return tableValue(x, depth)
	case amqp.Table:
		return tableValue(x, depth)
	}
	// Named types (type Level int, …) by their kind.
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return uintValue(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	}
	return nil, fmt.Errorf("a %T cannot travel in AMQP headers; use a string, bool, integer, float64, []byte, time.Time, []any or map[string]any", v)
}

func uintValue(u uint64) (any, error) {
	if u > math.MaxInt64 {
		return nil, fmt.Errorf("%d exceeds the largest AMQP integer (%d); send it as a string", u, int64(math.MaxInt64))
	}
	return int64(u), nil
}

func tableValue(m map[string]any, depth int) (any, error) {
	if depth >= maxHeaderDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxHeaderDepth)
	}
	t := make(Table, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) { // sorted: the first problem is always the same
		if k == "" || len(k) > maxShortString {
			return nil, fmt.Errorf("table key %.40q is %d bytes; AMQP allows 1 to %d", k, len(k), maxShortString)
		}
		fv, err := fieldValue(m[k], depth+1)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		t[k] = fv
	}
	return t, nil
}

// Message returns the AMQP message for e: properties, warren's headers
// and the producer's, and the body (not copied). content_type is
// application/msgpack, unless e.ContentType names something else (a
// message that is not a job, being dead-lettered as it came), and
// delivery_mode 2 (persistent). HeaderAttempt is written when Attempt is
// above 1 (its absence means the first attempt, which keeps a new job's
// frame free of any header table); HeaderReplayCount when ReplayCount is
// positive; the failure headers when Failure is set, times in RFC 3339 UTC
// with milliseconds (omitted when zero) and the error text cut to
// MaxErrorHeader bytes; traceparent and tracestate when set. Headers the
// broker wrote on a delivery (see BrokerHeader) are left out, so a job
// passed along (retried, dead-lettered, replayed) never carries them.
//
// It allocates one map (the headers, none when there is no header) and the
// header values.
func (e *Envelope) Message() Message {
	return e.message(false)
}

// publishing is Message as amqp091-go sends it, its header values
// converted to amqp091-go's types as they are copied (one map, as for
// Message).
func (e *Envelope) publishing() amqp.Publishing {
	m := e.message(true)
	return m.publishingWith(amqp.Table(m.Headers))
}

// message builds Message; wire converts the header values to
// amqp091-go's types (an amqp.Table inside a Table, which only publishing
// sees).
func (e *Envelope) message(wire bool) Message {
	n := len(e.Headers)
	if e.Attempt > 1 {
		n++
	}
	if e.ReplayCount > 0 {
		n++
	}
	if e.Version > 0 {
		n++
	}
	if e.Crashes > 0 {
		n++
	}
	if e.Failure != nil {
		n += 8
	}
	if e.Traceparent != "" {
		n++
	}
	if e.Tracestate != "" {
		n++
	}
	if !e.Deadline.IsZero() {
		n++
	}
	if e.ReplyStatus != "" {
		n++
	}
	var h Table // nil when there is no header: the frame is smaller, and cheaper to read
	if n > 0 {
		h = make(Table, n)
		for k, v := range e.Headers {
			if BrokerHeader(k) { // a delivered job's: never sent back
				continue
			}
			if wire {
				v = toWire(v)
			}
			h[k] = v
		}
	}
	if e.Attempt > 1 {
		h[HeaderAttempt] = int64(e.Attempt)
	}
	if e.ReplayCount > 0 {
		h[HeaderReplayCount] = int64(e.ReplayCount)
	}
	if e.Version > 0 {
		h[HeaderVersion] = int64(e.Version)
	}
	if e.Crashes > 0 {
		h[HeaderCrashes] = int64(e.Crashes)
	}
	if f := e.Failure; f != nil {
		h[HeaderError] = truncateUTF8(f.Error, MaxErrorHeader)
		h[HeaderErrorClass] = f.Class
		if !f.FirstFailedAt.IsZero() {
			h[HeaderFirstFailedAt] = f.FirstFailedAt.UTC().Format(failedAtLayout)
		}
		if !f.FailedAt.IsZero() {
			h[HeaderFailedAt] = f.FailedAt.UTC().Format(failedAtLayout)
		}
		h[HeaderOriginExchange] = f.Origin.Exchange
		h[HeaderOriginRoutingKey] = f.Origin.RoutingKey
		h[HeaderOriginQueue] = f.Origin.Queue
		h[HeaderWorkerHost] = f.WorkerHost
	}
	if e.Traceparent != "" {
		h[HeaderTraceparent] = e.Traceparent
	}
	if e.Tracestate != "" {
		h[HeaderTracestate] = e.Tracestate
	}
	if !e.Deadline.IsZero() {
		h[HeaderDeadline] = e.Deadline.UnixMilli()
	}
	if e.ReplyStatus != "" {
		h[HeaderReplyStatus] = e.ReplyStatus
	}
	ct := ContentType
	if e.ContentType != "" && !isMsgpack(e.ContentType) {
		ct = e.ContentType // a message that is not a job, kept as it came (dead-lettered)
	}
	return Message{
		Headers:       h,
		ContentType:   ct,
		DeliveryMode:  amqp.Persistent,
		Priority:      e.Priority,
		CorrelationID: e.CorrelationID,
		ReplyTo:       e.ReplyTo,
		Expiration:    e.Expiration,
		MessageID:     e.ID,
		Timestamp:     e.Timestamp,
		Type:          e.Type,
		AppID:         e.AppID,
		Body:          e.Body,
	}
}

// truncateUTF8 cuts s to at most n bytes at a rune boundary, ending it
// with "…" when it cut.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	i := n - len(ellipsis)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + ellipsis
}
