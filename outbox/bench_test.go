package outbox_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/outbox"
)

// benchProducers is how many goroutines publish at once in the
// benchmarks, each job in a transaction (or a confirm) of its own.
const benchProducers = 8

type benchPayload struct {
	Order string `msgpack:"order"`
	Total int    `msgpack:"total"`
	Note  string `msgpack:"note"`
}

var payload = benchPayload{Order: "o-1001", Total: 4200, Note: "a payload of about two hundred bytes once encoded, as the design's measurements use; padded with this sentence and a few more words to get there"}

// produce runs n calls of one across benchProducers goroutines.
func produce(b *testing.B, n int, one func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, benchProducers)
	for range benchProducers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := one(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkDirectPublish is the baseline: jobs published straight to the
// broker, each waiting for its confirm, by benchProducers goroutines.
func BenchmarkDirectPublish(b *testing.B) {
	queue := brokertest.Queue(b, "jobs", nil)
	ctx := context.Background()
	conn, err := broker.Dial(ctx, []string{brokertest.URL(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	pub, err := broker.NewPublisher(conn)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close(ctx)
	b.ResetTimer()
	produce(b, b.N, func() error {
		return pub.Publish(ctx, broker.Job{Type: "order.placed", Payload: payload}, broker.To("", queue))
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// delays collects a relay's per-row delays.
type delays struct {
	mu sync.Mutex
	d  []time.Duration
}

func (o *delays) OutboxBatch(_, _ int, d []time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.d = append(o.d, d...)
}
func (*delays) OutboxStats(outbox.Stats) {}
func (*delays) OutboxDeleted(int64)      {}

func (o *delays) report(b *testing.B) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.d) == 0 {
		return
	}
	slices.Sort(o.d)
	at := func(q float64) float64 { return o.d[int(q*float64(len(o.d)-1))].Seconds() * 1000 }
	b.ReportMetric(at(0.5), "lag-p50-ms")
	b.ReportMetric(at(0.99), "lag-p99-ms")
}

// BenchmarkOutbox is the outbox end to end: benchProducers goroutines
// each write jobs in transactions of their own (one job per commit) while
// one relay publishes them; the time runs until every row is sent. The
// lag is each row's delay from its write to its being marked sent.
func BenchmarkOutbox(b *testing.B) {
	for _, listen := range []bool{true, false} {
		b.Run(fmt.Sprintf("listen=%v", listen), func(b *testing.B) {
			f := newFixture(b)
			obs := &delays{}
			opts := []outbox.Option{outbox.WithObserver(obs), outbox.WithPollInterval(outbox.DefaultPollInterval)}
			if !listen {
				opts = append(opts, outbox.WithoutListen())
			}
			f.relay(b, opts...)
			ctx := context.Background()
			b.ResetTimer()
			produce(b, b.N, func() error {
				return pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
					return outbox.Publish(ctx, tx, broker.Job{Type: "order.placed", Payload: payload}, outbox.To("", f.queue))
				})
			})
			f.waitSent(b)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			obs.report(b)
		})
	}
}

// BenchmarkOutboxWrite is the producer's side alone: a job written in a
// transaction of its own, no relay running.
func BenchmarkOutboxWrite(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	b.ResetTimer()
	produce(b, b.N, func() error {
		return pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
			return outbox.Publish(ctx, tx, broker.Job{Type: "order.placed", Payload: payload}, outbox.To("", f.queue))
		})
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkOutboxRelay is the relay's side alone: how fast one relay
// drains a backlog of b.N rows, by batch size.
func BenchmarkOutboxRelay(b *testing.B) {
	for _, batch := range []int{100, 500} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			f := newFixture(b)
			ctx := context.Background()
			for start := 0; start < b.N; start += 1000 {
				err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
					for range min(1000, b.N-start) {
						if err := outbox.Publish(ctx, tx, broker.Job{Type: "order.placed", Payload: payload}, outbox.To("", f.queue)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			r, err := outbox.NewRelay(f.pool, f.conn, outbox.WithBatchSize(batch))
			if err != nil {
				b.Fatal(err)
			}
			defer r.CloseSender(ctx)
			b.ResetTimer()
			for {
				claimed, _, failed, err := r.RelayBatch(ctx)
				if err != nil || failed > 0 {
					b.Fatalf("batch: %d failed, %v", failed, err)
				}
				if claimed < batch {
					break
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}
