package broker

import (
	"errors"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
)

var testNow = time.Date(2026, 11, 24, 10, 0, 0, 789_000_000, time.FixedZone("CET", 3600))

type level int

func TestEnvelopeNew(t *testing.T) {
	env, err := newEnvelope(Job{Type: "email.send", Payload: map[string]string{"to": "ada@example.com"}}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	id, err := uuid.Parse(env.ID)
	if err != nil || id.Version() != 7 {
		t.Errorf("ID = %q (%v), want a UUIDv7", env.ID, err)
	}
	want := &Envelope{
		ID:          env.ID,
		Type:        "email.send",
		ContentType: ContentType,
		Timestamp:   time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC),
		Attempt:     1,
		Body:        unhex(t, "81 a2 746f af 616461406578616d706c652e636f6d"),
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("NewEnvelope (-want +got):\n%s", diff)
	}
	if env.Timestamp.Location() != time.UTC {
		t.Errorf("Timestamp location = %v, want UTC", env.Timestamp.Location())
	}
}

func TestEnvelopeNewHeaders(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	job := Job{
		ID:   "job-1",
		Type: "t",
		Headers: map[string]any{
			"int": 1, "int8": int8(-8), "int16": int16(16), "int32": int32(-32), "int64": int64(64),
			"uint": uint(1), "uint8": uint8(8), "uint16": uint16(16), "uint32": uint32(32), "uint64": uint64(64),
			"named":  level(3),
			"string": "s", "bool": true, "float64": 1.5, "float32": float32(2.5), "bytes": []byte{1},
			"time": when, "nil": nil, "decimal": amqp.Decimal{Scale: 2, Value: 150},
			"strings":         []string{"a", "b"},
			"array":           []any{1, "x", []any{uint16(2)}},
			"map":             map[string]any{"n": 1, "inner": amqp.Table{"m": int8(2)}},
			"Trace":           "not the trace header: names are case-sensitive",
			HeaderTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			HeaderTracestate:  "rojo=00f067aa0ba902b7",
		},
	}
	env, err := newEnvelope(job, testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"int": int64(1), "int8": int64(-8), "int16": int64(16), "int32": int64(-32), "int64": int64(64),
		"uint": int64(1), "uint8": int64(8), "uint16": int64(16), "uint32": int64(32), "uint64": int64(64),
		"named":  int64(3),
		"string": "s", "bool": true, "float64": 1.5, "float32": float32(2.5), "bytes": []byte{1},
		"time": when, "nil": nil, "decimal": Decimal{Scale: 2, Value: 150},
		"strings": []any{"a", "b"},
		"array":   []any{int64(1), "x", []any{int64(2)}},
		"map":     Table{"n": int64(1), "inner": Table{"m": int64(2)}},
		"Trace":   "not the trace header: names are case-sensitive",
	}
	if diff := cmp.Diff(want, env.Headers); diff != "" {
		t.Errorf("Headers (-want +got):\n%s", diff)
	}
	if env.Traceparent != job.Headers[HeaderTraceparent] || env.Tracestate != job.Headers[HeaderTracestate] {
		t.Errorf("trace context = %q, %q; want it taken from the headers", env.Traceparent, env.Tracestate)
	}
	if err := amqp.Table(env.Publishing().Headers).Validate(); err != nil {
		t.Errorf("amqp091-go rejects the headers: %v", err)
	}
	job.Headers["int"] = 2
	if env.Headers["int"] != int64(1) {
		t.Error("the envelope shares the job's header map")
	}
}

