//go:build faults

package faults_test

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/rabbitnode"
	"github.com/warrenmq/warren/topology"
)

// TestQuorumDeadLetterQueueReadManyTimes, on a RabbitMQ 4.0 node: reading a
// derived quorum dead-letter queue 50 times (as warren dlq list, show and
// export do, each read returning what it read) drops nothing. RabbitMQ 4.0
// to 4.2 count each return as a delivery, and a quorum queue without an
// explicit limit gets the default of 20: the control queue, declared as
// warren declared dead-letter queues before, loses its jobs, which shows
// the node does what the fix is for.
func TestQuorumDeadLetterQueueReadManyTimes(t *testing.T) {
	const jobs, reads = 5, 50
	n := rabbitnode.Start(t, rabbitnode.WithVersion("4.0"))
	ctx := brokertest.Context(t, 5*time.Minute)
	conn, err := broker.Dial(ctx, []string{n.URL()}, broker.WithName("faults-dlq-reads"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	topo, err := topology.Parse("reads.yaml", []byte("version: 1\nqueues:\n  reads:\n    type: quorum\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := broker.NewDeclarer(conn)
	if _, err := topology.Declare(ctx, d, topo); err != nil {
		t.Fatalf("declare: %v", err)
	}
	d.Close(ctx)
	dlq := topology.DeadLetterQueueName("reads")

	// The control: a quorum queue as earlier warren versions declared a
	// .dlq, with no x-delivery-limit.
	const control = "reads.control"
	raw, err := amqp.Dial(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(control, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{dlq, control} {
		for i := range jobs {
			c, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, true, false, amqp.Publishing{
				ContentType: broker.ContentType, Type: "report.render", MessageId: q + "-" + string(rune('a'+i)),
				DeliveryMode: amqp.Persistent, Body: []byte{0xc0},
			})
			if err != nil || !c.Wait() {
				t.Fatalf("publish to %s: %v", q, err)
			}
		}
	}

	read := func(q string) int {
		seen, err := deadletter.Browse(ctx, conn, q, func(deadletter.Entry) bool { return true })
		if err != nil {
			t.Fatalf("read %s: %v", q, err)
		}
		return seen
	}
	for i := range reads {
		if got := read(dlq); got != jobs {
			t.Fatalf("read %d of %s saw %d jobs, want %d: the queue dropped jobs", i+1, dlq, got, jobs)
		}
		read(control)
	}
	if got := read(control); got != 0 {
		t.Errorf("the control queue still holds %d of %d jobs after %d reads: the node did not apply a delivery limit of 20, so this test proves nothing", got, jobs, reads)
	}
	t.Logf("RabbitMQ %s: %s holds %d of %d jobs after %d reads; a quorum queue without x-delivery-limit holds 0", n.Version(), dlq, read(dlq), jobs, reads)
}
