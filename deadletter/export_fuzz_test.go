package deadletter_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
)

// FuzzReadRecord feeds the record decoder what an export file may hold
// after any damage or editing: it must never panic, and a record it reads
// must write and read back the same (what is imported is what was read).
func FuzzReadRecord(f *testing.F) {
	var seed bytes.Buffer
	enc := deadletter.NewEncoder(&seed)
	for _, r := range []deadletter.Record{
		{Queue: "q", Body: []byte{}},
		{
			Queue: "emails.dlq", ExportedAt: time.Date(2026, 11, 24, 10, 0, 0, 5, time.UTC), ID: "j1", Type: "email.send", Class: "permanent", Error: "no recipient",
			DeliveryCount: 2,
			Properties: deadletter.Properties{ContentType: "application/msgpack", DeliveryMode: 2, Priority: 3, MessageID: "j1\xff", Type: "email.send",
				Timestamp: time.Unix(1795514400, 0).UTC(), UserID: "guest", AppID: "app", Expiration: "100", CorrelationID: "c", ReplyTo: "r", ContentEncoding: "identity"},
			Headers: broker.Table{
				"b": true, "i8": int8(-1), "u8": uint8(1), "i16": int16(-2), "u16": uint16(2), "i32": int32(-3), "u32": uint32(3), "i64": int64(math.MinInt64),
				"f32": float32(1.5), "f64": math.Inf(-1), "nan": math.NaN(), "d": broker.Decimal{Scale: 1, Value: 5}, "s": "x\xfe", "x": []byte{0},
				"t": time.Unix(-99999999999, 0).UTC(), "v": nil, "a": []any{broker.Table{"k": []any{}}},
			},
			Body: []byte{0xc1, 0xff},
		},
	} {
		if err := enc.Encode(r); err != nil {
			f.Fatal(err)
		}
	}
	f.Add(seed.Bytes())
	for _, s := range []string{
		``,
		"\n\n",
		`{"version":1,"properties":{"timestamp":"-1"},"body":"","headers":{"h":{"t":"timestamp","v":"9999-12-31T23:59:59-05:00"}}}`,
		`{"version":1,"properties":{},"body":"","headers":{"h":{"t":"array","v":[{"t":"array","v":[{"t":"array","v":[]}]}]}}}`,
		`{"version":1,"properties":{"message_id":{"b64":"/w=="}},"body":"AA==","exported_at":"2026-01-01T00:00:00+01:00"}`,
		`{"version":2}`,
		`{"version":1,"body":"","headers":{"h":{"t":"float32","v":3.4028235e+38}}}`,
		// A Unix time in milliseconds, as py-amqp writes it ('L', read as int64).
		`{"version":1,"queue":"q","body":"wA==","headers":{"warren-deadline":{"t":"int64","v":"1795514400123"},"big":{"t":"int64","v":-1099511627776}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dec := deadletter.NewDecoder(bytes.NewReader(b))
		for range 64 {
			r, err := dec.Decode()
			if err != nil {
				var le *deadletter.LineError
				if !errors.Is(err, io.EOF) && !errors.As(err, &le) {
					t.Fatalf("Decode: %v is neither io.EOF nor a *LineError", err)
				}
				return
			}
			line, err := r.MarshalJSON()
			if err != nil {
				t.Fatalf("a record that was read cannot be written: %v\n%#v", err, r)
			}
			var again deadletter.Record
			if err := again.UnmarshalJSON(line); err != nil {
				t.Fatalf("a record written cannot be read: %v\n%s", err, line)
			}
			if diff := cmp.Diff(r, again, cmpopts.EquateNaNs()); diff != "" {
				t.Fatalf("a record read, written and read again differs (-first +second):\n%s\n%s", diff, line)
			}
			if line2, err := again.MarshalJSON(); err != nil || !bytes.Equal(line, line2) {
				t.Fatalf("writing is not stable: %v\n%s\n%s", err, line, line2)
			}
		}
	})
}