func TestEnvelopeNewInvalid(t *testing.T) {
	long := strings.Repeat("a", 256)
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	tests := []struct {
		name string
		job  Job
		want []string // substrings of the error, in order
	}{
		{"no type", Job{}, []string{"Type is empty; set it to the job type"}},
		{"long type", Job{Type: long}, []string{"Type is 256 bytes; AMQP allows at most 255"}},
		{"negative version", Job{Type: "t", Version: -1}, []string{"Version is -1; set 0 (unversioned) or a contract version from 1 to 1000000"}},
		{"long id", Job{Type: "t", ID: long}, []string{"ID is 256 bytes"}},
		{"long correlation id", Job{Type: "t", CorrelationID: long}, []string{"CorrelationID is 256 bytes"}},
		{"long reply-to", Job{Type: "t", ReplyTo: long}, []string{"ReplyTo is 256 bytes"}},
		{"warren- header", Job{Type: "t", Headers: map[string]any{"Warren-Attempt": int64(5)}}, []string{`header "Warren-Attempt": names starting with "warren-" are reserved for warren; rename it`}},
		{"x- header", Job{Type: "t", Headers: map[string]any{"X-Death": "x"}}, []string{`header "X-Death": names starting with "x-" are reserved for RabbitMQ; rename it`}},
		{"empty header name", Job{Type: "t", Headers: map[string]any{"": "x"}}, []string{"a header name is empty"}},
		{"long header name", Job{Type: "t", Headers: map[string]any{long: "x"}}, []string{"name is 256 bytes"}},
		{"unsupported value", Job{Type: "t", Headers: map[string]any{"ch": make(chan int)}}, []string{`header "ch": a chan int cannot travel in AMQP headers; use a string`}},
		{"unsupported nested value", Job{Type: "t", Headers: map[string]any{"a": []any{1, struct{}{}}}}, []string{`header "a": element 1: a struct {} cannot travel`}},
		{"uint64 too large", Job{Type: "t", Headers: map[string]any{"big": uint64(math.MaxUint64)}}, []string{`header "big": 18446744073709551615 exceeds the largest AMQP integer`}},
		{"cyclic map", Job{Type: "t", Headers: map[string]any{"c": cyclic}}, []string{`header "c": key "self": key "self"`, "nested deeper than 16 levels"}},
		{"empty table key", Job{Type: "t", Headers: map[string]any{"m": map[string]any{"": 1}}}, []string{`header "m": table key "" is 0 bytes`}},
		{"trace context not a string", Job{Type: "t", Headers: map[string]any{HeaderTraceparent: []byte("00-")}}, []string{`header "traceparent": W3C trace context must be a string, not []uint8`}},
		{"payload", Job{Type: "t", Payload: make(chan int)}, []string{"Payload of type chan int cannot be encoded with MessagePack"}},
		{"every problem at once", Job{Headers: map[string]any{"x-b": 1, "warren-a": 1}, Payload: func() {}},
			[]string{"broker: invalid job: Type is empty", `; header "warren-a"`, `; header "x-b"`, "; Payload of type func()"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := newEnvelope(tt.job, testNow)
			if !errors.Is(err, ErrInvalidJob) {
				t.Fatalf("NewEnvelope = %v, %v; want ErrInvalidJob", env, err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("error %q does not contain %q (after the previous parts)", err, w)
				}
				msg = msg[i+len(w):]
			}
		})
	}
}

