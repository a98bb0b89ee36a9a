package deadletter_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
	"github.com/warrenmq/warren/internal/brokertest"
)

// BenchmarkReplay50k replays 50,000 parked jobs (about 200 bytes each)
// from a dead-letter queue to their origin queue, each confirmed before it
// is acked, and reports jobs/s. Filling the queue is not timed.
//
//	go test -run '^$' -bench Replay50k -benchtime 1x ./deadletter/
func BenchmarkReplay50k(b *testing.B) {
	const n = 50_000
	ctx := context.Background()
	conn, err := broker.Dial(ctx, []string{brokertest.URL(b)}, broker.WithName("warren-bench-replay"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	pub, err := broker.NewSender(conn)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close(ctx)
	ch := brokertest.Channel(b)
	var moved int
	var elapsed time.Duration
	for i := 0; b.Loop(); i++ {
		origin := brokertest.Name(b, fmt.Sprintf("replay-%d", i))
		dlq := origin + ".dlq"
		for _, q := range []string{origin, dlq} {
			if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
				b.Fatal(err)
			}
		}
		brokertest.DeleteQueuesAtCleanup(b, origin, dlq)
		b.StopTimer()
		park(b, pub, dlq, origin, n)
		b.StartTimer()
		start := time.Now()
		s, err := deadletter.Replay(ctx, conn, pub, dlq, deadletter.ReplayOptions{})
		elapsed += time.Since(start)
		if err != nil || len(s.Moved) != n || len(s.Failed) != 0 {
			b.Fatalf("replay: moved %d of %d, %d failed, %v", len(s.Moved), n, len(s.Failed), err)
		}
		moved += len(s.Moved)
		b.StopTimer()
		if _, err := ch.QueuePurge(origin, false); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(moved)/elapsed.Seconds(), "jobs/s")
}

// park fills dlq with n jobs a worker parked after they failed in origin.
func park(tb testing.TB, pub *broker.Sender, dlq, origin string, n int) {
	ctx := context.Background()
	now := time.Now()
	payload := map[string]string{"data": string(make([]byte, 150))}
	window := make([]*broker.Confirmation, 0, 512)
	wait := func() {
		for _, c := range window {
			if err := c.Wait(ctx); err != nil {
				tb.Fatal(err)
			}
		}
		window = window[:0]
	}
	for i := range n {
		env, err := broker.NewEnvelope(broker.Job{Type: "report.render", Payload: payload})
		if err != nil {
			tb.Fatal(err)
		}
		env.Attempt = 5
		env.Failure = &broker.Failure{Error: fmt.Sprintf("upstream timeout %d", i%7), Class: "error",
			FirstFailedAt: now, FailedAt: now, Origin: broker.Origin{RoutingKey: origin, Queue: origin}}
		c, err := pub.Send(ctx, broker.KindDeadLetter, env, "", dlq)
		if err != nil {
			tb.Fatal(err)
		}
		if window = append(window, c); len(window) == cap(window) {
			wait()
		}
	}
	wait()
}
