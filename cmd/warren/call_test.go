package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// serve runs a worker pool on the topology's email queue until the test
// ends: it doubles "n", and refuses an empty address for good.
func serve(t *testing.T, path string, n names) {
	t.Helper()
	topo, err := topology.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := broker.Dial(brokertest.Context(t, 10*time.Second), []string{brokertest.URL(t)}, broker.WithName("warren-cli-test-worker"))
	if err != nil {
		t.Fatal(err)
	}
	type email struct {
		To string `json:"to"`
		N  int    `json:"n"`
	}
	mux := worker.NewMux()
	mux.Handle("email.send", worker.TypedResult(func(ctx context.Context, job *worker.Job, e email) (map[string]any, error) {
		if e.To == "" {
			return nil, worker.Permanent(errors.New("no recipient"))
		}
		return map[string]any{"sent_to": e.To, "double": e.N * 2}, nil
	}))
	pool, err := worker.NewPool(conn, topo, mux, worker.WithQueue(n.Queue))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pool: %v", err)
		}
		conn.Close()
	})
}

func TestCall(t *testing.T) {
	path, n := writeTopology(t)
	if code, out, errOut := warren(t, "topology", "apply", "-f", path); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}

	t.Run("timeout without a worker", func(t *testing.T) {
		code, _, errOut := warren(t, "call", "-f", path, "--type", "email.send", "--data", `{"to":"a@example.com"}`, "--timeout", "500ms")
		if code != exitCallTimeout || !strings.Contains(errOut, "no reply") {
			t.Errorf("exit %d, stderr %q; want %d and a timeout message", code, errOut, exitCallTimeout)
		}
	})

	serve(t, path, n)

	t.Run("result", func(t *testing.T) {
		code, out, errOut := warren(t, "call", "-f", path, "--type", "email.send", "--data", `{"to":"a@example.com","n":21}`, "--timeout", "10s")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		if got["sent_to"] != "a@example.com" || got["double"] != float64(42) {
			t.Errorf("result %v", got)
		}
	})

	t.Run("remote error", func(t *testing.T) {
		code, out, _ := warren(t, "--json", "call", "-f", path, "--type", "email.send", "--data", `{"to":""}`, "--timeout", "10s")
		var got callJSON
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		if code != exitRemoteError || got.Status != "error" || got.Class != worker.ClassPermanent || got.Error != "no recipient" || got.ID == "" {
			t.Errorf("exit %d, %+v", code, got)
		}
	})

	t.Run("nowhere to send", func(t *testing.T) {
		code, _, errOut := warren(t, "call", "--type", "email.send")
		if code != 1 || !strings.Contains(errOut, "-f FILE") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
}
