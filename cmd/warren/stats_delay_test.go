package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

const delayTopology = `
exchanges:
  jobs: {type: direct}
queues:
  emails:
    type: quorum
    retry: {max_attempts: 3, initial_interval: 1h, max_interval: 1h, jitter: 0}
bindings:
  - {exchange: jobs, queue: emails, routing_key: email.send}
routes:
  email.send: {exchange: jobs}
`

// vhostWarren returns a function running warren as a user of a virtual
// host of the test's own (so that the delay cascade, shared by the whole
// vhost, holds this test's jobs only), the URL it uses, and its
// management API URL without credentials.
func vhostWarren(t *testing.T, tags ...string) (cli func(args ...string) (int, string, string), amqpURL, mgmtURL string) {
	t.Helper()
	vhost := brokertest.Vhost(t)
	password := brokertest.Name(t, "password")
	user := brokertest.User(t, password, vhost, brokertest.Permissions{Configure: ".*", Write: ".*", Read: ".*"}, tags...)
	amqpURL = brokertest.URLFor(t, user, password, vhost)
	u, err := url.Parse(brokertest.ManagementURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = nil
	mgmtURL = u.String()
	return func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		code := run(ctx, append([]string{"--url", amqpURL}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}, amqpURL, mgmtURL
}

// TestStatsDelayCascade puts jobs in the delay cascade of a vhost of its
// own: one scheduled in 2h (level 12), one retrying in 1h after a
// failure (level 11), one at the end of the cascade for a queue that does
// not exist (warren.delay.unroutable). stats counts them per level, and
// --by-origin per queue and kind, reading them without taking them.
func TestStatsDelayCascade(t *testing.T) {
	warren, amqpURL, mgmtURL := vhostWarren(t, "management")
	path := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(path, []byte(delayTopology), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := warren("topology", "apply", "-f", path); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	topo, err := topology.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := brokertest.Context(t, time.Minute)
	conn, err := broker.Dial(ctx, []string{amqpURL}, broker.WithName(brokertest.ConnName(t, "stats")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	pub, err := broker.NewPublisher(conn, broker.WithRouter(topo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })

	// Scheduled: in 2h.
	if err := pub.Publish(ctx, broker.Job{Type: "email.send", Payload: "later"}, broker.In(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Unroutable: its delay (none) ends for a queue that does not exist.
	ex, key, err := topology.DelayRoute("gone", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, broker.Job{Type: "email.send", Payload: "lost?"}, broker.To(ex, key)); err != nil {
		t.Fatal(err)
	}
	// Retrying: fails once, retried in 1h.
	var retried atomic.Int32
	mux := worker.NewMux()
	mux.HandleFunc("email.send", func(ctx context.Context, job *worker.Job) error { return errors.New("smtp: 451") })
	pool, err := worker.NewPool(conn, topo, mux, worker.WithObserver(worker.OutcomeFunc(func(o worker.Outcome) {
		if o.Status == worker.Retried {
			retried.Add(1)
		}
	})))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(runCtx) }()
	if err := pub.Publish(ctx, broker.Job{Type: "email.send", Payload: "now"}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "the job retried", func() bool { return retried.Load() == 1 })
	stop()
	if err := <-done; err != nil {
		t.Fatalf("pool: %v", err)
	}

	type output struct {
		Delay delayStats
	}
	stats := func(args ...string) (output, string) {
		t.Helper()
		code, out, errOut := warren(append([]string{"stats", "--management-url", mgmtURL}, args...)...)
		if code != 0 {
			t.Fatalf("stats %v: exit %d\n%s%s", args, code, out, errOut)
		}
		var res output
		if strings.Contains(strings.Join(args, " "), "--json") {
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("stats --json is not JSON: %v\n%s", err, out)
			}
		}
		return res, out
	}
	// The management API refreshes its counts every 5 seconds by default.
	wantLevels := []delayLevel{{Queue: "warren.delay.12", Seconds: 4096, Messages: 1}, {Queue: "warren.delay.11", Seconds: 2048, Messages: 1}}
	var res output
	testkit.WaitFor(t, 30*time.Second, "the cascade's counts", func() bool {
		res, _ = stats("--json", "-f", path)
		return res.Delay.Total == 2 && res.Delay.Unroutable == 1
	})
	if d := res.Delay; !d.Declared || !cmp.Equal(d.Levels, wantLevels) || d.ByQueue != nil || d.Sampled != nil {
		t.Errorf("delay: %+v, want levels %+v and no by-origin counts", d, wantLevels)
	}

	// --by-origin, twice: reading takes nothing.
	for range 2 {
		res, _ = stats("--json", "-f", path, "--by-origin")
		want := []delayOrigin{{Queue: "emails", Retrying: 1, Scheduled: 1}, {Queue: otherQueues, Unroutable: 1}}
		if diff := cmp.Diff(want, res.Delay.ByQueue); diff != "" {
			t.Errorf("by origin, with -f (-want +got):\n%s", diff)
		}
		if s := res.Delay.Sampled; s == nil || s.Read != 3 || s.Of != 3 || s.PerQueue != 100 {
			t.Errorf("sampled %+v, want 3 read of 3, 100 per queue", s)
		}
	}
	res, _ = stats("--json", "--by-origin", "--sample", "1")
	if want := []delayOrigin{{Queue: "emails", Retrying: 1, Scheduled: 1}, {Queue: "gone", Unroutable: 1}}; !cmp.Equal(want, res.Delay.ByQueue) {
		t.Errorf("by origin, without -f: %+v, want %+v", res.Delay.ByQueue, want)
	}
	// A passive declare's count does not lag as the management API's does.
	decl := broker.NewDeclarer(conn)
	defer decl.Close(context.Background())
	for _, q := range []string{"warren.delay.12", "warren.delay.11", topology.DelayUnroutable} {
		// The management API puts back what it read a moment after it
		// answers; until then, a passive declare does not count it.
		testkit.WaitFor(t, 5*time.Second, q+" to hold its job again after --by-origin (reading must take nothing)", func() bool {
			info, err := decl.QueueInfo(ctx, q)
			return err == nil && info.Messages == 1
		})
	}

	_, out := stats("-f", path, "--by-origin")
	for _, want := range []string{
		"delay cascade: 2 retrying or scheduled (warren.delay.12: 1, warren.delay.11: 1); warren.delay.unroutable: 1\n",
		"QUEUE           RETRYING  SCHEDULED  UNROUTABLE\nemails                 1          1           0\n(other queues)         0          0           1\n",
		"read 3 of the 3 jobs counted in the cascade (at most 100 per queue: --sample)\n",
		"1 job(s) in warren.delay.unroutable: their delay ended and no queue took them",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stats output lacks %q:\n%s", want, out)
		}
	}

	for _, args := range [][]string{{"--by-origin", "--sample", "0"}, {"--sample", "5"}} {
		code, _, errOut := warren(append([]string{"stats", "--management-url", mgmtURL}, args...)...)
		if code == 0 || !strings.Contains(errOut, "--sample") {
			t.Errorf("stats %v: exit %d, stderr %q; want an error about --sample", args, code, errOut)
		}
	}
}

// TestStatsNoCascade: a vhost where no topology was applied has no
// cascade, and stats says so.
func TestStatsNoCascade(t *testing.T) {
	warren, _, mgmtURL := vhostWarren(t, "management")
	code, out, errOut := warren("stats", "--management-url", mgmtURL, "--by-origin")
	if code != 0 || !strings.Contains(out, "delay cascade: not declared on this vhost (warren topology apply declares it)") {
		t.Errorf("stats: exit %d\n%s%s", code, out, errOut)
	}
}
