package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/outbox"
)

func TestOutboxCommands(t *testing.T) {
	schema := pgtest.Schema(t)
	db := pgtest.SchemaURL(t, schema)
	queue := brokertest.Queue(t, "orders", nil)

	code, out, errOut := runLocal(t, "outbox", "migrate", "--database-url", db)
	if code != exitOK || !strings.Contains(out, "applied migration 1") {
		t.Fatalf("migrate: exit %d, %q %q", code, out, errOut)
	}
	if code, out, _ = runLocal(t, "outbox", "migrate", "--database-url", db); code != exitOK || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate again: exit %d, %q", code, out)
	}

	pool := pgtest.Pool(t, schema)
	ctx := brokertest.Context(t, time.Minute)
	id := brokertest.JobID(t)
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return outbox.Publish(ctx, tx, broker.Job{ID: id, Type: "order.placed"}, outbox.To("", queue))
	}); err != nil {
		t.Fatal(err)
	}
	var stats struct {
		Backlog int64   `json:"backlog"`
		Oldest  *string `json:"oldest"`
	}
	code, out, errOut = runLocal(t, "outbox", "stats", "--database-url", db, "--json")
	if code != exitOK || json.Unmarshal([]byte(out), &stats) != nil || stats.Backlog != 1 || stats.Oldest == nil {
		t.Fatalf("stats: exit %d, %q %q", code, out, errOut)
	}
	if code, out, _ = runLocal(t, "outbox", "ls", "--database-url", db); code != exitOK || !strings.Contains(out, id) {
		t.Fatalf("ls: exit %d, %q", code, out)
	}

	// The relay runs until its context ends (SIGINT or SIGTERM).
	rctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan int, 1)
	var rout, rerr bytes.Buffer
	go func() {
		done <- run(rctx, []string{"--url", brokertest.URL(t), "outbox", "relay", "--database-url", db, "--poll-interval", "50ms"}, &rout, &rerr)
	}()
	testkit.WaitFor(t, 30*time.Second, "the row sent", func() bool {
		s, err := outbox.ReadStats(ctx, pool)
		return err == nil && s.Backlog == 0
	})
	stop()
	if code := <-done; code != exitOK {
		t.Fatalf("relay: exit %d, %q", code, rerr.String())
	}
	if d := brokertest.Get(t, queue, 10*time.Second); d.MessageId != id {
		t.Errorf("queue got %s, want %s", d.MessageId, id)
	}
	var listed struct {
		Rows []struct {
			JobID  string  `json:"job_id"`
			SentAt *string `json:"sent_at"`
		} `json:"rows"`
	}
	code, out, _ = runLocal(t, "outbox", "ls", "--sent", "--json", "--database-url", db)
	if code != exitOK || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Rows) != 1 || listed.Rows[0].JobID != id || listed.Rows[0].SentAt == nil {
		t.Errorf("ls --sent: exit %d, %q", code, out)
	}
}

func TestOutboxNoDatabase(t *testing.T) {
	t.Setenv(envDatabaseURL, "")
	t.Setenv(envDatabaseURLFallback, "")
	if code, _, errOut := runLocal(t, "outbox", "stats"); code != exitUsage || !strings.Contains(errOut, "--database-url") {
		t.Errorf("exit %d, %q; want a usage error naming --database-url", code, errOut)
	}
}
