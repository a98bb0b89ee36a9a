package broker

import (
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/brokertest"
)

// everyType is a header table with a value of each type amqp091-go
// writes, nested tables and arrays included.
func everyType() amqp.Table {
	return amqp.Table{
		"nil": nil, "bool": true, "byte": byte(7), "int8": int8(-3), "int16": int16(-300), "uint16": uint16(300),
		"int": 70000, "int32": int32(-70000), "uint32": uint32(70000), "float32": float32(1.5),
		"int64": int64(1) << 40, "float64": 2.25, "time": time.Unix(1795514400, 0), "decimal": amqp.Decimal{Scale: 2, Value: 1234},
		"string": "héllo", "bytes": []byte{0, 1, 2},
		"array": []any{"a", int64(1), []any{true, nil}, amqp.Table{"k": "v"}},
		"table": amqp.Table{"inner": amqp.Table{"x": int32(1)}, "s": "t"},
	}
}

// frameFudge is how far past the spec's limit RabbitMQ still accepts a
// frame (its FRAME_SIZE_FUDGE, for old clients). warren keeps to the spec.
const frameFudge = 8

// TestContentHeaderSizeMatchesTheBroker pads a message with every header
// type to the largest content header the broker accepts (the limit plus
// its fudge), then one byte more: the first is accepted, the second makes
// the broker close the connection. So contentHeaderSize counts as the
// broker does, byte for byte; and checkFrame refuses both, as everything
// past the spec's limit.
func TestContentHeaderSizeMatchesTheBroker(t *testing.T) {
	t.Parallel()
	for _, over := range []int{frameFudge, frameFudge + 1} {
		conn := brokertest.Conn(t)
		closes := conn.NotifyClose(make(chan *amqp.Error, 1))
		limit := conn.Config.FrameSize - frameOverhead
		msg := amqp.Publishing{
			ContentType: ContentType, ContentEncoding: "identity", DeliveryMode: amqp.Persistent, Priority: 3,
			CorrelationId: "c", ReplyTo: "r", Expiration: "60000", MessageId: "m", Timestamp: time.Now(),
			Type: "t", AppId: "a", Headers: everyType(), Body: []byte{0xc0},
		}
		msg.Headers["pad"] = ""
		n, err := contentHeaderSize(&msg)
		if err != nil {
			t.Fatal(err)
		}
		msg.Headers["pad"] = strings.Repeat("p", limit-n+over)
		if n, _ := contentHeaderSize(&msg); n != limit+over {
			t.Fatalf("padded to %d bytes, want %d", n, limit+over)
		}
		if err := checkFrame(&msg, conn.Config.FrameSize, "m"); !errors.Is(err, ErrHeadersTooLarge) {
			t.Errorf("%d bytes over the limit: checkFrame says %v, want ErrHeadersTooLarge", over, err)
		}
		msg.Headers["pad"] = strings.Repeat("p", limit-n)
		if err := checkFrame(&msg, conn.Config.FrameSize, "m"); err != nil {
			t.Errorf("at the limit: checkFrame says %v", err)
		}
		msg.Headers["pad"] = strings.Repeat("p", limit-n+over)

		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		// Unroutable and not mandatory: the broker drops it, if it reads it.
		// A broker that refuses the header frame may do so as soon as it has
		// read the frame's size, and close the connection while the client
		// is still writing the rest: then Publish itself fails, and the
		// verdict is the close's code below.
		if err := ch.Publish("", brokertest.Name(t, "nowhere"), false, false, msg); err != nil && over <= frameFudge {
			t.Fatal(err)
		}
		// A synchronous call answers once the broker has read the publish.
		serr := ch.ExchangeDeclarePassive("amq.direct", amqp.ExchangeDirect, true, false, false, false, nil)
		if over <= frameFudge {
			if serr != nil {
				t.Errorf("%d bytes over the spec's limit: the broker refused it (%v): contentHeaderSize undercounts", over, serr)
			}
			continue
		}
		select {
		case cerr := <-closes:
			if cerr == nil || cerr.Code != amqp.FrameError {
				t.Errorf("%d bytes over the spec's limit: closed with %v, want a frame error", over, cerr)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%d bytes over the spec's limit: the broker accepted it (%v): contentHeaderSize overcounts", over, serr)
		}
	}
}

func TestCheckFrameRefusesWhatCannotBeEncoded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 256)
	for name, msg := range map[string]amqp.Publishing{
		"long message id":  {MessageId: long},
		"long header name": {Headers: amqp.Table{long: "v"}},
		"unknown type":     {Headers: amqp.Table{"k": struct{}{}}},
		"nested unknown":   {Headers: amqp.Table{"k": []any{amqp.Table{"j": uint64(1)}}}},
		"too deep":         {Headers: amqp.Table{"k": deep(maxHeaderDepth + 1)}},
		"too large":        {Headers: amqp.Table{"k": strings.Repeat("x", defaultFrameMax)}},
	} {
		err := checkFrame(&msg, 0, "id")
		if !errors.Is(err, ErrInvalidJob) {
			t.Errorf("%s: %v, want ErrInvalidJob", name, err)
		}
		if name == "too large" && !errors.Is(err, ErrHeadersTooLarge) {
			t.Errorf("%s: %v, want ErrHeadersTooLarge", name, err)
		}
	}
	ok := amqp.Publishing{MessageId: strings.Repeat("x", 255), Headers: everyType()}
	if err := checkFrame(&ok, minFrameMax, "id"); err != nil {
		t.Errorf("a message that fits: %v", err)
	}
}

func deep(n int) any {
	var v any = "leaf"
	for range n {
		v = []any{v}
	}
	return v
}
