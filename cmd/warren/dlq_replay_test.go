package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
)

// childEnv makes the test binary run the CLI instead of the tests (see
// TestMain), so a test can kill a real warren process.
const childEnv = "WARREN_TEST_RUN_CLI"

// warrenProcess starts the CLI as a child process.
func warrenProcess(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"--url", brokertest.URL(t)}, args...)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, &out
}

// dialSender returns a Sender on a connection of its own to the test
// broker, and the function that closes both.
func dialSender(t *testing.T, ctx context.Context) (*broker.Sender, func()) {
	t.Helper()
	conn, err := broker.Dial(ctx, []string{brokertest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := broker.NewSender(conn)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	return pub, func() {
		pub.Close(ctx)
		conn.Close()
	}
}

// parkJobs puts n jobs in queue dlq as a worker parks them, failed in
// origin (a queue, through the default exchange), and returns their ids.
func parkJobs(t *testing.T, dlq, origin string, n int) []string {
	t.Helper()
	ctx := brokertest.Context(t, time.Minute)
	pub, closePub := dialSender(t, ctx)
	defer closePub()
	now := time.Now()
	ids := make([]string, n)
	confs := make([]*broker.Confirmation, 0, n)
	for i := range ids {
		env, err := broker.NewEnvelope(broker.Job{Type: "report.render", Payload: map[string]int{"n": i}})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = env.ID
		env.Attempt = 5
		env.Failure = &broker.Failure{Error: fmt.Sprintf("upstream timeout %d", i%3), Class: "error",
			FirstFailedAt: now, FailedAt: now, Origin: broker.Origin{RoutingKey: origin, Queue: origin}}
		c, err := pub.Send(ctx, broker.KindDeadLetter, env, "", dlq)
		if err != nil {
			t.Fatal(err)
		}
		confs = append(confs, c)
	}
	for _, c := range confs {
		if err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// drainIDs takes every message out of queue and counts each message id.
func drainIDs(t *testing.T, queue string, into map[string]int) {
	t.Helper()
	ch := brokertest.Channel(t)
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
		into[d.MessageId]++
	}
}

// declareQueues declares durable classic queues deleted at cleanup.
func declareQueues(t *testing.T, names ...string) {
	t.Helper()
	ch := brokertest.Channel(t)
	for _, q := range names {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.DeleteQueuesAtCleanup(t, names...)
}

// checkLedger checks that every id is in got at least once, and reports
// how many were duplicated.
func checkLedger(t *testing.T, ids []string, got map[string]int) (dups int) {
	t.Helper()
	lost := 0
	for _, id := range ids {
		switch n := got[id]; {
		case n == 0:
			lost++
		case n > 1:
			dups += n - 1
		}
	}
	if lost > 0 || len(got) != len(ids) {
		t.Errorf("lost %d of %d jobs; %d distinct ids found", lost, len(ids), len(got))
	}
	return dups
}

// TestDLQReplayKilledLosesNothing kills a replay with SIGKILL half-way:
// every job is then in the dead-letter queue or in its origin (both at
// worst), and a second replay finishes the move.
func TestDLQReplayKilledLosesNothing(t *testing.T) {
	origin := brokertest.Name(t, "work")
	dlq := origin + ".dlq"
	declareQueues(t, origin, dlq)
	const n = 2000
	ids := parkJobs(t, dlq, origin, n)

	cmd, out := warrenProcess(t, "dlq", "replay", dlq, "--rate", "1000", "--yes")
	testkit.WaitDepth(t, origin, n/4, 30*time.Second)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if moved := brokertest.Depth(t, origin); moved >= n {
		t.Fatalf("the replay finished (%d moved) before it was killed; output:\n%s", moved, out)
	}
	// The broker returns the killed process's unacked deliveries when
	// it sees its connection close.
	deadline := time.Now().Add(30 * time.Second)
	for brokertest.Depth(t, dlq)+brokertest.Depth(t, origin) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("killed with %d in the origin, %d in the dead-letter queue", brokertest.Depth(t, origin), brokertest.Depth(t, dlq))

	// Nothing lost between the two queues.
	code, stdout, stderr := warren(t, "dlq", "replay", dlq, "--yes")
	if code != 0 {
		t.Fatalf("second replay: exit %d\n%s%s", code, stdout, stderr)
	}
	if d := brokertest.Depth(t, dlq); d != 0 {
		t.Errorf("%d jobs left in the dead-letter queue after the second replay", d)
	}
	got := map[string]int{}
	drainIDs(t, origin, got)
	dups := checkLedger(t, ids, got)
	t.Logf("lost 0 of %d; %d replayed twice (acked after the kill's last confirm)", n, dups)
}

// TestDLQReplaysAtOnceLoseNothing runs two replays of one queue at the
// same time: they share its jobs, and every job moves once.
func TestDLQReplaysAtOnceLoseNothing(t *testing.T) {
	origin := brokertest.Name(t, "work")
	dlq := origin + ".dlq"
	declareQueues(t, origin, dlq)
	const n = 3000
	ids := parkJobs(t, dlq, origin, n)

	var wg sync.WaitGroup
	results := make([]struct {
		err error
		out *bytes.Buffer
	}, 2)
	for i := range results {
		cmd, out := warrenProcess(t, "--json", "dlq", "replay", dlq, "--yes")
		results[i].out = out
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i].err = cmd.Wait()
		}()
	}
	wg.Wait()
	moved := 0
	for i, r := range results {
		var s struct {
			Moved  []json.RawMessage
			Failed []json.RawMessage
		}
		if r.err != nil || json.Unmarshal(r.out.Bytes(), &s) != nil {
			t.Fatalf("replay %d: %v\n%s", i, r.err, r.out)
		}
		if len(s.Failed) != 0 {
			t.Errorf("replay %d: %d failed", i, len(s.Failed))
		}
		moved += len(s.Moved)
	}
	if moved != n {
		t.Errorf("the replays moved %d jobs together, want %d", moved, n)
	}
	if d := brokertest.Depth(t, dlq); d != 0 {
		t.Errorf("%d jobs left in the dead-letter queue", d)
	}
	got := map[string]int{}
	drainIDs(t, origin, got)
	if dups := checkLedger(t, ids, got); dups != 0 {
		t.Errorf("%d jobs moved twice", dups)
	}
}

// TestDLQReplayToMissingOriginKeepsTheJob replays jobs of two origins, one
// of which no longer exists: those fail, named, and stay parked.
func TestDLQReplayToMissingOriginKeepsTheJob(t *testing.T) {
	origin, gone := brokertest.Name(t, "work"), brokertest.Name(t, "gone")
	dlq := origin + ".dlq"
	declareQueues(t, origin, dlq)
	kept := parkJobs(t, dlq, gone, 2)
	ids := parkJobs(t, dlq, origin, 3)

	code, stdout, stderr := warren(t, "dlq", "replay", dlq, "--yes")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (some failed)\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "moved 3, skipped 0, failed 2") {
		t.Errorf("summary: %s", stdout)
	}
	for _, id := range kept {
		if !strings.Contains(stderr, "not moved: "+id) {
			t.Errorf("failure of %s not reported:\n%s", id, stderr)
		}
	}
	if !strings.Contains(stderr, "unroutable") {
		t.Errorf("the failure does not say why:\n%s", stderr)
	}
	left := map[string]int{}
	drainIDs(t, dlq, left)
	checkLedger(t, kept, left)
	moved := map[string]int{}
	drainIDs(t, origin, moved)
	checkLedger(t, ids, moved)
}

// runChild runs the CLI when the test binary was started by
// warrenProcess, and reports whether it did.
func runChild() (code int, ok bool) {
	if os.Getenv(childEnv) != "1" {
		return 0, false
	}
	ctx := context.Background()
	return run(ctx, os.Args[1:], os.Stdout, os.Stderr), true
}

// TestDLQReplayForgetsCallersGone: a replayed request whose caller waited
// on direct reply-to or on a reply queue of its own (amq.gen-…) is replayed
// without reply_to, since that caller is gone; one naming a durable reply
// queue keeps it, and so gets its reply there.
func TestDLQReplayForgetsCallersGone(t *testing.T) {
	origin := brokertest.Name(t, "work")
	dlq := origin + ".dlq"
	declareQueues(t, origin, dlq)
	ctx := brokertest.Context(t, time.Minute)
	pub, closePub := dialSender(t, ctx)
	defer closePub()
	want := map[string]string{} // job id -> reply_to after the replay
	now := time.Now()
	for replyTo, kept := range map[string]string{
		broker.DirectReplyTo + ".g1h2AA5yZXBseUAxNjE0NDQ2MAAAAAQAAAAAY5GHNA==": "",
		broker.ServerNamedPrefix + "Xk2vJ3pQ9nL1aT8cR4sW7w":                    "",
		"trip.replies": "trip.replies",
	} {
		env, err := broker.NewEnvelope(broker.Job{Type: "authorise", ReplyTo: replyTo})
		if err != nil {
			t.Fatal(err)
		}
		env.Failure = &broker.Failure{Error: "down", Class: "error", FirstFailedAt: now, FailedAt: now,
			Origin: broker.Origin{RoutingKey: origin, Queue: origin}}
		if err := pub.Publish(ctx, broker.KindDeadLetter, env, "", dlq); err != nil {
			t.Fatal(err)
		}
		want[env.ID] = kept
	}
	if code, stdout, stderr := warren(t, "dlq", "replay", dlq, "--yes"); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	ch := brokertest.Channel(t)
	for range want {
		d, ok, err := ch.Get(origin, true)
		if err != nil || !ok {
			t.Fatalf("get a replayed job: ok %v, %v", ok, err)
		}
		if w, found := want[d.MessageId]; !found || d.ReplyTo != w {
			t.Errorf("job %s replayed with reply_to %q, want %q", d.MessageId, d.ReplyTo, w)
		}
	}
}
