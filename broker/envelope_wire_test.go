package broker

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/vmihailenco/msgpack/v5"
)

// The conformance vectors of docs/wire-format.md live in testdata/wire at
// the repository root, for producers in any language to test against.
const wireDir = "../testdata/wire"

var updateBombs = flag.Bool("update-bombs", false, "rewrite the expected errors in "+wireDir+"/bombs/bodies.json")

// wireVector is one file of testdata/wire: the inputs to warren's Go API,
// and the AMQP message they give.
type wireVector struct {
	Description string `json:"description"`
	Input       struct {
		Now string `json:"now"`
		Job struct {
			ID            string          `json:"id"`
			Type          string          `json:"type"`
			Priority      uint8           `json:"priority"`
			CorrelationID string          `json:"correlation_id"`
			ReplyTo       string          `json:"reply_to"`
			Headers       json.RawMessage `json:"headers"`
		} `json:"job"`
		Envelope struct {
			AppID       string       `json:"app_id"`
			Expiration  string       `json:"expiration"`
			Attempt     int          `json:"attempt"`
			ReplayCount int          `json:"replay_count"`
			Failure     *wireFailure `json:"failure"`
		} `json:"envelope"`
		// CloudEvent is AsCloudEvent's arguments, when the job is
		// published with it.
		CloudEvent *struct {
			Source  string `json:"source"`
			Subject string `json:"subject"`
		} `json:"cloud_event"`
	} `json:"input"`
	Properties struct {
		ContentType   string `json:"content_type"`
		MessageID     string `json:"message_id"`
		Type          string `json:"type"`
		Timestamp     int64  `json:"timestamp"`
		DeliveryMode  uint8  `json:"delivery_mode"`
		AppID         string `json:"app_id"`
		CorrelationID string `json:"correlation_id"`
		ReplyTo       string `json:"reply_to"`
		Priority      uint8  `json:"priority"`
		Expiration    string `json:"expiration"`
	} `json:"properties"`
	Headers []typedField    `json:"headers"`
	Body    string          `json:"body"`
	Payload json.RawMessage `json:"payload"`
	// CloudEvent is what CloudEventOf reads from the message; absent
	// when it carries no CloudEvents attributes.
	CloudEvent *wireCloudEvent `json:"cloud_event"`
}

type wireFailure struct {
	Error         string    `json:"error"`
	Class         string    `json:"class"`
	FirstFailedAt time.Time `json:"first_failed_at"`
	FailedAt      time.Time `json:"failed_at"`
	Origin        struct {
		Exchange   string `json:"exchange"`
		RoutingKey string `json:"routing_key"`
		Queue      string `json:"queue"`
	} `json:"origin"`
	WorkerHost string `json:"worker_host"`
}

