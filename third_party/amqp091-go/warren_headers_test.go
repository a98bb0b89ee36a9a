// Tests of warren's patch (WARREN-PATCH.md): every field type RabbitMQ
// reads is read, and written back as RabbitMQ reads it; a header table that
// still cannot be read is skipped, and the message delivered, rather than
// the connection closed.

package amqp091

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// rabbitTypes are the field type octets RabbitMQ's table parser reads
// (rabbit_binary_parser: S T b B s u I i d f l L t D F A x V).
const rabbitTypes = "STbBsuIidflLtDFAxV"

func be16(n uint16) []byte { return binary.BigEndian.AppendUint16(nil, n) }
func be32(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
func be64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// entry encodes a table entry: name, type octet, value.
func entry(name string, typ byte, value []byte) []byte {
	return cat([]byte{byte(len(name))}, []byte(name), []byte{typ}, value)
}

// withLen prefixes b with its 32-bit length.
func withLen(b []byte) []byte { return cat(be32(uint32(len(b))), b) }

func TestReadFieldEveryTypeRabbitMQReads(t *testing.T) {
	cases := []struct {
		typ   byte
		value []byte
		want  any
	}{
		{'S', withLen([]byte("abc")), "abc"},
		{'T', be64(1795514400), time.Unix(1795514400, 0)},
		{'b', []byte{0xff}, int8(-1)},
		{'B', []byte{0xff}, uint8(255)},
		{'s', be16(0xfffe), int16(-2)},
		{'u', be16(0xfffe), uint16(65534)},
		{'I', be32(0xfffffffd), int32(-3)},
		{'i', be32(0xfffffffd), uint32(4294967293)},
		{'d', be64(math.Float64bits(1.5)), 1.5},
		{'f', be32(math.Float32bits(2.5)), float32(2.5)},
		{'l', be64(uint64(1) << 40), int64(1) << 40},
		// py-amqp writes every integer beyond 32 bits as 'L'; RabbitMQ
		// reads it as a signed 64-bit integer, as 'l'.
		{'L', be64(uint64(1795514400123)), int64(1795514400123)},
		{'L', be64(math.MaxUint64 - 4), int64(-5)},
		{'t', []byte{1}, true},
		{'D', cat([]byte{2}, be32(12345)), Decimal{Scale: 2, Value: 12345}},
		{'F', withLen(entry("k", 'V', nil)), Table{"k": nil}},
		{'A', withLen(cat([]byte{'L'}, be64(7))), []any{int64(7)}},
		{'x', withLen([]byte{0, 1}), []byte{0, 1}},
		{'V', nil, nil},
	}
	for _, c := range cases {
		t.Run(string(c.typ), func(t *testing.T) {
			got, err := readField(bytes.NewReader(cat([]byte{c.typ}, c.value)))
			if err != nil {
				t.Fatalf("readField: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("read %#v (%T), want %#v (%T)", got, got, c.want, c.want)
			}
		})
	}
}

// TestEveryFieldReadIsWrittenBack: whatever the reader gives, for any type
// octet, the writer writes with a type RabbitMQ reads, and it reads back
// the same. (warren republishes the headers it read on every retry and
// dead letter: a value read but not writable would fail each of them.)
func TestEveryFieldReadIsWrittenBack(t *testing.T) {
	// A value for each type: enough bytes for any fixed-size type, and
	// valid content for the variable-size ones.
	values := map[byte][]byte{
		'S': withLen([]byte("s")),
		'x': withLen([]byte{1}),
		'F': withLen(cat(entry("a", 'L', be64(9)), entry("b", 'A', withLen([]byte{'t', 1})))),
		'A': withLen(cat([]byte{'F'}, withLen(entry("c", 'L', be64(math.MaxUint64))))),
		'D': cat([]byte{1}, be32(5)),
	}
	read := 0
	for typ := 0; typ < 256; typ++ {
		v, ok := values[byte(typ)]
		if !ok {
			v = be64(0x4000000000000001) // 8 bytes: any fixed-size type
		}
		got, err := readField(bytes.NewReader(cat([]byte{byte(typ)}, v)))
		if err != nil {
			if strings.IndexByte(rabbitTypes, byte(typ)) >= 0 {
				t.Errorf("type %q: RabbitMQ reads it, readField: %v", typ, err)
			}
			continue
		}
		read++
		var buf bytes.Buffer
		if err := writeField(&buf, got); err != nil {
			t.Errorf("type %q read as %T, which writeField refuses: %v", typ, got, err)
			continue
		}
		if strings.IndexByte(rabbitTypes, buf.Bytes()[0]) < 0 {
			t.Errorf("type %q read as %T, written as type %q, which RabbitMQ does not read", typ, got, buf.Bytes()[0])
		}
		again, err := readField(&buf)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("type %q: read %#v, written and read again %#v (%v)", typ, got, again, err)
		}
	}
	if read != len(rabbitTypes) {
		t.Errorf("%d types read, want the %d RabbitMQ reads", read, len(rabbitTypes))
	}
}

// rawHeaderFrame builds a content header frame (channel 1, a body of 3 bytes)
// with every property set, and headers as given (the table's content,
// without its length).
func rawHeaderFrame(headers []byte, tableLen int) []byte {
	props := cat(
		[]byte{byte(len("application/msgpack"))}, []byte("application/msgpack"),
		[]byte{byte(len("identity"))}, []byte("identity"),
		be32(uint32(tableLen)), headers,
		[]byte{2}, // delivery mode
		[]byte{5}, // priority
		[]byte{4}, []byte("corr"),
		[]byte{5}, []byte("reply"),
		[]byte{4}, []byte("6000"),
		[]byte{2}, []byte("m1"),
		be64(1795514400),
		[]byte{4}, []byte("type"),
		[]byte{5}, []byte("guest"),
		[]byte{3}, []byte("app"),
	)
	payload := cat(be16(60), be16(0), be64(3), be16(0xfff8), props)
	return cat([]byte{frameHeader}, be16(1), be32(uint32(len(payload))), payload, []byte{frameEnd})
}

// wantProperties are the properties of rawHeaderFrame but the headers.
var wantProperties = properties{
	ContentType: "application/msgpack", ContentEncoding: "identity", DeliveryMode: 2, Priority: 5,
	CorrelationId: "corr", ReplyTo: "reply", Expiration: "6000", MessageId: "m1",
	Timestamp: time.Unix(1795514400, 0), Type: "type", UserId: "guest", AppId: "app",
}

// nestedTables is the value of a table nested n deep.
func nestedTables(n int) []byte {
	v := withLen(entry("leaf", 'V', nil))
	for i := 1; i < n; i++ {
		v = withLen(entry("n", 'F', v))
	}
	return v
}

// TestHeaderFrameSkipsATableItCannotRead: a content header whose table
// cannot be read (a type no one reads, nesting or size beyond this
// client's limits, which RabbitMQ does not have) is read all the same:
// the table skipped, every other property read, and a *HeadersError that
// names the header and the type, with the table's bytes.
func TestHeaderFrameSkipsATableItCannotRead(t *testing.T) {
	many := make([]byte, 0, 4*(maxContainerElements+1))
	for i := 0; i <= maxContainerElements; i++ {
		many = append(many, entry(string(rune('a'+i%26))+string(be16(uint16(i))), 'V', nil)...)
	}
	cases := []struct {
		name    string
		table   []byte
		key     string
		typ     byte
		message string // in the error's text
	}{
		{"an unknown type", cat(entry("ok", 'I', be32(1)), entry("bad", 'Z', be32(1)), entry("after", 'V', nil)),
			"bad", 'Z', `header "bad": field type 'Z' (0x5a) is not an AMQP 0-9-1 field type RabbitMQ reads`},
		{"an unknown type in a nested table", cat(entry("outer", 'A', withLen(cat([]byte{'F'}, withLen(entry("inner", 'U', be16(1))))))),
			"outer", 'U', `header "outer": field type 'U' (0x55)`},
		{"tables nested 40 deep", entry("deep", 'F', nestedTables(40)),
			"deep", 'F', `header "deep": tables and arrays nested more than 32 deep`},
		{"more entries than the client reads", many,
			"", 0, "more than 8192 entries"},
		{"a value cut short", cat(entry("ok", 'V', nil), []byte{3}, []byte("cut"), []byte{'l', 0, 0}),
			"cut", 'l', `header "cut": its value is cut short`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			frame := rawHeaderFrame(c.table, len(c.table))
			r := reader{r: bytes.NewReader(append(frame, rawHeaderFrame(nil, 0)...))}
			f, err := r.ReadFrame()
			if err != nil {
				t.Fatalf("ReadFrame: %v; the connection would close", err)
			}
			hf := f.(*headerFrame)
			props := hf.Properties
			herr := props.headersErr
			props.headersErr = nil
			if !reflect.DeepEqual(props, wantProperties) {
				t.Errorf("properties %+v, want %+v", props, wantProperties)
			}
			if herr == nil {
				t.Fatal("no HeadersError")
			}
			if herr.Key != c.key || herr.Type != c.typ || !strings.Contains(herr.Error(), c.message) {
				t.Errorf("HeadersError key %q type %q %q; want key %q type %q, text containing %q", herr.Key, herr.Type, herr.Error(), c.key, c.typ, c.message)
			}
			if !bytes.Equal(herr.Raw, c.table) {
				t.Error("Raw is not the table's bytes")
			}
			if !errors.Is(herr, ErrSyntax) {
				t.Errorf("%v does not wrap ErrSyntax", herr)
			}
			// The stream is where the next frame starts.
			next, err := r.ReadFrame()
			if err != nil || next.(*headerFrame).Properties.MessageId != "m1" {
				t.Fatalf("the frame after: %v", err)
			}
		})
	}

	t.Run("a table that claims more than the frame holds", func(t *testing.T) {
		frame := rawHeaderFrame(entry("k", 'V', nil), 1<<20)
		if _, err := (&reader{r: bytes.NewReader(frame)}).ReadFrame(); err == nil {
			t.Fatal("ReadFrame read a frame whose table runs past its end")
		}
	})
	t.Run("a table that can be read", func(t *testing.T) {
		table := cat(entry("warren-deadline", 'L', be64(1795514400123)), entry("n", 'F', nestedTables(32)))
		f, err := (&reader{r: bytes.NewReader(rawHeaderFrame(table, len(table)))}).ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		p := f.(*headerFrame).Properties
		if p.headersErr != nil || p.Headers["warren-deadline"] != int64(1795514400123) {
			t.Errorf("headers %v, error %v", p.Headers, p.headersErr)
		}
	})
}

