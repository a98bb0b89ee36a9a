package outbox_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/outbox"
)

// TestCloudEventMarks: a domain event written in a transaction with
// Marks(broker.AsCloudEvent(…)) is relayed with its CloudEvents
// attributes, its time the job's timestamp, not the relay's.
func TestCloudEventMarks(t *testing.T) {
	f := newFixture(t)
	ctx := brokertest.Context(t, time.Minute)
	id := brokertest.JobID(t)
	if err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		return outbox.Publish(ctx, tx, broker.Job{ID: id, Type: "order.placed", Payload: map[string]any{"order": 42}},
			outbox.To("", f.queue), outbox.Marks(broker.AsCloudEvent("/shop/orders", "42")))
	}); err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		return outbox.Publish(ctx, tx, broker.Job{Type: "order.placed"}, outbox.To("", f.queue), outbox.Marks(broker.AsCloudEvent("not a uri", "")))
	}); err == nil {
		t.Error("a bad source was written")
	}
	time.Sleep(1100 * time.Millisecond) // the relay publishes in a later second than the job's timestamp
	f.relay(t)
	f.waitSent(t)
	ds := drain(t, f.queue, 1, 300*time.Millisecond)
	if len(ds) != 1 {
		t.Fatalf("got %d messages, want 1", len(ds))
	}
	d := ds[0]
	env, err := broker.Message{ContentType: d.ContentType, MessageID: d.MessageId, Type: d.Type,
		Timestamp: d.Timestamp, Headers: tableOf(d.Headers), Body: d.Body}.Envelope()
	if err != nil {
		t.Fatal(err)
	}
	ce, ok := broker.CloudEventOf(env)
	if !ok || ce.ID != id || ce.Type != "order.placed" || ce.Source != "/shop/orders" || ce.Subject != "42" ||
		d.Headers["cloudEvents_time"] != d.Timestamp.UTC().Format(time.RFC3339) {
		t.Errorf("CloudEventOf = %+v, %v; headers %v, timestamp %v", ce, ok, d.Headers, d.Timestamp)
	}
}