func TestEnvelopePublishing(t *testing.T) {
	body := []byte{0xc0}
	env := &Envelope{
		ID: "id", Type: "t", ContentType: "application/x-msgpack; charset=binary", AppID: "app",
		CorrelationID: "c", ReplyTo: "r", Timestamp: time.Unix(1795514400, 0), Priority: 3, Expiration: "1000",
		Headers: map[string]any{"tenant": "acme"},
		Attempt: 4, ReplayCount: 2, Version: 2,
		Failure: &Failure{
			Error: "boom", Class: "transient",
			FirstFailedAt: time.Date(2026, 11, 24, 11, 0, 0, 123_456_789, time.FixedZone("CET", 3600)),
			FailedAt:      time.Date(2026, 11, 24, 10, 0, 1, 0, time.UTC),
			Origin:        Origin{Exchange: "", RoutingKey: "q", Queue: "q"},
			WorkerHost:    "w1",
		},
		Traceparent: "tp", Tracestate: "ts",
		Body: body,
	}
	want := amqp.Publishing{
		ContentType: ContentType, DeliveryMode: 2, MessageId: "id", Type: "t", AppId: "app",
		CorrelationId: "c", ReplyTo: "r", Timestamp: time.Unix(1795514400, 0), Priority: 3, Expiration: "1000",
		Headers: amqp.Table{
			"tenant":               "acme",
			HeaderAttempt:          int64(4),
			HeaderReplayCount:      int64(2),
			HeaderVersion:          int64(2),
			HeaderError:            "boom",
			HeaderErrorClass:       "transient",
			HeaderFirstFailedAt:    "2026-11-24T10:00:00.123Z",
			HeaderFailedAt:         "2026-11-24T10:00:01.000Z",
			HeaderOriginExchange:   "",
			HeaderOriginRoutingKey: "q",
			HeaderOriginQueue:      "q",
			HeaderWorkerHost:       "w1",
			HeaderTraceparent:      "tp",
			HeaderTracestate:       "ts",
		},
		Body: body,
	}
	got := env.Publishing()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Publishing (-want +got):\n%s", diff)
	}
	if &got.Body[0] != &body[0] {
		t.Error("Publishing copied the body")
	}
	if _, ok := env.Headers[HeaderAttempt]; ok {
		t.Error("Publishing wrote into the envelope's headers")
	}

	t.Run("minimal", func(t *testing.T) {
		got := (&Envelope{ID: "id", Type: "t", Failure: &Failure{}}).Publishing()
		want := amqp.Table{
			HeaderError: "", HeaderErrorClass: "", HeaderOriginExchange: "",
			HeaderOriginRoutingKey: "", HeaderOriginQueue: "", HeaderWorkerHost: "",
		}
		if diff := cmp.Diff(want, got.Headers); diff != "" {
			t.Errorf("headers (-want +got):\n%s", diff)
		}
	})
	t.Run("long error", func(t *testing.T) {
		text := strings.Repeat("é", MaxErrorHeader) // 2 bytes each
		got := (&Envelope{Failure: &Failure{Error: text}}).Publishing().Headers[HeaderError].(string)
		if len(got) > MaxErrorHeader || !strings.HasSuffix(got, "…") || !strings.HasPrefix(text, strings.TrimSuffix(got, "…")) {
			t.Errorf("error header is %d bytes ending %q, want at most %d ending in …, cut at a rune", len(got), got[len(got)-8:], MaxErrorHeader)
		}
	})
}

func TestEnvelopePublishingAllocs(t *testing.T) {
	env, err := newEnvelope(Job{Type: "t", Payload: 1, Headers: map[string]any{"tenant": "acme"}}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	// One map; its buckets; attempt 1 is boxed without allocating.
	if n := testing.AllocsPerRun(100, func() { _ = env.Publishing() }); n > 2 {
		t.Errorf("Publishing allocated %v times, want at most 2", n)
	}
}

func delivery(headers amqp.Table) *amqp.Delivery {
	return &amqp.Delivery{ContentType: ContentType, MessageId: "id", Type: "t", Headers: headers, Body: []byte{0xc0}}
}

func TestEnvelopeFromDelivery(t *testing.T) {
	body := []byte{0x01}
	d := &amqp.Delivery{
		ContentType: "Application/X-MsgPack; charset=binary", ContentEncoding: "identity",
		MessageId: "id", Type: "t", AppId: "app", CorrelationId: "c", ReplyTo: "r",
		Timestamp: time.Unix(1795514400, 0), Priority: 9, Expiration: "60000",
		Headers: amqp.Table{
			HeaderAttempt:          int32(2),
			HeaderReplayCount:      uint8(1),
			HeaderVersion:          int16(3),
			HeaderError:            []byte("boom"),
			HeaderErrorClass:       "transient",
			HeaderFirstFailedAt:    "2026-11-24T11:00:00.5+01:00",
			HeaderFailedAt:         "2026-11-24T10:00:01Z",
			HeaderOriginExchange:   "jobs",
			HeaderOriginRoutingKey: "k",
			HeaderOriginQueue:      "q",
			HeaderWorkerHost:       "w",
			HeaderTraceparent:      []byte("tp"),
			HeaderTracestate:       "ts",
			"tenant":               "acme",
			"x-death":              []any{amqp.Table{"count": int64(1)}},
			"warren-future":        "kept",
		},
		Body: body,
	}
	want := &Envelope{
		ID: "id", Type: "t", ContentType: "Application/X-MsgPack; charset=binary", AppID: "app",
		CorrelationID: "c", ReplyTo: "r", Timestamp: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), Priority: 9,
		Expiration: "60000",
		Headers: map[string]any{
			"tenant":        "acme",
			"x-death":       []any{Table{"count": int64(1)}},
			"warren-future": "kept",
		},
		Attempt: 2, ReplayCount: 1, Version: 3,
		Failure: &Failure{
			Error: "boom", Class: "transient",
			FirstFailedAt: time.Date(2026, 11, 24, 10, 0, 0, 500_000_000, time.UTC),
			FailedAt:      time.Date(2026, 11, 24, 10, 0, 1, 0, time.UTC),
			Origin:        Origin{Exchange: "jobs", RoutingKey: "k", Queue: "q"},
			WorkerHost:    "w",
		},
		Traceparent: "tp", Tracestate: "ts",
		Body: body,
	}
	got, err := FromDelivery(d)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FromDelivery (-want +got):\n%s", diff)
	}
	if &got.Body[0] != &body[0] {
		t.Error("FromDelivery copied the body")
	}
	for _, tm := range []time.Time{got.Timestamp, got.Failure.FirstFailedAt} {
		if tm.Location() != time.UTC {
			t.Errorf("time %v is not in UTC", tm)
		}
	}

	r := &amqp.Return{
		ContentType: d.ContentType, ContentEncoding: d.ContentEncoding, MessageId: d.MessageId, Type: d.Type,
		AppId: d.AppId, CorrelationId: d.CorrelationId, ReplyTo: d.ReplyTo, Timestamp: d.Timestamp,
		Priority: d.Priority, Expiration: d.Expiration, Headers: d.Headers, Body: d.Body,
		ReplyCode: 312, ReplyText: "NO_ROUTE", Exchange: "jobs", RoutingKey: "k",
	}
	gotReturn, err := FromReturn(r)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, gotReturn); diff != "" {
		t.Errorf("FromReturn (-want +got):\n%s", diff)
	}
}

