package broker

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"
)

// wireCloudEvent is a vector's "cloud_event": what CloudEventOf returns,
// its time in RFC 3339 ("" for none).
type wireCloudEvent struct {
	SpecVersion     string         `json:"specversion"`
	ID              string         `json:"id"`
	Source          string         `json:"source"`
	Type            string         `json:"type"`
	Subject         string         `json:"subject"`
	Time            string         `json:"time"`
	DataContentType string         `json:"datacontenttype"`
	Extensions      map[string]any `json:"extensions"`
}

// check compares CloudEventOf(env) with w; a nil w wants none.
func (w *wireCloudEvent) check(t *testing.T, env *Envelope) {
	t.Helper()
	got, ok := CloudEventOf(env)
	if w == nil {
		if ok {
			t.Errorf("CloudEventOf = %+v, want none", got)
		}
		return
	}
	if !ok {
		t.Fatalf("CloudEventOf found no CloudEvent; headers %v", env.Headers)
	}
	want := CloudEvent{
		SpecVersion: w.SpecVersion, ID: w.ID, Source: w.Source, Type: w.Type, Subject: w.Subject,
		DataContentType: w.DataContentType, Extensions: w.Extensions,
	}
	if w.Time != "" {
		tm, err := time.Parse(time.RFC3339Nano, w.Time)
		if err != nil {
			t.Fatalf("cloud_event.time: %v", err)
		}
		want.Time = tm.UTC()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CloudEventOf (-vector +got):\n%s", diff)
	}
}

// foreignVector is one file of testdata/wire/cloudevents: a message
// CloudEvents tooling published, and what warren reads from it.
type foreignVector struct {
	Description string          `json:"description"`
	Properties  json.RawMessage `json:"properties"`
	Headers     []typedField    `json:"headers"`
	Body        string          `json:"body"`
	// Error is part of the error reading the message gives, "" when it
	// is read as a job.
	Error    string `json:"error"`
	Envelope struct {
		ID        string `json:"id"`
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
	} `json:"envelope"`
	CloudEvent *wireCloudEvent `json:"cloud_event"`
}

func TestCloudEventVectorsForeign(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(wireDir, "cloudevents", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d vectors in %s/cloudevents, want at least 3", len(files), wireDir)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var v foreignVector
			if err := decodeStrict(data, &v); err != nil {
				t.Fatal(err)
			}
			if v.Description == "" {
				t.Error("no description")
			}
			p := (&wireVector{}).Properties
			if err := decodeStrict(v.Properties, &p); err != nil {
				t.Fatalf("properties: %v", err)
			}
			headers, err := fieldTable(v.Headers)
			if err != nil {
				t.Fatalf("headers: %v", err)
			}
			if err := headers.Validate(); err != nil {
				t.Fatal(err)
			}
			body, err := hex.DecodeString(v.Body)
			if err != nil {
				t.Fatalf("body: %v", err)
			}
			d := &amqp.Delivery{
				ContentType: p.ContentType, MessageId: p.MessageID, Type: p.Type, DeliveryMode: p.DeliveryMode,
				AppId: p.AppID, CorrelationId: p.CorrelationID, ReplyTo: p.ReplyTo, Priority: p.Priority,
				Expiration: p.Expiration, Headers: headers, Body: body,
			}
			if p.Timestamp != 0 {
				d.Timestamp = time.Unix(p.Timestamp, 0)
			}
			m := messageOf(d)
			env, err := readMessage(&m) // as a consumer reads it, an envelope even when malformed
			if v.Error != "" {
				if err == nil || !strings.Contains(err.Error(), v.Error) {
					t.Fatalf("FromDelivery error = %v, want one containing %q", err, v.Error)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			var ts time.Time
			if v.Envelope.Timestamp != "" {
				if ts, err = time.Parse(time.RFC3339, v.Envelope.Timestamp); err != nil {
					t.Fatalf("envelope.timestamp: %v", err)
				}
			}
			if env.ID != v.Envelope.ID || env.Type != v.Envelope.Type || !env.Timestamp.Equal(ts) {
				t.Errorf("envelope id %q, type %q, timestamp %v; want %q, %q, %v",
					env.ID, env.Type, env.Timestamp, v.Envelope.ID, v.Envelope.Type, ts)
			}
			v.CloudEvent.check(t, env)
			if v.Error != "" {
				return
			}
			if err := env.Decode(new(any)); err != nil {
				t.Errorf("Decode: %v", err)
			}
			// Passed along (a retry), the job keeps its attributes and
			// gains the properties it lacked.
			env.Attempt++
			again, err := FromDelivery(deliveryOf(env.publishing()))
			if err != nil {
				t.Fatal(err)
			}
			if again.ID != env.ID || again.Type != env.Type {
				t.Errorf("retried: id %q, type %q; want %q, %q", again.ID, again.Type, env.ID, env.Type)
			}
			v.CloudEvent.check(t, again)
		})
	}
}

