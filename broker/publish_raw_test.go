package broker_test

import (
	"errors"
	"math"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// rawMessage has every property set and headers of every AMQP type, a
// body that is neither MessagePack nor UTF-8, and warren headers of types
// warren itself would not write: nothing a job publish would keep as is.
func rawMessage(t *testing.T) broker.Message {
	u, err := url.Parse(brokertest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	return broker.Message{
		ContentType:     "application/octet-stream",
		ContentEncoding: "gzip",
		DeliveryMode:    amqp.Transient,
		Priority:        4,
		CorrelationID:   "corr-1",
		ReplyTo:         "replies",
		Expiration:      "600000",
		MessageID:       "raw-1",
		Timestamp:       time.Unix(1795514400, 0),
		Type:            "legacy.blob",
		UserID:          u.User.Username(), // the broker refuses any other
		AppID:           "legacy-app",
		Headers: broker.Table{
			"warren-attempt": int32(7),
			"warren-error":   []byte("bytes, not a string"),
			"b":              true,
			"i8":             int8(-8),
			"u8":             uint8(8),
			"i16":            int16(-16),
			"u16":            uint16(16),
			"i32":            int32(-32),
			"u32":            uint32(32),
			"i64":            int64(math.MaxInt64),
			"f32":            float32(1.25),
			"f64":            math.Pi,
			"dec":            broker.Decimal{Scale: 3, Value: 31415},
			"s":              "text",
			"x":              []byte{0, 0xff},
			"t":              time.Unix(1700000000, 0),
			"v":              nil,
			"tbl":            broker.Table{"nested": []any{int16(1), "two", broker.Table{}}},
		},
		Body: []byte{0xc1, 0x00, 0xff, 0xfe, '\n'},
	}
}

func TestPublishMessageAndNextRawKeepTheMessageExactly(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, amqp.Table{"x-max-priority": int32(5)})
	p := newSender(t, conn, broker.WithAppID("must-not-be-set"))
	ctx := brokertest.Context(t, 10*time.Second)

	msg := rawMessage(t)
	if err := p.PublishMessage(ctx, exchange, "k", msg); err != nil {
		t.Fatalf("PublishMessage: %v", err)
	}
	c, err := broker.Consume(ctx, conn, queue)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	d, got, ok := c.NextRaw(ctx)
	if !ok {
		t.Fatal("NextRaw: nothing delivered")
	}
	if diff := cmp.Diff(msg, got); diff != "" {
		t.Errorf("message delivered differs from the one published (-published +delivered):\n%s", diff)
	}
	if d.Envelope.ID != "raw-1" || d.Err == nil {
		t.Errorf("delivery: id %q, err %v; want raw-1 read as a malformed job", d.Envelope.ID, d.Err)
	}
	if err := d.Ack(); err != nil {
		t.Errorf("Ack of a delivery from NextRaw: %v", err)
	}
}

func TestPublishMessageFailures(t *testing.T) {
	conn := dial(t)
	p := newSender(t, conn)
	ctx := brokertest.Context(t, 10*time.Second)
	msg := broker.Message{MessageID: "lost-1", Type: "x", Body: []byte("b")}

	missing := brokertest.Name(t, "missing")
	err := p.PublishMessage(ctx, "", missing, msg)
	var pe *broker.PublishError
	if !errors.Is(err, broker.ErrUnroutable) || !errors.As(err, &pe) || pe.JobID != "lost-1" || pe.RoutingKey != missing {
		t.Errorf("to a queue that does not exist: %v, want a *PublishError for lost-1 wrapping ErrUnroutable", err)
	}
	if err := p.PublishMessage(ctx, missing, "k", msg); !errors.Is(err, broker.ErrNoExchange) {
		t.Errorf("to an exchange that does not exist: %v, want ErrNoExchange", err)
	}
	// The publisher is still usable.
	_, queue := setup(t, nil)
	if err := p.PublishMessage(ctx, "", queue, msg); err != nil {
		t.Errorf("PublishMessage after failures: %v", err)
	}
}