func TestEnvelopeFromDeliveryAccepts(t *testing.T) {
	tests := []struct {
		name        string
		d           *amqp.Delivery
		wantAttempt int
		wantReplay  int
	}{
		{"no headers", delivery(nil), 1, 0},
		{"vnd content type", &amqp.Delivery{ContentType: " application/vnd.msgpack ", Type: "t"}, 1, 0},
		{"msgpack with parameter", &amqp.Delivery{ContentType: "APPLICATION/MSGPACK;v=1", Type: "t"}, 1, 0},
		{"attempt int8", delivery(amqp.Table{HeaderAttempt: int8(3)}), 3, 0},
		{"attempt int16", delivery(amqp.Table{HeaderAttempt: int16(3)}), 3, 0},
		{"attempt uint16", delivery(amqp.Table{HeaderAttempt: uint16(3)}), 3, 0},
		{"attempt uint32", delivery(amqp.Table{HeaderAttempt: uint32(3)}), 3, 0},
		{"attempt int64 max", delivery(amqp.Table{HeaderAttempt: int64(MaxAttempt)}), MaxAttempt, 0},
		{"attempt uint64", delivery(amqp.Table{HeaderAttempt: uint64(3)}), 3, 0},
		{"attempt uint", delivery(amqp.Table{HeaderAttempt: uint(3)}), 3, 0},
		{"attempt integral double", delivery(amqp.Table{HeaderAttempt: 3.0}), 3, 0},
		{"replay count 0", delivery(amqp.Table{HeaderReplayCount: int64(0)}), 1, 0},
		{"replay count int32", delivery(amqp.Table{HeaderReplayCount: int32(7)}), 1, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := FromDelivery(tt.d)
			if err != nil {
				t.Fatal(err)
			}
			if env.Attempt != tt.wantAttempt || env.ReplayCount != tt.wantReplay {
				t.Errorf("attempt, replay count = %d, %d; want %d, %d", env.Attempt, env.ReplayCount, tt.wantAttempt, tt.wantReplay)
			}
			if env.Failure != nil || env.Headers != nil {
				t.Errorf("Failure = %v, Headers = %v; want none", env.Failure, env.Headers)
			}
		})
	}
	t.Run("deadline in any form", func(t *testing.T) {
		want := time.Date(2026, 11, 24, 10, 0, 0, 123e6, time.UTC)
		for _, v := range []any{want.UnixMilli(), float64(want.UnixMilli()), "2026-11-24T10:00:00.123Z", "2026-11-24T11:00:00.123+01:00"} {
			env, err := FromDelivery(delivery(amqp.Table{HeaderDeadline: v}))
			if err != nil {
				t.Fatalf("%T %v: %v", v, v, err)
			}
			if !env.Deadline.Equal(want) || env.Deadline.Location() != time.UTC {
				t.Errorf("%T %v: Deadline = %v, want %v", v, v, env.Deadline, want)
			}
		}
		env := &Envelope{Type: "t", Deadline: want}
		if got := env.Publishing().Headers[HeaderDeadline]; got != want.UnixMilli() {
			t.Errorf("written as %T %v, want int64 %d", got, got, want.UnixMilli())
		}
	})
	t.Run("trace context of another type stays a user header", func(t *testing.T) {
		env, err := FromDelivery(delivery(amqp.Table{HeaderTraceparent: int64(1)}))
		if err != nil {
			t.Fatal(err)
		}
		if env.Traceparent != "" || env.Headers[HeaderTraceparent] != int64(1) {
			t.Errorf("Traceparent = %q, Headers = %v", env.Traceparent, env.Headers)
		}
	})
}