// TestDeliveryWithUnreadableHeaders: a consumer receives a message whose
// headers cannot be read, with Delivery.HeadersErr set, then the next one,
// and the connection stays open.
func TestDeliveryWithUnreadableHeaders(t *testing.T) {
	const tag = "consumer-tag"
	rwc, srv := newSession(t)
	defer rwc.Close()
	bad := entry("bad", 'Z', nil)

	go func() {
		srv.connectionOpen()
		srv.channelOpen(1)
		srv.recv(1, &basicConsume{})
		srv.send(1, &basicConsumeOk{ConsumerTag: tag})

		if err := srv.w.WriteFrame(&methodFrame{ChannelId: 1, Method: &basicDeliver{ConsumerTag: tag, DeliveryTag: 1}}); err != nil {
			t.Errorf("write: %v", err)
		}
		if _, err := srv.S.Write(rawHeaderFrame(bad, len(bad))); err != nil {
			t.Errorf("write: %v", err)
		}
		if err := srv.w.WriteFrame(&bodyFrame{ChannelId: 1, Body: []byte("abc")}); err != nil {
			t.Errorf("write: %v", err)
		}
		srv.send(1, &basicDeliver{ConsumerTag: tag, DeliveryTag: 2, Properties: properties{MessageId: "m2"}, Body: []byte("x")})

		srv.recv(0, &connectionClose{})
		srv.send(0, &connectionCloseOk{})
		srv.C.Close()
	}()

	c, err := Open(rwc, defaultConfig())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ch, err := c.Channel()
	if err != nil {
		t.Fatalf("Channel: %v", err)
	}
	deliveries, err := ch.Consume("q", tag, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	d := <-deliveries
	if d.HeadersErr == nil || d.HeadersErr.Key != "bad" || d.Headers != nil {
		t.Errorf("HeadersErr %v, headers %v; want the header %q named, no headers", d.HeadersErr, d.Headers, "bad")
	}
	if d.MessageId != "m1" || d.AppId != "app" || string(d.Body) != "abc" || d.DeliveryTag != 1 {
		t.Errorf("delivery %+v: properties or body not read", d)
	}
	if d2 := <-deliveries; d2.MessageId != "m2" || d2.HeadersErr != nil {
		t.Errorf("the next delivery: %+v", d2)
	}
	if c.IsClosed() {
		t.Error("the connection closed")
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestReturnWithUnreadableHeaders(t *testing.T) {
	herr := &HeadersError{Key: "bad", Type: 'Z', Err: ErrSyntax}
	r := newReturn(basicReturn{ReplyCode: 312, Properties: properties{MessageId: "m", headersErr: herr}})
	if r.HeadersErr != herr || r.MessageId != "m" {
		t.Errorf("Return %+v", r)
	}
}

// FuzzReadHeaders: any table content is read or skipped without a panic,
// the reader left after the table, and a table skipped is one readTable
// refuses.
func FuzzReadHeaders(f *testing.F) {
	f.Add(entry("k", 'L', be64(1)))
	f.Add(entry("k", 'Z', nil))
	f.Add(entry("deep", 'F', nestedTables(34)))
	f.Add(cat(entry("a", 'A', withLen(cat([]byte{'F'}, withLen(entry("b", 'x', be32(0x80000000))))))))
	f.Fuzz(func(t *testing.T, table []byte) {
		in := bytes.NewReader(cat(withLen(table), []byte("rest")))
		h, herr, err := readHeaders(in)
		if err != nil {
			t.Fatalf("readHeaders failed on a whole table: %v", err)
		}
		if rest, _ := io.ReadAll(in); string(rest) != "rest" {
			t.Fatalf("the reader is not after the table: %q left", rest)
		}
		_, rerr := readTable(bytes.NewReader(withLen(table)))
		switch {
		case (rerr == nil) != (herr == nil):
			t.Fatalf("readTable: %v; readHeaders skipped the table: %v", rerr, herr)
		case herr != nil && (h != nil || !bytes.Equal(herr.Raw, table) || herr.reason == ""):
			t.Fatalf("skipped table: headers %v, raw kept %v, reason %q", h, bytes.Equal(herr.Raw, table), herr.reason)
		}
	})
}