// typedField is an AMQP field with its type named as in the AMQP 0-9-1
// specification. In a "field table" the value is a list of typedFields; in
// a "field array" a list of {type, value}.
type typedField struct {
	Name  string          `json:"name,omitempty"`
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// fieldValue returns the Go value amqp091-go gives for an AMQP field.
func (f typedField) value() (any, error) {
	var err error
	switch f.Type {
	case "boolean":
		var v bool
		err = json.Unmarshal(f.Value, &v)
		return v, err
	case "short-short int":
		var v int8
		err = json.Unmarshal(f.Value, &v)
		return v, err
	case "short-short uint":
		var v uint8
		err = json.Unmarshal(f.Value, &v)
		return v, err
	case "short int":
		var v int16
		err = json.Unmarshal(f.Value, &v)
		return v, err
	case "short uint":
		var v uint16
		err = json.Unmarshal(f.Value, &v)
		return v, err
	case "long int":
		var v int32
		err = json.Unmarshal(f.Value, &v)
		return v, err
	case "long uint":
		var v uint32
		err = json.Unmarshal(f.Value, &v)
		return v, err
	case "long-long int":
		var v int64
		err = json.Unmarshal(f.Value, &v)
		return v, err
	case "float":
		var v float32
		err = json.Unmarshal(f.Value, &v)
		return v, err
	case "double":
		var v float64
		err = json.Unmarshal(f.Value, &v)
		return v, err
	case "long string":
		var v string
		err = json.Unmarshal(f.Value, &v)
		return v, err
	case "byte array":
		var v string
		if err = json.Unmarshal(f.Value, &v); err != nil {
			return nil, err
		}
		return hex.DecodeString(v)
	case "timestamp":
		var v int64
		err = json.Unmarshal(f.Value, &v)
		return time.Unix(v, 0), err
	case "void":
		return nil, nil
	case "field table":
		var fields []typedField
		if err = decodeStrict(f.Value, &fields); err != nil {
			return nil, err
		}
		return fieldTable(fields)
	case "field array":
		var fields []typedField
		if err = decodeStrict(f.Value, &fields); err != nil {
			return nil, err
		}
		a := make([]any, len(fields))
		for i, el := range fields {
			if a[i], err = el.value(); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("unknown AMQP field type %q", f.Type)
}

func fieldTable(fields []typedField) (amqp.Table, error) {
	if len(fields) == 0 {
		return nil, nil // no header table at all
	}
	t := amqp.Table{}
	for _, f := range fields {
		if _, dup := t[f.Name]; dup {
			return nil, fmt.Errorf("field %q twice", f.Name)
		}
		v, err := f.value()
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", f.Name, err)
		}
		t[f.Name] = v
	}
	return t, nil
}

// orderedJSON is a JSON value that encodes to MessagePack keeping the
// order of object members, so a vector's payload gives its exact body.
// Integers are encoded as int64 (so in their compact form), other numbers
// as float64, {"$timestamp": RFC 3339} as a timestamp and {"$bin": hex}
// as bin.
type orderedJSON struct{ v any }

type jsonMember struct {
	key   string
	value orderedJSON
}

func parseOrdered(dec *json.Decoder) (orderedJSON, error) {
	tok, err := dec.Token()
	if err != nil {
		return orderedJSON{}, err
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '[':
			var a []orderedJSON
			for dec.More() {
				el, err := parseOrdered(dec)
				if err != nil {
					return orderedJSON{}, err
				}
				a = append(a, el)
			}
			_, err := dec.Token()
			return orderedJSON{a}, err
		case '{':
			var m []jsonMember
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return orderedJSON{}, err
				}
				v, err := parseOrdered(dec)
				if err != nil {
					return orderedJSON{}, err
				}
				m = append(m, jsonMember{k.(string), v})
			}
			if _, err := dec.Token(); err != nil {
				return orderedJSON{}, err
			}
			if len(m) == 1 && (m[0].key == "$timestamp" || m[0].key == "$bin") {
				s, _ := m[0].value.v.(string)
				if m[0].key == "$bin" {
					b, err := hex.DecodeString(s)
					return orderedJSON{b}, err
				}
				tm, err := time.Parse(time.RFC3339Nano, s)
				return orderedJSON{tm}, err
			}
			return orderedJSON{m}, nil
		}
	case json.Number:
		if !strings.ContainsAny(tok.String(), ".eE") {
			n, err := tok.Int64()
			return orderedJSON{n}, err
		}
		f, err := tok.Float64()
		return orderedJSON{f}, err
	}
	return orderedJSON{tok}, nil // string, bool, nil
}

func (o orderedJSON) EncodeMsgpack(enc *msgpack.Encoder) error {
	switch v := o.v.(type) {
	case []jsonMember:
		if err := enc.EncodeMapLen(len(v)); err != nil {
			return err
		}
		for _, m := range v {
			if err := enc.EncodeString(m.key); err != nil {
				return err
			}
			if err := enc.Encode(m.value); err != nil {
				return err
			}
		}
		return nil
	case []orderedJSON:
		if err := enc.EncodeArrayLen(len(v)); err != nil {
			return err
		}
		for _, el := range v {
			if err := enc.Encode(el); err != nil {
				return err
			}
		}
		return nil
	}
	return enc.Encode(o.v)
}

// jsonView turns a decoded payload into what the vector's JSON decodes to:
// numbers as int64 or float64, timestamps and bins in their $ forms.
func jsonView(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, el := range v {
			m[k] = jsonView(el)
		}
		return m
	case []any:
		a := make([]any, len(v))
		for i, el := range v {
			a[i] = jsonView(el)
		}
		return a
	case json.Number:
		if !strings.ContainsAny(v.String(), ".eE") {
			n, _ := v.Int64()
			return n
		}
		f, _ := v.Float64()
		return f
	case time.Time:
		return map[string]any{"$timestamp": v.UTC().Format(time.RFC3339Nano)}
	case []byte:
		return map[string]any{"$bin": hex.EncodeToString(v)}
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case int64:
		return v
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint64:
		if v > math.MaxInt64 {
			return v
		}
		return int64(v)
	case float32:
		return float64(v)
	}
	return v
}

// goHeaders turns the job's JSON headers into Go values as a producer
// would write them: integral numbers as plain int, which NewEnvelope must
// convert to int64.
func goHeaders(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, el := range v {
			m[k] = goHeaders(el)
		}
		return m
	case []any:
		a := make([]any, len(v))
		for i, el := range v {
			a[i] = goHeaders(el)
		}
		return a
	case json.Number:
		if n, err := v.Int64(); err == nil && !strings.ContainsAny(v.String(), ".eE") {
			return int(n)
		}
		f, _ := v.Float64()
		return f
	}
	return v
}

