package amqpmem_test

import (
	"context"
	"net"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/warrenmq/warren/internal/amqpmem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dial connects a plain amqp091-go client to b.
func dial(t *testing.T, b *amqpmem.Broker) *amqp.Connection {
	t.Helper()
	c, err := amqp.DialConfig("amqp://guest:guest@amqpmem/", amqp.Config{
		Dial: func(network, addr string) (net.Conn, error) { return b.Dial(context.Background(), network, addr) },
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newBroker(t *testing.T) *amqpmem.Broker {
	b := amqpmem.New()
	t.Cleanup(func() { b.Close() })
	return b
}

func channel(t *testing.T, c *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := c.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return ch
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, ds <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case d, ok := <-ds:
		if !ok {
			t.Fatal("deliveries closed")
		}
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery within 5s")
	}
	panic("unreachable")
}

func none(t *testing.T, ds <-chan amqp.Delivery) {
	t.Helper()
	select {
	case d := <-ds:
		t.Fatalf("unexpected delivery %q", d.Body)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestPublishConfirmConsumeAck(t *testing.T) {
	b := newBroker(t)
	ch := channel(t, dial(t, b))
	_, err := ch.QueueDeclare("q", true, false, false, false, nil)
	must(t, err)
	must(t, ch.Confirm(false))
	conf, err := ch.PublishWithDeferredConfirm("", "q", true, false, amqp.Publishing{MessageId: "1", Body: []byte("hello")})
	must(t, err)
	if ok, err := conf.WaitContext(context.Background()); err != nil || !ok {
		t.Fatalf("confirm: %v %v", ok, err)
	}
	q, err := ch.QueueDeclarePassive("q", true, false, false, false, nil)
	must(t, err)
	if q.Messages != 1 {
		t.Fatalf("passive declare: %d messages, want 1", q.Messages)
	}
	ds, err := ch.Consume("q", "", false, false, false, false, nil)
	must(t, err)
	d := recv(t, ds)
	if string(d.Body) != "hello" || d.MessageId != "1" || d.Redelivered {
		t.Fatalf("got %+v", d)
	}
	must(t, d.Ack(false))
	none(t, ds)
}

func TestNackRequeueRedelivers(t *testing.T) {
	b := newBroker(t)
	ch := channel(t, dial(t, b))
	_, err := ch.QueueDeclare("q", false, false, false, false, nil)
	must(t, err)
	must(t, ch.Publish("", "q", false, false, amqp.Publishing{Body: []byte("a")}))
	ds, err := ch.Consume("q", "", false, false, false, false, nil)
	must(t, err)
	d := recv(t, ds)
	must(t, d.Nack(false, true))
	d = recv(t, ds)
	if !d.Redelivered || string(d.Body) != "a" {
		t.Fatalf("got %+v, want a redelivered", d)
	}
	must(t, d.Reject(false)) // no dead-letter exchange: dropped
	none(t, ds)
	q, err := ch.QueueDeclarePassive("q", false, false, false, false, nil)
	must(t, err)
	if q.Messages != 0 {
		t.Fatalf("%d messages left", q.Messages)
	}
}

func TestUnroutableMandatoryIsReturnedThenAcked(t *testing.T) {
	b := newBroker(t)
	ch := channel(t, dial(t, b))
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	must(t, ch.Confirm(false))
	conf, err := ch.PublishWithDeferredConfirm("", "nowhere", true, false, amqp.Publishing{Body: []byte("x")})
	must(t, err)
	select {
	case r := <-returns:
		if r.ReplyCode != 312 || r.RoutingKey != "nowhere" {
			t.Fatalf("return %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no return")
	}
	if ok, err := conf.WaitContext(context.Background()); err != nil || !ok {
		t.Fatalf("confirm: %v %v", ok, err)
	}
}

func TestPrefetchAndChannelCloseRequeues(t *testing.T) {
	b := newBroker(t)
	c := dial(t, b)
	ch := channel(t, c)
	_, err := ch.QueueDeclare("q", false, false, false, false, nil)
	must(t, err)
	for _, s := range []string{"1", "2", "3"} {
		must(t, ch.Publish("", "q", false, false, amqp.Publishing{Body: []byte(s)}))
	}
	cons := channel(t, c)
	must(t, cons.Qos(2, 0, false))
	ds, err := cons.Consume("q", "", false, false, false, false, nil)
	must(t, err)
	recv(t, ds)
	recv(t, ds)
	none(t, ds) // prefetch 2
	must(t, cons.Close())
	cons = channel(t, c)
	ds, err = cons.Consume("q", "", false, false, false, false, nil)
	must(t, err)
	for _, want := range []string{"1", "2", "3"} {
		d := recv(t, ds)
		if string(d.Body) != want || d.Redelivered != (want != "3") {
			t.Fatalf("got %q redelivered=%v, want %q", d.Body, d.Redelivered, want)
		}
		must(t, d.Ack(false))
	}
}

func TestPassiveDeclareOfMissingQueueClosesChannel(t *testing.T) {
	b := newBroker(t)
	ch := channel(t, dial(t, b))
	_, err := ch.QueueDeclarePassive("missing", false, false, false, false, nil)
	var ae *amqp.Error
	if err == nil || !asAMQP(err, &ae) || ae.Code != 404 {
		t.Fatalf("got %v, want 404", err)
	}
}

func asAMQP(err error, target **amqp.Error) bool {
	e, ok := err.(*amqp.Error)
	if ok {
		*target = e
	}
	return ok
}

func TestTTLDeadLettersOnTheVirtualClock(t *testing.T) {
	b := newBroker(t)
	ch := channel(t, dial(t, b))
	must(t, ch.ExchangeDeclare("dlx", "direct", true, false, false, false, nil))
	_, err := ch.QueueDeclare("dead", true, false, false, false, nil)
	must(t, err)
	must(t, ch.QueueBind("dead", "work", "dlx", false, nil))
	_, err = ch.QueueDeclare("wait", true, false, false, false, amqp.Table{
		"x-message-ttl": int32(2000), "x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "work"})
	must(t, err)
	must(t, ch.Publish("", "wait", false, false, amqp.Publishing{Body: []byte("x"), Expiration: "60000"}))
	ds, err := ch.Consume("dead", "", false, false, false, false, nil)
	must(t, err)
	b.Advance(1999 * time.Millisecond)
	none(t, ds)
	if at, ok := b.NextExpiry(); !ok || !at.Equal(amqpmem.Epoch.Add(2*time.Second)) {
		t.Fatalf("next expiry %v %v", at, ok)
	}
	b.Advance(time.Millisecond)
	d := recv(t, ds)
	deaths, _ := d.Headers["x-death"].([]any)
	if len(deaths) != 1 {
		t.Fatalf("x-death %v", d.Headers)
	}
	death := deaths[0].(amqp.Table)
	if death["reason"] != "expired" || death["queue"] != "wait" || death["count"] != int64(1) || d.Headers["x-first-death-reason"] != "expired" {
		t.Fatalf("x-death %v", death)
	}
	if d.Expiration != "" || death["original-expiration"] != "60000" {
		t.Fatalf("expiration %q, original %v", d.Expiration, death["original-expiration"])
	}
}

func TestQuorumDeliveryLimit(t *testing.T) {
	b := newBroker(t)
	ch := channel(t, dial(t, b))
	_, err := ch.QueueDeclare("dead", true, false, false, false, nil)
	must(t, err)
	_, err = ch.QueueDeclare("q", true, false, false, false, amqp.Table{
		"x-queue-type": "quorum", "x-delivery-limit": int64(1), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"})
	must(t, err)
	must(t, ch.Publish("", "q", false, false, amqp.Publishing{Body: []byte("x")}))
	ds, err := ch.Consume("q", "", false, false, false, false, nil)
	must(t, err)
	must(t, recv(t, ds).Nack(false, true))
	d := recv(t, ds)
	if d.Headers["x-delivery-count"] != int64(1) {
		t.Fatalf("x-delivery-count %v", d.Headers)
	}
	must(t, d.Nack(false, true))
	none(t, ds)
	got, ok, err := ch.Get("dead", true)
	must(t, err)
	if !ok {
		t.Fatal("nothing dead-lettered")
	}
	deaths, _ := got.Headers["x-death"].([]any)
	if len(deaths) != 1 || deaths[0].(amqp.Table)["reason"] != "delivery_limit" {
		t.Fatalf("headers %v", got.Headers)
	}
}

func TestDirectReplyTo(t *testing.T) {
	b := newBroker(t)
	c := dial(t, b)
	client := channel(t, c)
	server := channel(t, c)
	_, err := server.QueueDeclare("rpc", false, false, true, false, nil)
	must(t, err)
	replies, err := client.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
	must(t, err)
	must(t, client.Publish("", "rpc", false, false, amqp.Publishing{ReplyTo: "amq.rabbitmq.reply-to", CorrelationId: "c1", Body: []byte("ping")}))
	reqs, err := server.Consume("rpc", "", false, false, false, false, nil)
	must(t, err)
	req := recv(t, reqs)
	if req.ReplyTo == "amq.rabbitmq.reply-to" || req.ReplyTo == "" {
		t.Fatalf("reply-to %q not rewritten", req.ReplyTo)
	}
	must(t, server.Publish("", req.ReplyTo, true, false, amqp.Publishing{CorrelationId: req.CorrelationId, Body: []byte("pong")}))
	must(t, req.Ack(false))
	rep := recv(t, replies)
	if string(rep.Body) != "pong" || rep.CorrelationId != "c1" {
		t.Fatalf("reply %+v", rep)
	}
}

func TestTopicCascadeBindings(t *testing.T) {
	b := newBroker(t)
	ch := channel(t, dial(t, b))
	must(t, ch.ExchangeDeclare("t", "topic", true, false, false, false, nil))
	for q, key := range map[string]string{"star": "a.*.c", "hash": "a.#", "exact": "a.b.c", "other": "x.#"} {
		_, err := ch.QueueDeclare(q, false, false, false, false, nil)
		must(t, err)
		must(t, ch.QueueBind(q, key, "t", false, nil))
	}
	must(t, ch.Publish("t", "a.b.c", false, false, amqp.Publishing{}))
	must(t, ch.Publish("t", "a", false, false, amqp.Publishing{}))
	want := map[string]int{"star": 1, "hash": 2, "exact": 1, "other": 0}
	for q, n := range want {
		got, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
		must(t, err)
		if got.Messages != n {
			t.Errorf("%s: %d messages, want %d", q, got.Messages, n)
		}
	}
}

// A message that waits in two queues with TTLs in turn (as in warren's
// delay cascade) leaves each when its own TTL runs out, even when one
// Advance covers both.
func TestAdvanceStepsThroughChainedTTLs(t *testing.T) {
	b := newBroker(t)
	ch := channel(t, dial(t, b))
	_, err := ch.QueueDeclare("out", true, false, false, false, nil)
	must(t, err)
	_, err = ch.QueueDeclare("second", true, false, false, false, amqp.Table{
		"x-message-ttl": int32(1000), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "out"})
	must(t, err)
	_, err = ch.QueueDeclare("first", true, false, false, false, amqp.Table{
		"x-message-ttl": int32(4000), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "second"})
	must(t, err)
	must(t, ch.Publish("", "first", false, false, amqp.Publishing{Body: []byte("x")}))
	ds, err := ch.Consume("out", "", false, false, false, false, nil)
	must(t, err)
	b.Advance(4999 * time.Millisecond)
	none(t, ds)
	b.Advance(time.Millisecond)
	d := recv(t, ds)
	deaths, _ := d.Headers["x-death"].([]any)
	if len(deaths) != 2 {
		t.Fatalf("x-death %v", d.Headers)
	}
	for i, want := range []struct {
		queue string
		at    time.Duration
	}{{"second", 5 * time.Second}, {"first", 4 * time.Second}} {
		death := deaths[i].(amqp.Table)
		if death["queue"] != want.queue || !death["time"].(time.Time).Equal(amqpmem.Epoch.Add(want.at)) {
			t.Errorf("x-death[%d] = %v, want queue %s at +%v", i, death, want.queue, want.at)
		}
	}
}

func TestDroppedConnectionRequeuesUnacked(t *testing.T) {
	b := newBroker(t)
	admin := channel(t, dial(t, b))
	_, err := admin.QueueDeclare("q", true, false, false, false, nil)
	must(t, err)
	must(t, admin.Publish("", "q", false, false, amqp.Publishing{Body: []byte("x")}))
	other := dial(t, b)
	ds, err := channel(t, other).Consume("q", "", false, false, false, false, nil)
	must(t, err)
	recv(t, ds)
	other.Close() // closed without settling: the message goes back
	ds, err = admin.Consume("q", "", false, false, false, false, nil)
	must(t, err)
	if d := recv(t, ds); !d.Redelivered {
		t.Fatal("not marked redelivered")
	}
}

func TestPurgeCounts(t *testing.T) {
	b := newBroker(t)
	ch := channel(t, dial(t, b))
	_, err := ch.QueueDeclare("q", false, false, false, false, nil)
	must(t, err)
	for range 3 {
		must(t, ch.Publish("", "q", false, false, amqp.Publishing{}))
	}
	n, err := ch.QueuePurge("q", false)
	must(t, err)
	if n != 3 {
		t.Fatalf("purged %d, want 3", n)
	}
}

func TestUnimplementedMethodClosesTheChannel(t *testing.T) {
	b := newBroker(t)
	ch := channel(t, dial(t, b))
	err := ch.Tx()
	var ae *amqp.Error
	if err == nil || !asAMQP(err, &ae) || ae.Code != 540 {
		t.Fatalf("tx.select: got %v, want 540 NOT_IMPLEMENTED", err)
	}
}
