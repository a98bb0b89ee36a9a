package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
)

func TestSagaCommands(t *testing.T) {
	schema := pgtest.Schema(t)
	db := pgtest.SchemaURL(t, schema)

	code, out, errOut := runLocal(t, "saga", "migrate", "--database-url", db)
	if code != exitOK || !strings.Contains(out, "applied migration 1") {
		t.Fatalf("migrate: exit %d, %q %q", code, out, errOut)
	}
	if code, out, _ = runLocal(t, "saga", "migrate", "--database-url", db); code != exitOK || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate again: exit %d, %q", code, out)
	}
	if code, out, _ = runLocal(t, "saga", "ls", "--database-url", db); code != exitOK || !strings.Contains(out, "no sagas") {
		t.Fatalf("ls of none: exit %d, %q", code, out)
	}

	// Two sagas, as a coordinator leaves them.
	pool := pgtest.Pool(t, schema)
	ctx := brokertest.Context(t, time.Minute)
	for _, q := range []string{
		`INSERT INTO warren_saga (id, name, status, step, state, last_error) VALUES
			('trip-1', 'trip.book', 'failed', 0, '{"rider": "ada"}', 'compensation of step "reserve" failed: car gone'),
			('trip-2', 'trip.book', 'completed', 1, '{"rider": "bob"}', NULL)`,
		`INSERT INTO warren_saga_steps (saga_id, seq, step, kind, job_id, job_type, status, error, done_at) VALUES
			('trip-1', 1, 'reserve', 'command', 'job-1', 'car.reserve', 'succeeded', NULL, now()),
			('trip-1', 2, 'charge', 'command', 'job-2', 'card.charge', 'failed', 'card declined', now()),
			('trip-1', 3, 'reserve', 'compensation', 'job-3', 'car.release', 'failed', 'car gone', now())`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	code, out, errOut = runLocal(t, "saga", "ls", "--database-url", db, "--status", "failed")
	if code != exitOK || !strings.Contains(out, "trip-1") || strings.Contains(out, "trip-2") || !strings.Contains(out, "car gone") {
		t.Fatalf("ls --status failed: exit %d, %q %q", code, out, errOut)
	}
	var listed struct {
		Sagas []struct {
			ID     string          `json:"id"`
			Status string          `json:"status"`
			State  json.RawMessage `json:"state"`
		} `json:"sagas"`
	}
	code, out, _ = runLocal(t, "saga", "ls", "--database-url", db, "--name", "trip.book", "--json")
	if code != exitOK || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Sagas) != 2 {
		t.Fatalf("ls --json: exit %d, %q", code, out)
	}
	if code, _, errOut = runLocal(t, "saga", "ls", "--database-url", db, "--status", "done"); code != exitUsage || !strings.Contains(errOut, "--status") {
		t.Errorf("ls --status done: exit %d, %q; want a usage error", code, errOut)
	}

	code, out, errOut = runLocal(t, "saga", "show", "trip-1", "--database-url", db)
	for _, want := range []string{"Status:     failed", "card declined", "job-3", "car.release", "compensation", `"rider": "ada"`} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("show: exit %d, %q lacks %q (%s)", code, out, want, errOut)
		}
	}
	var shown struct {
		ID       string `json:"id"`
		Commands []struct {
			JobID  string `json:"job_id"`
			Kind   string `json:"kind"`
			Status string `json:"status"`
		} `json:"commands"`
	}
	code, out, _ = runLocal(t, "saga", "show", "trip-1", "--database-url", db, "--json")
	if code != exitOK || json.Unmarshal([]byte(out), &shown) != nil || len(shown.Commands) != 3 || shown.Commands[2].Kind != "compensation" {
		t.Errorf("show --json: exit %d, %q", code, out)
	}
	if code, _, errOut = runLocal(t, "saga", "show", "nope", "--database-url", db); code == exitOK || !strings.Contains(errOut, "no such saga") {
		t.Errorf("show of an unknown id: exit %d, %q", code, errOut)
	}
}