func TestEnvelopeFromDeliveryRejects(t *testing.T) {
	tests := []struct {
		name    string
		d       *amqp.Delivery
		wantErr error
		wantMsg string
	}{
		{"nil", nil, ErrMalformedEnvelope, "nil delivery"},
		{"json", &amqp.Delivery{ContentType: "application/json", Type: "t"}, ErrUnsupportedContentType, `got "application/json"`},
		{"no content type", &amqp.Delivery{Type: "t"}, ErrUnsupportedContentType, "no content type"},
		{"msgpack lookalike", &amqp.Delivery{ContentType: "application/msgpack2", Type: "t"}, ErrUnsupportedContentType, "msgpack2"},
		{"gzip", &amqp.Delivery{ContentType: ContentType, ContentEncoding: "gzip", Type: "t"}, ErrUnsupportedContentType, `content encoding "gzip"`},
		{"no type", &amqp.Delivery{ContentType: ContentType, MessageId: "m1"}, ErrMissingType, `message id "m1"`},
		{"attempt 0", delivery(amqp.Table{HeaderAttempt: int64(0)}), ErrMalformedEnvelope, `header "warren-attempt": 0 is out of range [1, 1000000]`},
		{"attempt too large", delivery(amqp.Table{HeaderAttempt: int64(MaxAttempt + 1)}), ErrMalformedEnvelope, "1000001 is out of range"},
		{"attempt negative", delivery(amqp.Table{HeaderAttempt: int8(-1)}), ErrMalformedEnvelope, "-1 is out of range"},
		{"attempt uint64 beyond int64", delivery(amqp.Table{HeaderAttempt: uint64(math.MaxUint64)}), ErrMalformedEnvelope, "18446744073709551615 is out of range"},
		{"attempt string", delivery(amqp.Table{HeaderAttempt: "3"}), ErrMalformedEnvelope, `header "warren-attempt": want an integer, got string "3"`},
		{"attempt fractional", delivery(amqp.Table{HeaderAttempt: 2.5}), ErrMalformedEnvelope, "2.5 is not an integer"},
		{"attempt NaN", delivery(amqp.Table{HeaderAttempt: math.NaN()}), ErrMalformedEnvelope, "NaN is not an integer"},
		{"attempt huge double", delivery(amqp.Table{HeaderAttempt: 1e300}), ErrMalformedEnvelope, "is not an integer"},
		{"attempt void", delivery(amqp.Table{HeaderAttempt: nil}), ErrMalformedEnvelope, "got void"},
		{"version 0", delivery(amqp.Table{HeaderVersion: int64(0)}), ErrMalformedEnvelope, `header "warren-version": 0 is out of range [1, 1000000]`},
		{"replay count negative", delivery(amqp.Table{HeaderReplayCount: int64(-1)}), ErrMalformedEnvelope, `header "warren-replay-count": -1 is out of range`},
		{"error not a string", delivery(amqp.Table{HeaderError: int64(1)}), ErrMalformedEnvelope, `header "warren-error": want a string, got int64`},
		{"origin queue table", delivery(amqp.Table{HeaderOriginQueue: amqp.Table{}}), ErrMalformedEnvelope, `header "warren-origin-queue": want a string, got amqp091.Table`},
		{"failed-at unparsable", delivery(amqp.Table{HeaderFailedAt: "yesterday"}), ErrMalformedEnvelope, `header "warren-failed-at": "yesterday" is not an RFC 3339 time`},
		{"failed-at before year 0 in UTC", delivery(amqp.Table{HeaderFailedAt: "0000-01-01T00:30:00+01:00"}), ErrMalformedEnvelope, "outside the years 0000 to 9999 in UTC"},
		{"failed-at after year 9999 in UTC", delivery(amqp.Table{HeaderFirstFailedAt: "9999-12-31T23:30:00-01:00"}), ErrMalformedEnvelope, "outside the years"},
		{"failed-at timestamp type", delivery(amqp.Table{HeaderFirstFailedAt: time.Unix(0, 0)}), ErrMalformedEnvelope, "want an RFC 3339 time string, got time.Time"},
		{"deadline not a time", delivery(amqp.Table{HeaderDeadline: true}), ErrMalformedEnvelope, `header "warren-deadline": want an integer, got bool`},
		{"deadline past year 9999", delivery(amqp.Table{HeaderDeadline: int64(math.MaxInt64)}), ErrMalformedEnvelope, "out of range"},
		{"every problem", delivery(amqp.Table{HeaderAttempt: "x", HeaderError: int64(1)}), ErrMalformedEnvelope,
			`(message id "id"): header "warren-attempt": want an integer, got string "x"; header "warren-error": want a string, got int64`},
		{"headers that could not be read", &amqp.Delivery{ContentType: ContentType, Type: "t", MessageId: "m1", HeadersErr: unreadable},
			ErrMalformedEnvelope, `(message id "m1"): amqp: header table skipped: header "bad"`},
		{"headers that could not be read, not msgpack", &amqp.Delivery{ContentType: "text/plain", Type: "t", HeadersErr: unreadable},
			ErrUnsupportedContentType, `got "text/plain"; amqp: header table skipped: header "bad"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := FromDelivery(tt.d)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("FromDelivery = %v, %v; want %v", env, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}
	if _, err := FromReturn(nil); !errors.Is(err, ErrMalformedEnvelope) {
		t.Errorf("FromReturn(nil) = %v, want ErrMalformedEnvelope", err)
	}
	t.Run("headers that could not be read: the error says why, the rest is kept", func(t *testing.T) {
		d := &amqp.Delivery{ContentType: ContentType, Type: "t", MessageId: "m1", AppId: "py", HeadersErr: unreadable, Body: []byte{0xc0}}
		_, err := FromDelivery(d)
		_, rerr := FromReturn(&amqp.Return{ContentType: ContentType, Type: "t", HeadersErr: unreadable})
		for _, err := range []error{err, rerr} {
			var herr *amqp.HeadersError
			if !errors.As(err, &herr) || herr != unreadable {
				t.Errorf("error %v does not wrap the *amqp.HeadersError", err)
			}
		}
		// What a consumer's Delivery holds.
		m := messageOf(d)
		env, _ := readMessage(&m)
		if env.ID != "m1" || env.Type != "t" || env.AppID != "py" || len(env.Body) != 1 || env.Headers != nil {
			t.Errorf("envelope %+v, want every property read, no headers", env)
		}
	})
}

// unreadable is what amqp091-go gives a message whose header table it
// could not read.
var unreadable = &amqp.HeadersError{Key: "bad", Type: 'Z', Err: amqp.ErrSyntax}

// TestEnvelopeRoundTrip publishes an envelope, reads it back, and expects
// what was sent, with times at the wire's precision.
func TestEnvelopeRoundTrip(t *testing.T) {
	env, err := newEnvelope(Job{
		Type: "t", Payload: samplePayload(), Priority: 2, CorrelationID: "c", ReplyTo: "r",
		Headers: map[string]any{"n": 1, HeaderTraceparent: "tp"},
	}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	env.AppID, env.Expiration, env.Attempt, env.ReplayCount = "app", "5", 7, 1
	env.Failure = &Failure{
		Error: "e", Class: "c", FirstFailedAt: testNow, FailedAt: testNow.Add(time.Millisecond + time.Microsecond),
		Origin: Origin{"x", "k", "q"}, WorkerHost: "h",
	}
	got, err := FromDelivery(deliveryOf(env.Publishing()))
	if err != nil {
		t.Fatal(err)
	}
	want := *env
	want.Failure = &Failure{
		Error: "e", Class: "c", FirstFailedAt: testNow.UTC(), FailedAt: testNow.UTC().Add(time.Millisecond),
		Origin: Origin{"x", "k", "q"}, WorkerHost: "h",
	}
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	var payload sampleInvoice
	if err := got.Decode(&payload); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(samplePayload(), payload); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
}

// deliveryOf is what a consumer receives for p: the timestamp in whole
// seconds and local time, as amqp091-go reads it.
func deliveryOf(p amqp.Publishing) *amqp.Delivery {
	return &amqp.Delivery{
		Headers: p.Headers, ContentType: p.ContentType, ContentEncoding: p.ContentEncoding,
		DeliveryMode: p.DeliveryMode, Priority: p.Priority, CorrelationId: p.CorrelationId, ReplyTo: p.ReplyTo,
		Expiration: p.Expiration, MessageId: p.MessageId, Timestamp: time.Unix(p.Timestamp.Unix(), 0),
		Type: p.Type, UserId: p.UserId, AppId: p.AppId, Body: p.Body,
	}
}

func BenchmarkEnvelope(b *testing.B) {
	job := Job{Type: "invoice.render", Payload: samplePayload(), Headers: map[string]any{"tenant": "acme"}}
	b.Run("NewEnvelope", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := newEnvelope(job, testNow); err != nil {
				b.Fatal(err)
			}
		}
	})
	env, err := newEnvelope(job, testNow)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Publishing", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = env.Publishing()
		}
	})
	d := deliveryOf(env.Publishing())
	b.Run("FromDelivery", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := FromDelivery(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPublishingLeavesOutBrokerHeaders: a delivered job passed along
// (retried, dead-lettered, replayed, imported) carries none of the headers
// the broker wrote on it, and keeps every other.
func TestPublishingLeavesOutBrokerHeaders(t *testing.T) {
	brokers := amqp.Table{
		"x-death":                []any{amqp.Table{"queue": "warren.delay.00", "reason": "expired", "count": int64(1)}},
		"x-first-death-queue":    "warren.delay.00",
		"x-first-death-reason":   "expired",
		"x-first-death-exchange": "warren.delay",
		"x-last-death-queue":     "warren.delay.01",
		"x-last-death-reason":    "expired",
		"x-last-death-exchange":  "warren.delay",
		"x-delivery-count":       int64(3),
		"x-received-from":        []any{amqp.Table{"uri": "amqp://upstream"}},
		"CC":                     []any{"audit"},
		"BCC":                    []any{"hidden"},
	}
	kept := amqp.Table{"tenant": "acme", "x-custom": "mine", "cc": "lower case is the user's"}
	d := amqp.Delivery{ContentType: ContentType, MessageId: "j1", Type: "email.send", Headers: amqp.Table{}}
	maps.Copy(d.Headers, brokers)
	maps.Copy(d.Headers, kept)
	env, err := FromDelivery(&d)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := env.Headers["x-death"]; !ok {
		t.Fatal("Envelope.Headers should keep x-death for readers (Deaths)")
	}
	env.Attempt = 2
	got := env.Publishing().Headers
	for name := range brokers {
		if !BrokerHeader(name) {
			t.Errorf("BrokerHeader(%q) = false", name)
		}
		if _, ok := got[name]; ok {
			t.Errorf("Publishing wrote the broker's header %q", name)
		}
	}
	for name, v := range kept {
		if BrokerHeader(name) {
			t.Errorf("BrokerHeader(%q) = true", name)
		}
		if got[name] != v {
			t.Errorf("header %q = %v, want %v", name, got[name], v)
		}
	}
	if got[HeaderAttempt] != int64(2) {
		t.Errorf("attempt header %v", got[HeaderAttempt])
	}
	raw := withoutBrokerHeaders(d.Headers)
	if len(raw) != len(kept) {
		t.Errorf("withoutBrokerHeaders kept %v", raw)
	}
	if _, ok := d.Headers["x-death"]; !ok {
		t.Error("withoutBrokerHeaders changed its argument")
	}
}
