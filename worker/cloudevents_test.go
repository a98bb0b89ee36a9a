package worker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/queuetest"
	"github.com/warrenmq/warren/worker"
)

// TestCloudEventFromTooling: a message as CloudEvents tooling publishes
// it in binary mode, with its id, type and time as cloudEvents_
// attributes and no message_id, type or timestamp property, is handled as
// a job of that type, and its retry keeps the id and the attributes.
func TestCloudEventFromTooling(t *testing.T) {
	f := queuetest.New(t, "order.placed")
	id := brokertest.JobID(t)
	var mu sync.Mutex
	var seen []*worker.Job
	mux := worker.NewMux()
	mux.HandleFunc("order.placed", func(ctx context.Context, job *worker.Job) error {
		mu.Lock()
		seen = append(seen, job)
		mu.Unlock()
		if job.Attempt == 1 {
			return errors.New("once more")
		}
		return nil
	})
	f.Run(mux)

	body, err := msgpack.Marshal(map[string]any{"order_id": "o-1042"})
	if err != nil {
		t.Fatal(err)
	}
	ch := brokertest.Channel(t)
	err = ch.PublishWithContext(brokertest.Context(t, 5*time.Second), "", f.Queue, false, false, amqp.Publishing{
		ContentType:  "application/msgpack",
		DeliveryMode: amqp.Persistent,
		Headers: amqp.Table{
			"cloudEvents_specversion": "1.0",
			"cloudEvents_id":          id,
			"cloudEvents_type":        "order.placed",
			"cloudEvents_source":      "https://example.com/shop",
			"cloudEvents_time":        "2026-11-24T10:00:00.250Z",
			"cloudEvents_tenant":      "acme",
		},
		Body: body,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.WaitCount(worker.Succeeded, 1, 30*time.Second)
	if n := f.Count(worker.DeadLettered); n != 0 {
		t.Fatalf("%d dead-lettered", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("handled %d times, want 2 (a retry)", len(seen))
	}
	wantTime := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for i, job := range seen {
		if job.ID != id || job.Type != "order.placed" || !job.PublishedAt.Equal(wantTime) {
			t.Errorf("attempt %d: id %q, type %q, published at %v", i+1, job.ID, job.Type, job.PublishedAt)
		}
		var p struct {
			OrderID string `msgpack:"order_id"`
		}
		if err := job.Envelope.Decode(&p); err != nil || p.OrderID != "o-1042" {
			t.Errorf("attempt %d: payload %+v, %v", i+1, p, err)
		}
		ce, ok := broker.CloudEventOf(job.Envelope)
		if !ok || ce.ID != id || ce.Type != "order.placed" || ce.Source != "https://example.com/shop" ||
			!ce.Time.Equal(wantTime.Add(250*time.Millisecond)) || ce.Extensions["tenant"] != "acme" {
			t.Errorf("attempt %d: CloudEventOf = %+v, %v", i+1, ce, ok)
		}
	}
}
