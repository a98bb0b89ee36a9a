package outbox_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/outbox"
)

// Batch writes the warren-batch header next to the job's own, which a
// job's Headers cannot carry.
func TestBatchMarksTheJob(t *testing.T) {
	pool := pgtest.Pool(t, pgtest.Schema(t))
	ctx := brokertest.Context(t, time.Minute)
	if _, err := outbox.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", strings.Repeat("b", outbox.MaxBatchID+1)} {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return outbox.Publish(ctx, tx, broker.Job{Type: "t"}, outbox.To("", "q"), outbox.Batch(id))
		})
		if err == nil || !strings.Contains(err.Error(), "outbox: Batch") {
			t.Errorf("Batch(%d bytes): %v; want an error", len(id), err)
		}
	}
	job := broker.Job{Type: "t", Headers: map[string]any{"tenant": "acme"}}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return outbox.Publish(ctx, tx, job, outbox.To("", "q"), outbox.Batch("b-1"))
	}); err != nil {
		t.Fatal(err)
	}
	var headers []byte
	if err := pool.QueryRow(ctx, `SELECT headers::text FROM warren_outbox`).Scan(&headers); err != nil {
		t.Fatal(err)
	}
	var h broker.Table
	if err := h.UnmarshalJSON(headers); err != nil {
		t.Fatal(err)
	}
	if h[broker.HeaderBatch] != "b-1" || h["tenant"] != "acme" || len(job.Headers) != 1 {
		t.Errorf("headers written %v (the job's own: %v); want warren-batch b-1 and tenant acme, the job's left alone", h, job.Headers)
	}
}
