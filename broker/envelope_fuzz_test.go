package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"
)

var fuzzHeaderNames = []string{
	HeaderAttempt, HeaderError, HeaderErrorClass, HeaderFirstFailedAt, HeaderFailedAt,
	HeaderOriginExchange, HeaderOriginRoutingKey, HeaderOriginQueue, HeaderReplayCount,
	HeaderWorkerHost, HeaderTraceparent, HeaderTracestate,
	"tenant", "x-death", "warren-future", "",
	// 16 on: CloudEvents attributes, read when the id or type is missing.
	"cloudEvents_specversion", "cloudEvents_id", "cloudEvents_type", "cloudEvents_time", "cloudEvents_source",
	"cloudEvents:specversion", "cloudEvents:type", "cloudEvents_tenant",
	HeaderVersion,
}

// fuzzHeaders interprets b as a list of headers: a name byte, a type byte,
// then the value's bytes.
func fuzzHeaders(b []byte) amqp.Table {
	take := func(n int) []byte {
		var out [8]byte
		n = copy(out[:n], b)
		b = b[n:]
		return out[:]
	}
	t := amqp.Table{}
	for len(b) >= 2 {
		name := fuzzHeaderNames[int(b[0])%len(fuzzHeaderNames)]
		kind := b[1] % 17
		b = b[2:]
		var v any
		switch kind {
		case 0:
			v = int8(take(1)[0])
		case 1:
			v = int16(binary.BigEndian.Uint16(take(2)))
		case 2:
			v = int32(binary.BigEndian.Uint32(take(4)))
		case 3:
			v = int64(binary.BigEndian.Uint64(take(8)))
		case 4:
			v = take(1)[0]
		case 5:
			v = binary.BigEndian.Uint16(take(2))
		case 6:
			v = binary.BigEndian.Uint32(take(4))
		case 7:
			v = math.Float64frombits(binary.BigEndian.Uint64(take(8)))
		case 8:
			v = float64(int8(take(1)[0])) // integral doubles
		case 9, 10:
			n := min(int(take(1)[0]), len(b))
			s := string(b[:n])
			b = b[n:]
			if kind == 9 {
				v = s
			} else {
				v = []byte(s)
			}
		case 11:
			v = take(1)[0]&1 == 1
		case 12:
			v = nil
		case 13:
			v = time.Unix(int64(binary.BigEndian.Uint32(take(4))), 0)
		case 14:
			v = []any{"a", int64(1)}
		case 15:
			v = amqp.Table{"k": "v"}
		case 16: // an RFC 3339 time, perhaps with a fraction and an offset
			p := take(8)
			v = fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d%s%s",
				int(binary.BigEndian.Uint16(p))%10000, 1+p[2]%12, 1+p[3]%28, p[4]%24, p[5]%60, p[6]%60,
				[]string{"", ".5", ".123", ".123456789"}[p[7]%4], []string{"Z", "+01:00", "-01:00", "+23:59"}[p[7]>>2%4])
		}
		t[name] = v
	}
	return t
}

// FuzzFromDelivery: no input makes FromDelivery panic; its errors wrap its
// sentinels; an envelope it accepts survives Publishing and FromDelivery
// again unchanged, but for the content type, the millisecond precision of
// failure times and the length of the error text.
func FuzzFromDelivery(f *testing.F) {
	f.Add(ContentType, "t", []byte{0, 3, 0, 0, 0, 0, 0, 0, 0, 3}, []byte{0xc0})
	f.Add("application/x-msgpack; charset=binary", "email.send", []byte{4, 9, 24, '2', '0', '2', '6', '-', '1', '1', '-', '2', '4', 'T', '1', '0', ':', '0', '0', ':', '3', '5', '.', '1', '2', '5', 'Z'}, []byte{0x91, 0xc0})
	f.Add("application/json", "", []byte{}, []byte{})
	f.Add(ContentType, "t", append([]byte{4, 9, 25}, "0000-01-01T00:30:00+01:00"...), []byte{0xc0})
	f.Add(ContentType, "t", []byte{3, 16, 0, 0, 1, 1, 0, 30, 0, 4}, []byte{0xc0})
	f.Add(ContentType, "t", []byte{1, 10, 3, 'b', 'a', 'd', 8, 4, 255, 0, 3}, []byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	// A CloudEvent from CloudEvents tooling: no type property (and so no
	// id or timestamp either), its attributes in the headers.
	ce := func(name byte, v string) []byte { return append([]byte{name, 9, byte(len(v))}, v...) }
	f.Add(ContentType, "", slices.Concat(ce(16, "1.0"), ce(17, "evt-1"), ce(18, "order.placed"), ce(19, "2026-11-24T10:00:00.250+01:00"), ce(20, "/shop")), []byte{0xc0})
	f.Add(ContentType, "", slices.Concat(ce(21, "1.0"), ce(22, "order.placed"), []byte{19, 13, 0, 0, 0, 0}), []byte{0xc0})
	for i, s := range fuzzSeeds(f) {
		f.Add(ContentType, "t", []byte{byte(i), byte(i)}, s)
	}
	f.Fuzz(func(t *testing.T, contentType, typ string, headers, body []byte) {
		d := &amqp.Delivery{
			ContentType: contentType, MessageId: "id", Type: typ, Timestamp: time.Unix(1795514400, 0),
			Headers: fuzzHeaders(headers), Body: body,
		}
		if typ == "" {
			// As CloudEvents tooling may publish: no property names the
			// job, its attributes may.
			d.MessageId, d.Timestamp = "", time.Time{}
		}
		env, err := FromDelivery(d)
		if err != nil {
			if !errors.Is(err, ErrUnsupportedContentType) && !errors.Is(err, ErrMissingType) && !errors.Is(err, ErrMalformedEnvelope) {
				t.Fatalf("FromDelivery error wraps no sentinel: %v", err)
			}
			return
		}
		got, err := FromDelivery(deliveryOf(env.Publishing()))
		if err != nil {
			t.Fatalf("FromDelivery rejects what Publishing wrote: %v", err)
		}
		want := *env
		want.ContentType = ContentType
		if h := withoutBrokerHeaders(env.Headers); len(h) == 0 {
			want.Headers = nil // the broker's own headers are never published again
		} else {
			want.Headers = h
		}
		if f := env.Failure; f != nil {
			wf := *f
			wf.Error = truncateUTF8(f.Error, MaxErrorHeader)
			wf.FirstFailedAt = f.FirstFailedAt.Truncate(time.Millisecond)
			wf.FailedAt = f.FailedAt.Truncate(time.Millisecond)
			want.Failure = &wf
		}
		if diff := cmp.Diff(&want, got); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
		ce, ok := CloudEventOf(env)
		ce2, ok2 := CloudEventOf(got)
		if ok != ok2 || !cmp.Equal(ce, ce2) {
			t.Fatalf("CloudEventOf changed on the way: %+v, %v; then %+v, %v", ce, ok, ce2, ok2)
		}
		var v any
		_ = env.Decode(&v)
	})
}