func TestAsCloudEventRefuses(t *testing.T) {
	long := strings.Repeat("a", maxCloudEventSource+1)
	for _, tc := range []struct {
		name, source, subject, want string
	}{
		{"empty source", "", "", "URI-reference of 1 to"},
		{"long source", "/" + long, "", "URI-reference of 1 to"},
		{"space", "/my source", "", "percent-encode"},
		{"non-ASCII", "/café", "", "percent-encode"},
		{"bad escape", "/a%zz", "", "not a URI-reference"},
		{"bad subject", "/shop", "\xff", "subject"},
		{"long subject", "/shop", long, "subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, err := NewEnvelope(Job{Type: "order.placed"})
			if err != nil {
				t.Fatal(err)
			}
			err = MarkEnvelope(env, AsCloudEvent(tc.source, tc.subject))
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrInvalidOption saying %q", err, tc.want)
			}
			if env.Headers != nil {
				t.Errorf("headers written: %v", env.Headers)
			}
		})
	}
	if _, err := NewPublisher(&Conn{}, WithCloudEvents("not a uri")); err == nil || !strings.Contains(err.Error(), "WithCloudEvents") {
		t.Errorf("WithCloudEvents with a bad source: err = %v", err)
	}
}

func TestAsCloudEventAccepts(t *testing.T) {
	for _, src := range []string{"/shop/orders", "https://example.com/shop", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", "shop", "mailto:ops@example.com", "/a%20b"} {
		env, err := newEnvelope(Job{Type: "order.placed", Headers: map[string]any{"cloudEvents_id": "forged"}}, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if err := MarkEnvelope(env, AsCloudEvent(src, "")); err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		ce, ok := CloudEventOf(env)
		if !ok || ce.Source != src || ce.ID != env.ID || ce.Type != env.Type || ce.Subject != "" || !ce.Time.Equal(env.Timestamp) {
			t.Errorf("%q: CloudEventOf = %+v, %v", src, ce, ok)
		}
	}
}

// TestCloudEventKeptConsistent: what a worker does to a job (a retry, a
// dead letter, a replay) goes through the envelope, and the attributes
// still name the job.
func TestCloudEventKeptConsistent(t *testing.T) {
	env, err := newEnvelope(Job{Type: "order.placed", Payload: map[string]any{"order_id": "o-1042"}}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if err := MarkEnvelope(env, AsCloudEvent("/shop/orders", "o-1042"), UniqueKey("o-1042")); err != nil {
		t.Fatal(err)
	}
	want, _ := CloudEventOf(env)
	cur := env
	for i := range 3 {
		cur.Attempt++
		cur.ReplayCount = i
		cur.Failure = &Failure{Error: "boom", Class: "transient", FailedAt: testNow}
		next, err := FromDelivery(deliveryOf(cur.publishing()))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := CloudEventOf(next)
		if !ok {
			t.Fatalf("hop %d: no CloudEvent", i)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("hop %d (-published +passed along):\n%s", i, diff)
		}
		cur = next
	}
}

func TestCloudEventOfNone(t *testing.T) {
	for name, h := range map[string]map[string]any{
		"no headers":        nil,
		"other headers":     {"tenant": "acme"},
		"no source":         {"cloudEvents_specversion": "1.0", "cloudEvents_id": "1"},
		"specversion int":   {"cloudEvents_specversion": int64(1), "cloudEvents_source": "/s"},
		"mixed separators":  {"cloudEvents_specversion": "1.0", "cloudEvents:source": "/s"},
		"empty specversion": {"cloudEvents_specversion": "", "cloudEvents_source": "/s"},
	} {
		if ce, ok := CloudEventOf(&Envelope{ID: "j", Type: "t", Headers: h}); ok {
			t.Errorf("%s: CloudEventOf = %+v, want none", name, ce)
		}
	}
	if _, ok := CloudEventOf(nil); ok {
		t.Error("CloudEventOf(nil) found one")
	}
}

// TestCloudEventsHotPath: a job without the option and a delivery
// without CloudEvents attributes cost what they did.
func TestCloudEventsHotPath(t *testing.T) {
	env, err := newEnvelope(Job{Type: "invoice.render", Payload: samplePayload()}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	var o publishOptions
	if n := testing.AllocsPerRun(100, func() { o.mark(env) }); n != 0 {
		t.Errorf("mark without options: %v allocations, want 0", n)
	}
	// A message without an id, and headers that are not CloudEvents':
	// as costly to read as with an id.
	m := messageOf(deliveryOf(env.publishing()))
	m.headers = amqp.Table{"tenant": "acme"}
	read := func(m message) float64 {
		return testing.AllocsPerRun(100, func() {
			var e Envelope
			_ = readMessageInto(&m, &e)
		})
	}
	withID := read(m)
	m.messageID = ""
	if without := read(m); without != withID {
		t.Errorf("readMessageInto: %v allocations without an id, %v with one", without, withID)
	}
}
