package broker_test

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// nested returns a header table value nested depth tables deep.
func nested(depth int) []byte {
	v := brokertest.FieldTable(brokertest.Field("leaf", 'V', nil))
	for range depth - 1 {
		v = brokertest.FieldTable(brokertest.Field("n", 'F', v))
	}
	return v
}

func int64Field(name string, typ byte, n int64) []byte {
	return brokertest.Field(name, typ, binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// TestForeignHeadersNeverCloseTheConnection: headers that other clients
// write and RabbitMQ passes on, but amqp091-go v1.16.0 could not read (it
// closed the connection, and the supervised connection reconnected for
// ever without handling anything), reach the consumer on both queue types:
//   - py-amqp's 'L' integers (every integer beyond 32 bits) are read as
//     int64, warren-attempt and warren-deadline included;
//   - a table nested beyond what the client reads gives a delivery whose
//     Err wraps ErrMalformedEnvelope and names the header, with every other
//     property read;
//
// and the jobs behind them arrive, on a connection never lost.
func TestForeignHeadersNeverCloseTheConnection(t *testing.T) {
	t.Parallel()
	for _, queueType := range []string{"classic", "quorum"} {
		t.Run(queueType, func(t *testing.T) {
			t.Parallel()
			exchange, queue := setup(t, amqp.Table{"x-queue-type": queueType})
			conn := dial(t)
			ctx := brokertest.Context(t, 60*time.Second)
			deadline := time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()
			stamp := time.Unix(1795514400, 0).UTC()
			props := func(id string, table []byte) brokertest.RawMessage {
				return brokertest.RawMessage{ContentType: broker.ContentType, MessageID: id, Type: "t", AppID: "py-producer",
					Timestamp: stamp, DeliveryMode: 2, Table: table, Body: []byte{0xc0}}
			}
			var table []byte
			for _, f := range [][]byte{
				int64Field(broker.HeaderAttempt, 'L', 2),
				int64Field(broker.HeaderDeadline, 'L', deadline.UnixMilli()),
				int64Field("big", 'L', -1<<40),
				int64Field("also-big", 'l', 1<<40),
			} {
				table = append(table, f...)
			}
			deep := append(brokertest.Field("tenant", 'S', binary.BigEndian.AppendUint32(nil, 4)), "acme"...)
			deep = append(deep, brokertest.Field("deep", 'F', nested(40))...)
			brokertest.PublishFrames(t, exchange, "k", props("long-long", table), props("too-deep", deep), props("after", nil))

			c, err := broker.Consume(ctx, conn, queue)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			next := func(want string) *broker.Delivery {
				t.Helper()
				d, ok := c.Next(ctx)
				if !ok {
					t.Fatalf("no delivery %q: the consumer ended (%v); connection %v after %d reconnects", want, c.Err(), conn.State(), conn.Reconnects())
				}
				if d.Envelope.ID != want {
					t.Fatalf("delivery %q, want %q", d.Envelope.ID, want)
				}
				if err := d.Ack(); err != nil {
					t.Errorf("ack %s: %v", want, err)
				}
				return d
			}

			d := next("long-long")
			if d.Err != nil {
				t.Errorf("'L' headers: %v", d.Err)
			}
			if e := d.Envelope; e.Attempt != 2 || !e.Deadline.Equal(deadline) {
				t.Errorf("attempt %d, deadline %v; want 2, %v", e.Attempt, e.Deadline, deadline)
			}
			if got := d.Envelope.Headers["big"]; got != int64(-1<<40) {
				t.Errorf("header big = %#v, want int64(%d)", got, int64(-1<<40))
			}
			if got := d.Envelope.Headers["also-big"]; got != int64(1<<40) {
				t.Errorf("header also-big = %#v, want int64(%d)", got, int64(1<<40))
			}

			d = next("too-deep")
			if !errors.Is(d.Err, broker.ErrMalformedEnvelope) || !strings.Contains(fmtErr(d.Err), `"deep"`) {
				t.Errorf("a table nested 40 deep: Err %v, want ErrMalformedEnvelope naming the header \"deep\"", d.Err)
			}
			if e := d.Envelope; e.Type != "t" || e.ContentType != broker.ContentType || e.AppID != "py-producer" || !e.Timestamp.Equal(stamp) || len(e.Body) != 1 {
				t.Errorf("the other properties were not all read: %+v", e)
			}

			next("after")
			if n := conn.Reconnects(); n != 0 || conn.State() != broker.Connected {
				t.Errorf("connection %v after %d reconnects, want connected, never lost", conn.State(), n)
			}
		})
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
