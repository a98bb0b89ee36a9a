package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
)

func TestBatchCommands(t *testing.T) {
	schema := pgtest.Schema(t)
	db := pgtest.SchemaURL(t, schema)

	code, out, errOut := runLocal(t, "batch", "migrate", "--database-url", db)
	if code != exitOK || !strings.Contains(out, "applied migration 1") {
		t.Fatalf("migrate: exit %d, %q %q", code, out, errOut)
	}
	if code, out, _ = runLocal(t, "batch", "migrate", "--database-url", db); code != exitOK || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate again: exit %d, %q", code, out)
	}
	if code, out, _ = runLocal(t, "batch", "ls", "--database-url", db); code != exitOK || !strings.Contains(out, "no batches") {
		t.Fatalf("ls of none: exit %d, %q", code, out)
	}

	// Two batches, as the finishers leave them: one finished with a
	// failure, one with a job pending.
	pool := pgtest.Pool(t, schema)
	ctx := brokertest.Context(t, time.Minute)
	for _, q := range []string{
		`INSERT INTO warren_batch (id, total, succeeded, failed, callback_type, callback_exchange, callback_routing_key, finished_at) VALUES
			('b-1', 2, 1, 1, 'report.assemble', 'jobs', 'report.assemble', now()),
			('b-2', 3, 2, 0, 'report.assemble', 'jobs', 'report.assemble', NULL)`,
		`INSERT INTO warren_batch_jobs (batch_id, job_id, job_type, status, class, error) VALUES
			('b-1', 'job-1', 'page.render', 'succeeded', NULL, NULL),
			('b-1', 'job-2', 'page.render', 'failed', 'permanent', 'font missing')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut = runLocal(t, "batch", "ls", "--database-url", db, "--open")
	if code != exitOK || !strings.Contains(out, "b-2") || strings.Contains(out, "b-1") {
		t.Fatalf("ls --open: exit %d, %q %q", code, out, errOut)
	}
	var listed struct {
		Batches []struct {
			ID        string `json:"id"`
			Total     int    `json:"total"`
			Succeeded int    `json:"succeeded"`
		} `json:"batches"`
	}
	code, out, _ = runLocal(t, "batch", "ls", "--database-url", db, "--json")
	if code != exitOK || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Batches) != 2 {
		t.Fatalf("ls --json: exit %d, %q", code, out)
	}
	if code, _, errOut = runLocal(t, "batch", "ls", "--database-url", db, "--open", "--finished"); code != exitUsage || !strings.Contains(errOut, "--finished") {
		t.Errorf("ls --open --finished: exit %d, %q; want a usage error", code, errOut)
	}
	code, out, errOut = runLocal(t, "batch", "show", "b-1", "--database-url", db)
	for _, want := range []string{"Failed:    1", "Pending:   0", "job-2", "font missing", "report.assemble"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("show: exit %d, %q lacks %q (%s)", code, out, want, errOut)
		}
	}
	if code, _, errOut = runLocal(t, "batch", "show", "nope", "--database-url", db); code == exitOK || !strings.Contains(errOut, "no such batch") {
		t.Errorf("show of an unknown id: exit %d, %q", code, errOut)
	}
}