func loadVectors(t *testing.T) map[string]*wireVector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(wireDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("found %d vectors in %s, want at least 6", len(files), wireDir)
	}
	vectors := map[string]*wireVector{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v wireVector
		if err := decodeStrict(data, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		vectors[strings.TrimSuffix(filepath.Base(f), ".json")] = &v
	}
	return vectors
}

// build returns what the vector's inputs give through the Go API: the
// envelope, and the message warren publishes for it.
func (v *wireVector) build(t *testing.T) (*Envelope, *amqp.Delivery) {
	t.Helper()
	now, err := time.Parse(time.RFC3339Nano, v.Input.Now)
	if err != nil {
		t.Fatalf("input.now: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(v.Payload))
	dec.UseNumber()
	payload, err := parseOrdered(dec)
	if err != nil {
		t.Fatalf("payload: %v", err)
	}
	job := Job{
		ID: v.Input.Job.ID, Type: v.Input.Job.Type, Payload: payload, Priority: v.Input.Job.Priority,
		CorrelationID: v.Input.Job.CorrelationID, ReplyTo: v.Input.Job.ReplyTo,
	}
	if len(v.Input.Job.Headers) > 0 {
		var h any
		if err := decodeStrict(v.Input.Job.Headers, &h); err != nil {
			t.Fatalf("input.job.headers: %v", err)
		}
		job.Headers = goHeaders(h).(map[string]any)
	}
	env, err := newEnvelope(job, now)
	if err != nil {
		t.Fatalf("NewEnvelope: %v", err)
	}
	in := v.Input.Envelope
	env.AppID, env.Expiration, env.ReplayCount = in.AppID, in.Expiration, in.ReplayCount
	if in.Attempt != 0 {
		env.Attempt = in.Attempt
	}
	if f := in.Failure; f != nil {
		env.Failure = &Failure{
			Error: f.Error, Class: f.Class, FirstFailedAt: f.FirstFailedAt.UTC(), FailedAt: f.FailedAt.UTC(),
			Origin:     Origin{Exchange: f.Origin.Exchange, RoutingKey: f.Origin.RoutingKey, Queue: f.Origin.Queue},
			WorkerHost: f.WorkerHost,
		}
	}

	if ce := v.Input.CloudEvent; ce != nil {
		if err := MarkEnvelope(env, AsCloudEvent(ce.Source, ce.Subject)); err != nil {
			t.Fatalf("AsCloudEvent: %v", err)
		}
	}

	headers, err := fieldTable(v.Headers)
	if err != nil {
		t.Fatalf("headers: %v", err)
	}
	body, err := hex.DecodeString(v.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	p := v.Properties
	d := &amqp.Delivery{
		ContentType: p.ContentType, MessageId: p.MessageID, Type: p.Type, Timestamp: time.Unix(p.Timestamp, 0),
		DeliveryMode: p.DeliveryMode, AppId: p.AppID, CorrelationId: p.CorrelationID, ReplyTo: p.ReplyTo,
		Priority: p.Priority, Expiration: p.Expiration, Headers: headers, Body: body,
	}
	return env, d
}

func TestWireVectors(t *testing.T) {
	for name, v := range loadVectors(t) {
		t.Run(name, func(t *testing.T) {
			env, d := v.build(t)

			t.Run("publish", func(t *testing.T) {
				want := amqp.Publishing{
					ContentType: d.ContentType, MessageId: d.MessageId, Type: d.Type, Timestamp: d.Timestamp,
					DeliveryMode: d.DeliveryMode, AppId: d.AppId, CorrelationId: d.CorrelationId, ReplyTo: d.ReplyTo,
					Priority: d.Priority, Expiration: d.Expiration, Headers: d.Headers, Body: d.Body,
				}
				// cmp compares interface values with their dynamic types:
				// a header written as int where the vector says long-long
				// int fails here.
				if diff := cmp.Diff(want, env.Publishing()); diff != "" {
					t.Errorf("Publishing (-vector +got):\n%s", diff)
				}
			})

			t.Run("consume", func(t *testing.T) {
				got, err := FromDelivery(d)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(env, got); diff != "" {
					t.Errorf("FromDelivery (-built from the inputs +got):\n%s", diff)
				}
				v.CloudEvent.check(t, got)
				var payload any
				if err := got.Decode(&payload); err != nil {
					t.Fatal(err)
				}
				var want any
				if err := decodeStrict(v.Payload, &want); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(jsonView(want), jsonView(payload)); diff != "" {
					t.Errorf("payload (-vector +decoded):\n%s", diff)
				}
			})
		})
	}
}

// TestWireStructPayload checks that a Go struct with json tags encodes to
// the same body as the vector written from JSON.
func TestWireStructPayload(t *testing.T) {
	vectors := loadVectors(t)
	tests := []struct {
		vector  string
		payload any
	}{
		{"minimal", struct {
			To string `json:"to"`
		}{"ada@example.com"}},
		{"retried", struct {
			UserID   string    `json:"user_id"`
			Template string    `json:"template"`
			RunAt    time.Time `json:"run_at"`
		}{"u-1029", "welcome", time.Date(2026, 11, 24, 10, 30, 0, 0, time.FixedZone("CET", 3600))}},
		{"replayed", struct {
			OrderID string   `json:"order_id"`
			Note    *string  `json:"note"`
			Items   []string `json:"items"`
		}{"o-77", nil, []string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.vector, func(t *testing.T) {
			env, err := newEnvelope(Job{Type: "t", Payload: tt.payload}, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(env.Body); got != vectors[tt.vector].Body {
				t.Errorf("body = %s, want %s", got, vectors[tt.vector].Body)
			}
		})
	}
}

// bomb is a body CheckBody must reject, from testdata/wire/bombs: hex,
// then repeat repeated count times, then suffix.
type bomb struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Hex         string `json:"hex"`
	Repeat      string `json:"repeat,omitempty"`
	Count       int    `json:"count,omitempty"`
	Suffix      string `json:"suffix,omitempty"`
	Sentinel    string `json:"sentinel"`
	Error       string `json:"error"`
}

func (b *bomb) body(t *testing.T) []byte {
	t.Helper()
	var out []byte
	for _, part := range []struct {
		hex   string
		count int
	}{{b.Hex, 1}, {b.Repeat, b.Count}, {b.Suffix, 1}} {
		p, err := hex.DecodeString(part.hex)
		if err != nil {
			t.Fatalf("%s: %v", b.Name, err)
		}
		out = append(out, bytes.Repeat(p, part.count)...)
	}
	return out
}

// TestWireBombs is a golden test: each hostile body is rejected by
// CheckBody, and so by Decode before the decoder runs, with the recorded
// error, with a bounded number of allocations. It checks no timings.
// Run with -update-bombs to record new errors.
func TestWireBombs(t *testing.T) {
	path := filepath.Join(wireDir, "bombs", "bodies.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var bombs []*bomb
	if err := decodeStrict(data, &bombs); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	sentinels := map[string]error{"ErrBadBody": ErrBadBody, "ErrBodyTooLarge": ErrBodyTooLarge}
	for _, b := range bombs {
		t.Run(b.Name, func(t *testing.T) {
			body := b.body(t)
			err := CheckBody(body, Limits{})
			if err == nil {
				t.Fatalf("CheckBody accepted %d bytes", len(body))
			}
			if want := sentinels[b.Sentinel]; !errors.Is(err, want) {
				t.Errorf("CheckBody = %v, want %s", err, b.Sentinel)
			}
			if *updateBombs {
				b.Error = err.Error()
			} else if err.Error() != b.Error {
				t.Errorf("CheckBody = %q\nwant       %q", err, b.Error)
			}
			var v any
			if derr := (&Envelope{Body: body}).Decode(&v); derr == nil || derr.Error() != err.Error() {
				t.Errorf("Decode = %v, want the CheckBody error", derr)
			}
			// Rejecting allocates only the error: nothing in proportion
			// to what the body declares.
			if n := testing.AllocsPerRun(5, func() { _ = CheckBody(body, Limits{}) }); n > 32 {
				t.Errorf("CheckBody allocated %v times, want at most 32", n)
			}
			if n := bytesPerRun(5, func() { _ = CheckBody(body, Limits{}) }); n > 4<<10 {
				t.Errorf("CheckBody allocated %d bytes, want at most 4 KiB", n)
			}
		})
	}
	if *updateBombs {
		out, err := json.MarshalIndent(bombs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// bytesPerRun is the mean number of bytes f allocates.
func bytesPerRun(runs int, f func()) uint64 {
	f() // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestWireVectorsValid keeps the vectors honest: every body passes
// CheckBody and the headers pass amqp091-go's own validation.
func TestWireVectorsValid(t *testing.T) {
	for name, v := range loadVectors(t) {
		t.Run(name, func(t *testing.T) {
			_, d := v.build(t)
			if err := CheckBody(d.Body, Limits{}); err != nil {
				t.Error(err)
			}
			if err := d.Headers.Validate(); err != nil {
				t.Error(err)
			}
			if v.Description == "" {
				t.Error("no description")
			}
			if strconv.Itoa(int(d.DeliveryMode)) != "2" {
				t.Errorf("delivery_mode = %d, want 2", d.DeliveryMode)
			}
		})
	}
}
