package broker_test

import (
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// TestCloudEventsRoundTrip publishes through the broker with
// WithCloudEvents, and with AsCloudEvent overriding it for one job: the
// message carries the attributes as CloudEvents tooling reads them (raw
// headers), and a consumer reads them back with CloudEventOf.
func TestCloudEventsRoundTrip(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	p := newPublisher(t, conn, broker.WithCloudEvents("/shop"))
	ctx := brokertest.Context(t, 20*time.Second)

	plain := broker.Job{ID: brokertest.JobID(t), Type: "order.placed", Payload: map[string]any{"order_id": "o-1"},
		Headers: map[string]any{"cloudEvents_tenant": "acme"}}
	if err := p.Publish(ctx, plain, broker.To(exchange, "k")); err != nil {
		t.Fatal(err)
	}
	raw := brokertest.Get(t, queue, 5*time.Second)
	want := map[string]any{
		"cloudEvents_specversion": "1.0",
		"cloudEvents_id":          plain.ID,
		"cloudEvents_type":        "order.placed",
		"cloudEvents_source":      "/shop",
		"cloudEvents_time":        raw.Timestamp.UTC().Format(time.RFC3339),
		"cloudEvents_tenant":      "acme",
	}
	for k, v := range want {
		if raw.Headers[k] != v {
			t.Errorf("header %s = %#v, want %#v", k, raw.Headers[k], v)
		}
	}
	if _, ok := raw.Headers["cloudEvents_subject"]; ok {
		t.Error("cloudEvents_subject written without a subject")
	}
	if raw.ContentType != broker.ContentType || raw.MessageId != plain.ID || raw.Timestamp.IsZero() {
		t.Errorf("properties: content_type %q, message_id %q, timestamp %v", raw.ContentType, raw.MessageId, raw.Timestamp)
	}

	jobs := []broker.Job{
		{ID: brokertest.JobID(t), Type: "order.shipped", Payload: 1},
		{ID: brokertest.JobID(t), Type: "order.shipped", Payload: 2},
	}
	if err := p.PublishBatch(ctx, jobs, broker.To(exchange, "k"), broker.AsCloudEvent("https://example.com/shipping", "parcel")); err != nil {
		t.Fatal(err)
	}
	c := consume(t, conn, queue)
	for _, job := range jobs {
		d, ok := c.Next(ctx)
		if !ok {
			t.Fatal("no delivery")
		}
		if d.Err != nil {
			t.Fatal(d.Err)
		}
		ce, ok := broker.CloudEventOf(d.Envelope)
		if !ok {
			t.Fatalf("no CloudEvent in %v", d.Envelope.Headers)
		}
		if ce.ID != job.ID || ce.Type != "order.shipped" || ce.Source != "https://example.com/shipping" || ce.Subject != "parcel" ||
			ce.SpecVersion != "1.0" || ce.DataContentType != broker.ContentType || !ce.Time.Equal(d.Envelope.Timestamp) {
			t.Errorf("CloudEventOf = %+v, envelope id %q timestamp %v", ce, job.ID, d.Envelope.Timestamp)
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNewSenderRefusesWithCloudEvents: a Sender sends what it is given.
func TestNewSenderRefusesWithCloudEvents(t *testing.T) {
	if _, err := broker.NewSender(dial(t), broker.WithCloudEvents("/shop")); err == nil {
		t.Error("NewSender took WithCloudEvents")
	}
}
