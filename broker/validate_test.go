package broker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/contract"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/contracttest"
)

func validationSet(t *testing.T) *contract.Set {
	t.Helper()
	return contracttest.Parse(t, contracttest.Trips)
}

type tripV1 struct {
	Rider string `json:"rider"`
	Seats int    `json:"seats,omitempty"`
}

// wantRefused checks that err refuses the payload of job for the field
// named.
func wantRefused(t *testing.T, err error, field string) {
	t.Helper()
	var pe *broker.PublishError
	if !errors.As(err, &pe) || !errors.Is(err, broker.ErrInvalidPayload) || !errors.Is(err, contract.ErrMismatch) {
		t.Fatalf("error %v (%T); want a *PublishError wrapping ErrInvalidPayload and contract.ErrMismatch", err, err)
	}
	if !strings.Contains(err.Error(), field) {
		t.Errorf("error %q does not name %s", err, field)
	}
}

func TestPublishWithValidatorRefusesBadPayloads(t *testing.T) {
	conn := dial(t)
	_, queue := setup(t, nil)
	p := newPublisher(t, conn, broker.WithValidator(validationSet(t)))
	ctx := brokertest.Context(t, 10*time.Second)

	err := p.Publish(ctx, broker.Job{Type: "trip.book", Payload: tripV1{Rider: "ann", Seats: 12}}, broker.ToQueue(queue))
	wantRefused(t, err, "/seats")
	// Valid for v1, but v2 requires class.
	err = p.Publish(ctx, broker.Job{Type: "trip.book", Version: 2, Payload: tripV1{Rider: "ann"}}, broker.ToQueue(queue))
	wantRefused(t, err, "class")
	// Refused in a batch: only that job fails.
	jobs := []broker.Job{
		{Type: "trip.book", Payload: tripV1{Rider: ""}},
		{Type: "trip.book", Version: 2, Payload: map[string]any{"rider": "bea", "class": "van"}},
	}
	err = p.PublishBatch(ctx, jobs, broker.ToQueue(queue))
	var be *broker.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[0].Index != 0 {
		t.Fatalf("PublishBatch: %v; want the first job refused", err)
	}
	wantRefused(t, be.Failed[0].Err, "/rider")
	// A type the contracts do not declare is published unchecked.
	if err := p.Publish(ctx, broker.Job{Type: "trip.other", Payload: 1}, broker.ToQueue(queue)); err != nil {
		t.Fatalf("Publish of an undeclared type: %v", err)
	}

	good := brokertest.Get(t, queue, 5*time.Second)
	if good.Type != "trip.book" || good.Headers[broker.HeaderVersion] != int32(2) && good.Headers[broker.HeaderVersion] != int64(2) {
		t.Errorf("first message: type %q, headers %v; want the valid trip.book v2", good.Type, good.Headers)
	}
	if other := brokertest.Get(t, queue, 5*time.Second); other.Type != "trip.other" {
		t.Errorf("second message: type %q, want trip.other", other.Type)
	}
	if n := brokertest.Depth(t, queue); n != 0 {
		t.Errorf("%d more messages in the queue; the refused ones were published", n)
	}
}

func TestCallWithValidatorRefusesBadPayloads(t *testing.T) {
	conn := dial(t)
	_, queue := setup(t, nil)
	c, err := broker.NewCaller(conn, broker.WithCallValidator(validationSet(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	_, err = c.Call(brokertest.Context(t, 10*time.Second), broker.Job{Type: "trip.book", Payload: map[string]any{"seats": 2}}, broker.ToQueue(queue))
	wantRefused(t, err, "rider")
	if n := brokertest.Depth(t, queue); n != 0 {
		t.Errorf("%d messages in the queue; the refused request was published", n)
	}
}

func TestValidatorOptions(t *testing.T) {
	conn := dial(t)
	if s, err := broker.NewSender(conn, broker.WithValidator(validationSet(t))); err == nil || !strings.Contains(err.Error(), "WithValidator") {
		t.Errorf("NewSender with WithValidator: %v; want it refused (a Sender publishes retries and dead letters)", err)
		if s != nil {
			s.Close(context.Background())
		}
	}
	if _, err := broker.NewPublisher(conn, broker.WithValidator(nil)); err == nil {
		t.Error("WithValidator(nil) accepted")
	}
	if _, err := broker.NewCaller(conn, broker.WithCallValidator(nil)); err == nil {
		t.Error("WithCallValidator(nil) accepted")
	}
}
