package deadletter_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/brokertest/rawmsg"
	"github.com/warrenmq/warren/internal/testkit"
)

func TestMain(m *testing.M) { os.Exit(brokertest.MainWithLeakCheck(m)) }

// roundTrip writes r with an Encoder and reads it back with a Decoder,
// returning the line written.
func roundTrip(t *testing.T, r deadletter.Record) (deadletter.Record, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := deadletter.NewEncoder(&buf).Encode(r); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("Encode wrote %q, want one line", line)
	}
	dec := deadletter.NewDecoder(&buf)
	got, err := dec.Decode()
	if err != nil {
		t.Fatalf("Decode of %s: %v", line, err)
	}
	if _, err := dec.Decode(); !errors.Is(err, io.EOF) {
		t.Fatalf("second Decode: %v, want io.EOF", err)
	}
	return got, line
}

func TestHeaderValuesKeepTheirAMQPType(t *testing.T) {
	for _, c := range []struct {
		name string
		v    any
		json string // the value as written
	}{
		{"bool", true, `{"t":"bool","v":true}`},
		{"int8", int8(-128), `{"t":"int8","v":-128}`},
		{"uint8", uint8(255), `{"t":"uint8","v":255}`},
		{"int16", int16(-32768), `{"t":"int16","v":-32768}`},
		{"uint16", uint16(65535), `{"t":"uint16","v":65535}`},
		{"int32", int32(math.MinInt32), `{"t":"int32","v":-2147483648}`},
		{"uint32", uint32(math.MaxUint32), `{"t":"uint32","v":4294967295}`},
		{"int64 above 2^53", int64(math.MaxInt64), `{"t":"int64","v":"9223372036854775807"}`},
		{"int64 lowest", int64(math.MinInt64), `{"t":"int64","v":"-9223372036854775808"}`},
		// py-amqp writes integers beyond 32 bits as 'L', which amqp091-go
		// reads as int64 (and writes back as 'l', as RabbitMQ does).
		{"int64 written by py-amqp as 'L'", int64(-1) << 40, `{"t":"int64","v":"-1099511627776"}`},
		{"float32", float32(0.1), `{"t":"float32","v":0.1}`},
		{"float32 largest", float32(math.MaxFloat32), `{"t":"float32","v":3.4028235e+38}`},
		{"float64", 0.1, `{"t":"float64","v":0.1}`},
		{"float64 smallest", math.SmallestNonzeroFloat64, `{"t":"float64","v":5e-324}`},
		{"float64 negative zero", math.Copysign(0, -1), `{"t":"float64","v":-0}`},
		{"float64 NaN", math.NaN(), `{"t":"float64","v":"NaN"}`},
		{"float64 +Inf", math.Inf(1), `{"t":"float64","v":"Infinity"}`},
		{"float32 -Inf", float32(math.Inf(-1)), `{"t":"float32","v":"-Infinity"}`},
		{"decimal", broker.Decimal{Scale: 2, Value: -12345}, `{"t":"decimal","v":{"scale":2,"value":-12345}}`},
		{"string", "héllo \"<b>\"\n\x00", `{"t":"string","v":"héllo \"<b>\"\n\u0000"}`},
		{"empty string", "", `{"t":"string","v":""}`},
		{"string that is not UTF-8", "\xff\xfe ok", `{"t":"string","b64":"//4gb2s="}`},
		{"bytes", []byte{0, 1, 0xff}, `{"t":"bytes","v":"AAH/"}`},
		{"empty bytes", []byte{}, `{"t":"bytes","v":""}`},
		{"timestamp", time.Unix(1795514400, 0), `{"t":"timestamp","v":"2026-11-24T10:00:00Z"}`},
		{"timestamp before year 0", time.Unix(-70000000000, 0), `{"t":"timestamp","v":"-70000000000"}`},
		{"void", nil, `{"t":"void"}`},
		{"table", broker.Table{"a": int8(1), "n": broker.Table{"b": []any{"x", int64(2)}}},
			`{"t":"table","v":{"a":{"t":"int8","v":1},"n":{"t":"table","v":{"b":{"t":"array","v":[{"t":"string","v":"x"},{"t":"int64","v":"2"}]}}}}}`},
		{"empty table", broker.Table{}, `{"t":"table","v":{}}`},
		// An empty array reads back as amqp091-go reads one: a nil []any.
		{"array", []any{int16(1), nil, []any(nil), uint32(7)},
			`{"t":"array","v":[{"t":"int16","v":1},{"t":"void"},{"t":"array","v":[]},{"t":"uint32","v":7}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := deadletter.Record{Queue: "q", Headers: broker.Table{"h": c.v}, Body: []byte("b")}
			got, line := roundTrip(t, rec)
			if !strings.Contains(line, `"headers":{"h":`+c.json+`}`) {
				t.Errorf("line %s\nlacks the value %s", line, c.json)
			}
			if diff := cmp.Diff(rec.Headers, got.Headers, cmpopts.EquateNaNs()); diff != "" {
				t.Errorf("headers read back differ (-written +read):\n%s", diff)
			}
			if f, ok := c.v.(float64); ok && math.Signbit(f) != math.Signbit(got.Headers["h"].(float64)) {
				t.Errorf("the sign of %v was lost", f)
			}
		})
	}
	// An int is what amqp091-go sends as a 32-bit integer.
	got, _ := roundTrip(t, deadletter.Record{Headers: broker.Table{"n": 42}})
	if got.Headers["n"] != int32(42) {
		t.Errorf("an int header reads back as %#v, want int32(42), what amqp091-go sends", got.Headers["n"])
	}
}

func TestRecordKeepsEveryProperty(t *testing.T) {
	msg := broker.Message{
		ContentType:     "application/msgpack",
		ContentEncoding: "gzip",
		DeliveryMode:    1,
		Priority:        9,
		CorrelationID:   "corr-1",
		ReplyTo:         "replies",
		Expiration:      "60000",
		MessageID:       "id-\xff\x00", // not UTF-8
		Timestamp:       time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
		Type:            "email.send",
		UserID:          "guest",
		AppID:           "billing",
		Headers:         broker.Table{"x-death": []any{broker.Table{"count": int64(1), "reason": "rejected"}}},
		Body:            []byte{0xc1, 0xff, 0x00, '\n', 0x80}, // not MessagePack, not UTF-8
	}
	rec := deadletter.NewRecord("emails.dlq", msg)
	rec.ExportedAt = time.Date(2026, 11, 25, 8, 30, 0, 123456789, time.UTC)
	got, line := roundTrip(t, rec)
	if diff := cmp.Diff(msg, got.Message()); diff != "" {
		t.Errorf("Publishing after a round trip differs (-sent +read):\n%s", diff)
	}
	if diff := cmp.Diff(rec, got); diff != "" {
		t.Errorf("record after a round trip differs (-written +read):\n%s", diff)
	}
	for _, want := range []string{`"version":1`, `"queue":"emails.dlq"`, `"message_id":{"b64":"aWQt/wA="}`, `"timestamp":"2026-11-24T10:00:00Z"`,
		`"class":"rabbitmq:rejected"`, `"body":"wf8ACoA="`, `"exported_at":"2026-11-25T08:30:00.123456789Z"`} {
		if !strings.Contains(line, want) {
			t.Errorf("line lacks %s:\n%s", want, line)
		}
	}

	// A quorum queue's x-delivery-count describes the reads, not the
	// message: it is kept apart, and not published again.
	msg.Headers = broker.Table{"x-delivery-count": int64(3), "tenant": "acme"}
	rec = deadletter.NewRecord("emails.dlq", msg)
	if rec.DeliveryCount != 3 || len(rec.Headers) != 1 {
		t.Errorf("delivery count %d, headers %v; want 3 and the count out of the headers", rec.DeliveryCount, rec.Headers)
	}
	if _, ok := rec.Message().Headers["x-delivery-count"]; ok {
		t.Error("Publishing sends x-delivery-count again")
	}
}

// nested returns headers with tables nested n levels below them, as deep
// as amqp091-go reads when n is 32.
func nested(n int) broker.Table {
	t := broker.Table{}
	for range n - 1 {
		t = broker.Table{"t": t}
	}
	return broker.Table{"t": t}
}

func TestEncodeRefusesWhatItCannotWriteExactly(t *testing.T) {
	if _, err := deadletter.NewRecord("q", broker.Message{Headers: nested(32)}).MarshalJSON(); err != nil {
		t.Errorf("headers nested as deep as amqp091-go reads: %v", err)
	}
	line, _ := deadletter.NewRecord("q", broker.Message{Headers: nested(32)}).MarshalJSON()
	if err := new(deadletter.Record).UnmarshalJSON(line); err != nil {
		t.Errorf("headers nested as deep as amqp091-go reads do not read back: %v", err)
	}
	deep := nested(33)
	for _, c := range []struct {
		name    string
		headers broker.Table
		want    string
	}{
		{"header name not UTF-8", broker.Table{"\xff": "v"}, "not UTF-8"},
		{"Go map", broker.Table{"m": map[string]any{"a": 1}}, "map[string]interface {} is not an AMQP field value"},
		{"int beyond 32 bits", broker.Table{"n": math.MaxInt32 + 1}, "use an int64"},
		{"fraction of a second", broker.Table{"t": time.Unix(1, 5)}, "whole seconds"},
		{"too deep", deep, "deeper than 32"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := deadletter.NewEncoder(&buf).Encode(deadletter.Record{Headers: c.headers})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Encode: %v, want an error saying %q", err, c.want)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %q for a record it refused", buf.String())
			}
		})
	}
}

func TestDecoderErrorsNameTheLine(t *testing.T) {
	const good = `{"version":1,"queue":"q","properties":{"message_id":"a"},"body":""}`
	for _, c := range []struct {
		name, line, want string
	}{
		{"not JSON", `{"version":1,`, "not a JSON object"},
		{"trailing data", good + ` x`, "not a JSON object"},
		{"no version", `{"queue":"q"}`, `no "version"`},
		{"newer version", `{"version":2,"queue":"q","new":1}`, "newer warren"},
		{"unknown field", `{"version":1,"queue":"q","properties":{},"body":"","extra":1}`, `unknown field "extra"`},
		{"unknown property", `{"version":1,"properties":{"prio":1},"body":""}`, `unknown field "prio"`},
		{"priority beyond a byte", `{"version":1,"properties":{"priority":300},"body":""}`, "priority"},
		{"no body", `{"version":1,"queue":"q","properties":{}}`, `no "body"`},
		{"body not base64", `{"version":1,"properties":{},"body":"!!"}`, "base64"},
		{"unknown value type", `{"version":1,"properties":{},"headers":{"h":{"t":"long","v":1}},"body":""}`, `unknown type "long"`},
		{"int8 out of range", `{"version":1,"properties":{},"headers":{"h":{"t":"int8","v":300}},"body":""}`, "from -128 to 127"},
		{"integer with a fraction", `{"version":1,"properties":{},"headers":{"h":{"t":"int32","v":1.5}},"body":""}`, "want an integer"},
		{"float32 out of range", `{"version":1,"properties":{},"headers":{"h":{"t":"float32","v":1e39}},"body":""}`, "32-bit float"},
		{"untyped value", `{"version":1,"properties":{},"headers":{"h":"text"},"body":""}`, `want {"t": type, "v": value}`},
		{"null value", `{"version":1,"properties":{},"headers":{"h":{"t":"string","v":null}},"body":""}`, `needs "v"`},
		{"b64 and v", `{"version":1,"properties":{},"headers":{"h":{"t":"string","v":"a","b64":"YQ=="}},"body":""}`, `"b64" is only for a string`},
		{"timestamp with a fraction", `{"version":1,"properties":{"timestamp":"2026-11-24T10:00:00.5Z"},"body":""}`, "whole seconds"},
		{"property too long", `{"version":1,"properties":{"type":"` + strings.Repeat("x", 256) + `"},"body":""}`, "at most 255"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := good + "\n\n" + c.line + "\n" + good + "\n"
			dec := deadletter.NewDecoder(strings.NewReader(in))
			if _, err := dec.Decode(); err != nil {
				t.Fatalf("line 1: %v", err)
			}
			_, err := dec.Decode()
			var le *deadletter.LineError
			if !errors.As(err, &le) || le.Line != 3 {
				t.Fatalf("Decode: %v, want a *LineError for line 3", err)
			}
			if !strings.Contains(err.Error(), "line 3: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q should name line 3 and say %q", err, c.want)
			}
			if _, again := dec.Decode(); again != err {
				t.Errorf("after an error Decode returned %v; it must not skip the bad line", again)
			}
		})
	}
}

func TestDecoderSkipsBlankLinesAndNeedsNoFinalNewline(t *testing.T) {
	in := "\n" + `{"version":1,"queue":"a","properties":{},"body":"AQ=="}` + "\r\n  \n" + `{"version":1,"queue":"b","properties":{},"body":""}`
	dec := deadletter.NewDecoder(strings.NewReader(in))
	var queues []string
	var lines []int
	for {
		r, err := dec.Decode()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		queues, lines = append(queues, r.Queue), append(lines, dec.Line())
	}
	if diff := cmp.Diff([]string{"a", "b"}, queues); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]int{2, 4}, lines); diff != "" {
		t.Errorf("line numbers (-want +got):\n%s", diff)
	}
}

// Against the broker.

func newSender(t *testing.T, conn *broker.Conn) *broker.Sender {
	t.Helper()
	p, err := broker.NewSender(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// classicQueue declares a classic queue with a unique name, deleted at
// cleanup.
func classicQueue(t *testing.T, what string, args broker.Table) string {
	t.Helper()
	return brokertest.Queue(t, what, args)
}

// publish puts msgs on queue as they are, with amqp091-go alone.
func publish(t *testing.T, queue string, msgs ...broker.Message) {
	t.Helper()
	rawmsg.Publish(t, queue, msgs...)
}

// typedMessage has every property and headers of every AMQP type, and a
// body that is neither MessagePack nor UTF-8.
func typedMessage(id string) broker.Message {
	return broker.Message{
		ContentType: "application/msgpack", ContentEncoding: "identity", DeliveryMode: 1, Priority: 2,
		CorrelationID: "corr-" + id, ReplyTo: "replies", Expiration: "3600000", MessageID: id,
		Timestamp: time.Unix(1795514400, 0), Type: "email.send", UserID: "guest", AppID: "legacy",
		// warren-failed-at has no milliseconds: warren writes them, so a
		// re-encoding of the envelope would add them. An empty array is
		// nil, as amqp091-go reads it.
		Headers: broker.Table{
			"warren-attempt": int32(4), "warren-error": "boom", "warren-error-class": "error", "warren-failed-at": "2026-11-24T10:00:00Z",
			"b": false, "i8": int8(-1), "u8": uint8(200), "i16": int16(300), "u16": uint16(60000), "i32": int32(-70000),
			"u32": uint32(4000000000), "i64": int64(1) << 60, "f32": float32(-2.5), "f64": 1e-300,
			"dec": broker.Decimal{Scale: 4, Value: -1}, "s": "\xff raw", "x": []byte{0xde, 0xad}, "t": time.Unix(0, 0),
			"v": nil, "a": []any{broker.Table{"k": int64(1)}, []any(nil), "z"},
		},
		Body: []byte{0xff, 0x00, 0xfe, '\n', 0x80},
	}
}

// rejectInto publishes msg to work and rejects it, so that the broker
// dead-letters it to dlq, with x-death, and waits until it is there.
func rejectInto(t *testing.T, work, dlq string, msg broker.Message) {
	t.Helper()
	depth := brokertest.Depth(t, dlq)
	publish(t, work, msg)
	ch := brokertest.Channel(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, ok, err := ch.Get(work, false)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if err := d.Reject(false); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing to reject in %s", work)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for brokertest.Depth(t, dlq) <= depth {
		if time.Now().After(deadline) {
			t.Fatal("the broker did not dead-letter the rejected message")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exportAll exports queue and returns its records.
func exportAll(t *testing.T, conn *broker.Conn, queue string, opts deadletter.ExportOptions) ([]deadletter.Record, deadletter.ExportSummary) {
	t.Helper()
	var buf bytes.Buffer
	s, err := deadletter.Export(brokertest.Context(t, 20*time.Second), conn, queue, &buf, opts)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	var recs []deadletter.Record
	dec := deadletter.NewDecoder(&buf)
	for {
		r, err := dec.Decode()
		if errors.Is(err, io.EOF) {
			return recs, s
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
}

func messages(recs []deadletter.Record) []broker.Message {
	out := make([]broker.Message, len(recs))
	for i, r := range recs {
		out[i] = r.Message()
	}
	return out
}

// TestExportPurgeImportIsExact: a message exported, purged and imported
// comes back byte for byte: properties, headers with their types, body;
// the x-death of the broker's own dead-lettering comes back as warren's
// failure headers (a client may not send x-death: RabbitMQ 3.x takes it for
// a dead-letter cycle later, RabbitMQ 4 ignores it).
func TestExportPurgeImportIsExact(t *testing.T) {
	conn := testkit.Dial(t, "warren-deadletter-test")
	ctx := brokertest.Context(t, 30*time.Second)
	dlq := classicQueue(t, "dlq", nil)
	work := classicQueue(t, "work", broker.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})

	sent := []broker.Message{typedMessage("typed-1"), {MessageID: "bare", Body: []byte{}}}
	publish(t, dlq, sent...)
	// The broker dead-letters one itself: it arrives with x-death.
	rejectInto(t, work, dlq, broker.Message{MessageID: "rejected-1", Type: "email.send", ContentType: "application/msgpack", Body: []byte{0x80}})
	if got := brokertest.Depth(t, dlq); got != 3 {
		t.Fatalf("%d messages in the dead-letter queue, want 3", got)
	}

	before, s := exportAll(t, conn, dlq, deadletter.ExportOptions{})
	if s.Total != 3 || s.Read != 3 || s.Exported != 3 || s.Capped || len(before) != 3 {
		t.Fatalf("export: %+v, %d records; want the 3 messages", s, len(before))
	}
	if diff := cmp.Diff(sent, messages(before[:2])); diff != "" {
		t.Errorf("exported messages differ from the ones published (-published +exported):\n%s", diff)
	}
	rej := before[2]
	if deaths := broker.Deaths(rej.Headers); rej.ID != "rejected-1" || len(deaths) != 1 || deaths[0].Reason != "rejected" || deaths[0].Queue != work {
		t.Fatalf("record of the rejected message: id %s, x-death %+v", rej.ID, deaths)
	}
	if rej.Class != "rabbitmq:rejected" || rej.Queue != dlq {
		t.Errorf("derived fields: class %q, queue %q", rej.Class, rej.Queue)
	}
	if got := brokertest.Depth(t, dlq); got != 3 {
		t.Fatalf("export removed messages: %d left of 3", got)
	}

	var purged []deadletter.Record
	deleted, kept, err := deadletter.PurgeRecords(ctx, conn, dlq, deadletter.Filter{}, func(r deadletter.Record) error {
		purged = append(purged, r)
		return nil
	})
	if err != nil || deleted != 3 || kept != 0 {
		t.Fatalf("PurgeRecords: deleted %d, kept %d, %v", deleted, kept, err)
	}
	if diff := cmp.Diff(messages(before), messages(purged)); diff != "" {
		t.Errorf("records of the purge differ from the export's (-export +purge):\n%s", diff)
	}
	if got := brokertest.Depth(t, dlq); got != 0 {
		t.Fatalf("%d messages left after the purge", got)
	}

	var file bytes.Buffer
	enc := deadletter.NewEncoder(&file)
	for _, r := range before {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	is, err := deadletter.Import(ctx, newSender(t, conn), &file, deadletter.ImportOptions{})
	if err != nil || is.Imported != 3 || len(is.Failed) != 0 || is.Lines != 3 {
		t.Fatalf("Import: %+v, %v", is, err)
	}
	after, _ := exportAll(t, conn, dlq, deadletter.ExportOptions{})
	// The broker's own headers are not published again: the x-death of
	// the message RabbitMQ rejected comes back as warren's failure
	// headers, which say the same to an operator.
	if diff := cmp.Diff(messages(before[:2]), messages(after[:2])); diff != "" {
		t.Errorf("imported messages differ from the exported ones (-exported +imported):\n%s", diff)
	}
	wantRej := before[2].Message()
	gotRej := after[2].Message()
	for name := range wantRej.Headers {
		if broker.BrokerHeader(name) {
			delete(wantRej.Headers, name)
		}
	}
	for name, v := range map[string]any{
		broker.HeaderErrorClass:       "rabbitmq:rejected",
		broker.HeaderError:            fmt.Sprintf("dead-lettered by RabbitMQ (rejected) from queue %q", work),
		broker.HeaderOriginQueue:      work,
		broker.HeaderOriginExchange:   "",
		broker.HeaderOriginRoutingKey: work,
		broker.HeaderFirstFailedAt:    gotRej.Headers[broker.HeaderFailedAt],
	} {
		if gotRej.Headers[name] != v {
			t.Errorf("imported rejected message: header %q = %v, want %v", name, gotRej.Headers[name], v)
		}
		wantRej.Headers[name] = gotRej.Headers[name]
	}
	wantRej.Headers[broker.HeaderFailedAt] = gotRej.Headers[broker.HeaderFailedAt]
	if diff := cmp.Diff(wantRej, gotRej); diff != "" {
		t.Errorf("imported rejected message (-want +got):\n%s", diff)
	}
	if after[2].Class != rej.Class || after[2].Error != rej.Error {
		t.Errorf("imported rejected message reads as class %q, error %q; exported as %q, %q", after[2].Class, after[2].Error, rej.Class, rej.Error)
	}
	for i := range after {
		if !bytes.Equal(before[i].Body, after[i].Body) {
			t.Errorf("%s: body %x, want %x", after[i].ID, after[i].Body, before[i].Body)
		}
	}
}

// TestExportForeignHeaders: headers another client wrote as 'L' (py-amqp's
// integers beyond 32 bits) are exported as int64, and imported back with
// the same values; a job whose headers could not be read at all is neither
// exported nor purged into a file: its record would lose them.
func TestExportForeignHeaders(t *testing.T) {
	conn := testkit.Dial(t, "warren-deadletter-test")
	ctx := brokertest.Context(t, 30*time.Second)
	dlq := classicQueue(t, "dlq", nil)
	long := func(name string, n int64) []byte {
		return brokertest.Field(name, 'L', binary.BigEndian.AppendUint64(nil, uint64(n)))
	}
	brokertest.PublishFrames(t, "", dlq, brokertest.RawMessage{ContentType: broker.ContentType, MessageID: "py-1", Type: "t",
		Table: append(long("deadline", 1795514400123), long("big", -1<<40)...), Body: []byte{0xc0}})
	want := broker.Table{"deadline": int64(1795514400123), "big": int64(-1) << 40}

	before, _ := exportAll(t, conn, dlq, deadletter.ExportOptions{})
	if len(before) != 1 {
		t.Fatalf("%d records, want 1", len(before))
	}
	if diff := cmp.Diff(want, before[0].Headers); diff != "" {
		t.Errorf("exported headers (-want +got):\n%s", diff)
	}
	var file bytes.Buffer
	enc := deadletter.NewEncoder(&file)
	if deleted, _, err := deadletter.PurgeRecords(ctx, conn, dlq, deadletter.Filter{}, enc.Encode); err != nil || deleted != 1 {
		t.Fatalf("PurgeRecords: %d deleted, %v", deleted, err)
	}
	if is, err := deadletter.Import(ctx, newSender(t, conn), &file, deadletter.ImportOptions{}); err != nil || is.Imported != 1 {
		t.Fatalf("Import: %+v, %v", is, err)
	}
	after, _ := exportAll(t, conn, dlq, deadletter.ExportOptions{})
	if diff := cmp.Diff(messages(before), messages(after)); diff != "" {
		t.Errorf("imported message differs from the exported one (-exported +imported):\n%s", diff)
	}

	// Nested deeper than amqp091-go reads: RabbitMQ takes it, the
	// consumer gets it without headers.
	publish(t, dlq, broker.Message{MessageID: "deep", Headers: broker.Table{"deep": nested(40)}, Body: []byte("x")})
	_, err := deadletter.Export(ctx, conn, dlq, io.Discard, deadletter.ExportOptions{})
	if err == nil || !strings.Contains(err.Error(), "export job deep: its headers could not be read") {
		t.Errorf("Export: %v, want an error naming job deep and its headers", err)
	}
	deleted, _, err := deadletter.PurgeRecords(ctx, conn, dlq, deadletter.Filter{}, func(deadletter.Record) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "job deep not deleted: its headers could not be read") || deleted != 1 {
		t.Errorf("PurgeRecords: %d deleted, %v; want py-1 deleted, and deep kept with an error", deleted, err)
	}
	if got := brokertest.Depth(t, dlq); got != 1 {
		t.Errorf("%d jobs left, want deep", got)
	}
}

func TestExportLeavesTheQueueAsItWas(t *testing.T) {
	conn := testkit.Dial(t, "warren-deadletter-test")
	q := classicQueue(t, "dlq", nil)
	var sent []broker.Message
	for i := range 5 {
		sent = append(sent, broker.Message{MessageID: fmt.Sprintf("m%d", i), Type: []string{"a", "b"}[i%2], ContentType: "application/msgpack", Body: []byte{byte(i)}})
	}
	publish(t, q, sent...)

	recs, s := exportAll(t, conn, q, deadletter.ExportOptions{Filter: deadletter.Filter{Types: []string{"b"}}})
	if s.Read != 5 || s.Exported != 2 || len(recs) != 2 || recs[0].ID != "m1" || recs[1].ID != "m3" {
		t.Errorf("export of type b: %+v, records %v", s, recs)
	}
	recs, s = exportAll(t, conn, q, deadletter.ExportOptions{Limit: 3})
	if s.Exported != 3 || len(recs) != 3 {
		t.Errorf("export with a limit of 3: %+v", s)
	}
	recs, _ = exportAll(t, conn, q, deadletter.ExportOptions{})
	if diff := cmp.Diff(sent, messages(recs)); diff != "" {
		t.Errorf("export (-published +exported):\n%s", diff)
	}
	// The queue holds them all, in their order.
	for i := range 5 {
		if d := brokertest.Get(t, q, 5*time.Second); d.MessageId != sent[i].MessageID {
			t.Fatalf("message %d in the queue is %s, want %s", i, d.MessageId, sent[i].MessageID)
		}
	}
}

func TestPurgeRecordsKeepsAJobItCannotWrite(t *testing.T) {
	conn := testkit.Dial(t, "warren-deadletter-test")
	q := classicQueue(t, "dlq", nil)
	publish(t, q, broker.Message{MessageID: "a", Body: []byte("1")}, broker.Message{MessageID: "b", Body: []byte("2")}, broker.Message{MessageID: "c", Body: []byte("3")})
	var written []string
	deleted, _, err := deadletter.PurgeRecords(brokertest.Context(t, 20*time.Second), conn, q, deadletter.Filter{}, func(r deadletter.Record) error {
		if r.ID == "b" {
			return errors.New("disk full")
		}
		written = append(written, r.ID)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "job b not deleted: disk full") {
		t.Errorf("PurgeRecords: %v, want the write error for job b", err)
	}
	if deleted != 1 || len(written) != 1 || written[0] != "a" {
		t.Errorf("deleted %d, written %v; want a alone", deleted, written)
	}
	if got := brokertest.Depth(t, q); got != 2 {
		t.Errorf("%d jobs left, want b and c", got)
	}
}

func TestImportFailures(t *testing.T) {
	conn := testkit.Dial(t, "warren-deadletter-test")
	ctx := brokertest.Context(t, 20*time.Second)
	pub := newSender(t, conn)
	target := classicQueue(t, "target", nil)
	missing := brokertest.Name(t, "missing")
	line := func(queue, id string) string {
		b, err := deadletter.NewRecord(queue, broker.Message{MessageID: id, Body: []byte(id)}).MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}

	t.Run("no such queue", func(t *testing.T) {
		s, err := deadletter.Import(ctx, pub, strings.NewReader(line(missing, "1")+line(target, "2")+line("", "3")), deadletter.ImportOptions{})
		if err != nil || s.Imported != 1 || len(s.Failed) != 2 {
			t.Fatalf("Import: %+v, %v; want 1 imported, 2 failed", s, err)
		}
		if f := s.Failed[0]; f.Line != 1 || !errors.Is(f.Err, broker.ErrUnroutable) || !strings.Contains(f.Err.Error(), "no queue "+fmt.Sprintf("%q", missing)) {
			t.Errorf("failure of line 1: %+v", f)
		}
		if f := s.Failed[1]; f.Line != 3 || !errors.Is(f.Err, deadletter.ErrNoQueueNamed) {
			t.Errorf("failure of line 3: %+v", f)
		}
		if d := brokertest.Get(t, target, 5*time.Second); d.MessageId != "2" {
			t.Errorf("imported %s, want 2", d.MessageId)
		}
	})

	t.Run("user_id of another user", func(t *testing.T) {
		other, err := deadletter.NewRecord(target, broker.Message{MessageID: "u1", UserID: "someone-else", Body: []byte("u1")}).MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		s, err := deadletter.Import(ctx, pub, strings.NewReader(string(other)+"\n"+line(target, "u2")), deadletter.ImportOptions{})
		if err != nil || s.Imported != 1 || len(s.Failed) != 1 {
			t.Fatalf("Import: %+v, %v; want u2 imported, u1 failed", s, err)
		}
		if msg := s.Failed[0].Err.Error(); !strings.Contains(msg, `import this job as "someone-else"`) {
			t.Errorf("failure of u1 should say to import it as its user: %s", msg)
		}
		if d := brokertest.Get(t, target, 5*time.Second); d.MessageId != "u2" {
			t.Errorf("imported %s, want u2", d.MessageId)
		}
	})

	t.Run("bad line stops the import", func(t *testing.T) {
		s, err := deadletter.Import(ctx, pub, strings.NewReader(line("", "1")+"{oops\n"+line("", "3")), deadletter.ImportOptions{To: deadletter.ToQueue(target)})
		var le *deadletter.LineError
		if !errors.As(err, &le) || le.Line != 2 || s.Imported != 1 || s.Lines != 1 {
			t.Fatalf("Import: %+v, %v; want line 1 imported and a *LineError for line 2", s, err)
		}
		if d := brokertest.Get(t, target, 5*time.Second); d.MessageId != "1" {
			t.Errorf("imported %s, want 1", d.MessageId)
		}
		if got := brokertest.Depth(t, target); got != 0 {
			t.Errorf("%d messages imported after the bad line", got)
		}
	})
}
