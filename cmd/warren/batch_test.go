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

	// Two batches, as producers and finishers leave them.
	pool := pgtest.Pool(t, schema)
	ctx := brokertest.Context(t, time.Minute)
	for _, q := range []string{
		`INSERT INTO warren_batch (id, total, succeeded, failed, callback_type, callback_exchange, callback_routing_key, created_at, finished_at) VALUES
			('import-1', 3, 1, 2, 'import.done', 'x', 'import.done', now() - interval '1 minute', now()),
			('import-2', 5, 1, 0, 'import.done', 'x', 'import.done', now(), NULL)`,
		`INSERT INTO warren_batch_jobs (batch_id, job_id, job_type, status, class, error) VALUES
			('import-1', 'job-1', 'row.import', 'succeeded', '', NULL),
			('import-1', 'job-2', 'row.import', 'dead-lettered', 'permanent', 'bad row 7'),
			('import-1', 'job-3', 'row.import', 'rejected', 'error', 'no such table'),
			('import-2', 'job-4', 'row.import', 'succeeded', '', NULL)`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	code, out, errOut = runLocal(t, "batch", "ls", "--database-url", db, "--status", "running")
	if code != exitOK || !strings.Contains(out, "import-2") || strings.Contains(out, "import-1") {
		t.Fatalf("ls --status running: exit %d, %q %q", code, out, errOut)
	}
	var listed struct {
		Batches []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			Total  int    `json:"total"`
		} `json:"batches"`
	}
	code, out, _ = runLocal(t, "batch", "ls", "--database-url", db, "--json")
	if code != exitOK || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Batches) != 2 ||
		listed.Batches[0].ID != "import-2" || listed.Batches[1].Status != "finished" || listed.Batches[1].Total != 3 {
		t.Fatalf("ls --json: exit %d, %q", code, out)
	}
	if code, _, errOut = runLocal(t, "batch", "ls", "--database-url", db, "--status", "done"); code != exitUsage || !strings.Contains(errOut, "--status") {
		t.Errorf("ls --status done: exit %d, %q; want a usage error", code, errOut)
	}

	code, out, errOut = runLocal(t, "batch", "show", "import-1", "--database-url", db)
	for _, want := range []string{"Status:    finished", "3 (3 ended: 1 succeeded, 2 failed)", "job-2", "dead-lettered", "bad row 7", "job-3", "rejected"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("show: exit %d, %q lacks %q (%s)", code, out, want, errOut)
		}
	}
	if strings.Contains(out, "job-1") {
		t.Errorf("show lists a job that succeeded: %q", out)
	}
	var shown struct {
		ID       string `json:"id"`
		Failures []struct {
			JobID  string `json:"job_id"`
			Status string `json:"status"`
		} `json:"failures"`
	}
	code, out, _ = runLocal(t, "batch", "show", "import-2", "--database-url", db, "--json")
	if code != exitOK || json.Unmarshal([]byte(out), &shown) != nil || shown.ID != "import-2" || shown.Failures == nil || len(shown.Failures) != 0 {
		t.Errorf("show --json: exit %d, %q", code, out)
	}
	if code, _, errOut = runLocal(t, "batch", "show", "nope", "--database-url", db); code == exitOK || !strings.Contains(errOut, "no such batch") {
		t.Errorf("show of an unknown batch: exit %d, %q", code, errOut)
	}
	if code, _, errOut = runLocal(t, "batch", "ls", "--database-url", pgtest.SchemaURL(t, pgtest.Schema(t))); code == exitOK || !strings.Contains(errOut, "warren batch migrate") {
		t.Errorf("ls without the tables: exit %d, %q", code, errOut)
	}
}
