package quickstart_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/browsertest"
)

// TestDemoReplayGroupInDashboard is the demo an operator follows: make
// demo's script runs the quickstart (in a namespace of the test's own) and
// shows its periodic job and its circuit breaker (checkSummary), its
// dead letters stay parked, and `warren ui` (the binary the demo built)
// replays one group of them from Chromium. Every job of the group moves
// back to its work queue, every other stays parked, and none is lost or
// doubled.
func TestDemoReplayGroupInDashboard(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	amqpURL := brokertest.URL(t)
	mgmtURL := brokertest.ManagementURL(t)
	ns := fmt.Sprintf("demo-ui-%d.", time.Now().UnixNano())
	work, dlq := ns+"reports", ns+"reports.dlq" // where the demo parks its reports: two groups by error
	t.Cleanup(func() { deleteDemo(t, amqpURL, ns) })

	demo := exec.Command("bash", filepath.Join(root, "scripts", "demo.sh"))
	demo.Dir = root
	demo.Env = append(os.Environ(), "WARREN_URL="+amqpURL, "DEMO_NAMESPACE="+ns, "DEMO_PURGE=no", "JOBS=200", "DEMO_TIMEOUT=120")
	out, err := demo.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/demo.sh: %v\n%s", err, out)
	}
	checkSummary(t, string(out), ns)

	ctx := brokertest.Context(t, 3*time.Minute)
	conn, err := broker.Dial(ctx, []string{amqpURL}, broker.WithName(brokertest.ConnName(t, "demo-ui")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	before := browse(t, ctx, conn, dlq)
	if inWork := browse(t, ctx, conn, work); len(inWork) != 0 {
		t.Fatalf("the demo left %d job(s) in %s; want every job done or parked", len(inWork), work)
	}
	groups := map[string][]string{} // by error, as the page groups them
	for id, e := range before {
		groups[e.FirstLine()] = append(groups[e.FirstLine()], id)
	}
	if len(groups) < 2 {
		t.Fatalf("the demo parked %d job(s) in %s in %d group(s); want at least two groups, to replay one and keep the other", len(before), dlq, len(groups))
	}

	base := serveUI(t, filepath.Join(root, "bin", "warren"), amqpURL, mgmtURL)
	b := browsertest.New(t, browsertest.WithSize(browsertest.Desktop))
	b.Navigate(base + "/dlq")
	b.ClickAndLoad(fmt.Sprintf(`main a[href*=%q]`, url.PathEscape(dlq)))
	b.WaitVisible("tr[data-group]")
	key := b.Attr("tr[data-group]", "data-group") // the largest group comes first
	shown, err := strconv.Atoi(b.Attr("tr[data-group]", "data-count"))
	if err != nil {
		t.Fatal(err)
	}
	want := groups[key]
	slices.Sort(want)
	if shown != len(want) {
		t.Fatalf("the page shows %d job(s) in the group %q; the queue holds %d", shown, key, len(want))
	}
	b.ClickTextInAndLoad("tr[data-group]", key, "Replay group")
	if n, _ := strconv.Atoi(b.Attr("#dry-run", "data-count")); n != len(want) {
		t.Errorf("the dry run would move %d job(s), want the group's %d", n, len(want))
	}
	if after := browse(t, ctx, conn, dlq); len(after) != len(before) {
		t.Fatalf("the dry run changed %s: %d jobs, want %d", dlq, len(after), len(before))
	}
	b.ClickTextAndLoad("Confirm replay")
	b.WaitVisible("#result")
	if got := b.Attr("#result", "data-moved"); got != strconv.Itoa(len(want)) {
		t.Errorf("moved %s, want the group's %d", got, len(want))
	}
	if got := b.Attr("#result", "data-failed"); got != "0" {
		t.Errorf("failed %s, want 0", got)
	}

	// The ledger: the group in the work queue, the rest parked.
	after, inWork := browse(t, ctx, conn, dlq), browse(t, ctx, conn, work)
	moved := slices.Sorted(maps.Keys(inWork))
	if !slices.Equal(moved, want) {
		t.Errorf("the work queue holds %v, want the group %q: %v", moved, key, want)
	}
	for id := range before {
		_, parked := after[id]
		_, back := inWork[id]
		if parked == back {
			t.Errorf("job %s (%q): parked %v, back in %s %v; want exactly one", id, before[id].FirstLine(), parked, work, back)
		}
		if back != slices.Contains(want, id) {
			t.Errorf("job %s (%q) moved %v, but it is %sin the group replayed", id, before[id].FirstLine(), back, map[bool]string{true: "", false: "not "}[slices.Contains(want, id)])
		}
	}
	for id := range after {
		if _, ok := before[id]; !ok {
			t.Errorf("job %s appeared in %s", id, dlq)
		}
	}
}

// checkSummary checks that the demo's output shows what the quickstart is
// built to show besides retries and dead letters: the periodic job's
// ticks, none of them twice, and the reports queue's circuit breaker
// opening on the renderer's outage and closing after it.
func checkSummary(t *testing.T, out, ns string) {
	t.Helper()
	var periodic, breaker string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "periodic "):
			periodic = line
		case strings.HasPrefix(line, "circuit breaker of "+ns+"reports: "):
			breaker = line
		}
	}
	if f := strings.Fields(periodic); len(f) < 2 || f[1] == "0" || !strings.Contains(periodic, "schedule "+ns+"stats-rollup") || !strings.Contains(periodic, " 0 fired twice") {
		t.Errorf("the demo's periodic job: %q; want at least one tick of %sstats-rollup, none fired twice\n%s", periodic, ns, out)
	}
	if !strings.HasPrefix(breaker, "circuit breaker of "+ns+"reports: open at +0s,") || !strings.Contains(breaker, "half-open") || !strings.Contains(breaker[strings.LastIndex(breaker, ", "):], "closed at") {
		t.Errorf("the demo's circuit breaker: %q; want it open, half-open, then closed\n%s", breaker, out)
	}
}

// browse reads queue without taking anything from it: its jobs by id.
func browse(t *testing.T, ctx context.Context, conn *broker.Conn, queue string) map[string]deadletter.Entry {
	t.Helper()
	out := map[string]deadletter.Entry{}
	if _, err := deadletter.Browse(ctx, conn, queue, func(e deadletter.Entry) bool {
		if _, dup := out[e.Envelope.ID]; dup {
			t.Errorf("%s holds job %s twice", queue, e.Envelope.ID)
		}
		out[e.Envelope.ID] = e
		return true
	}); err != nil {
		t.Fatalf("read %s: %v", queue, err)
	}
	return out
}

// serveUI starts `warren ui` on a free port and returns its URL; it stops
// it when the test ends.
func serveUI(t *testing.T, bin, amqpURL, mgmtURL string) string {
	t.Helper()
	cmd := exec.Command(bin, "ui", "--url", amqpURL, "--management-url", mgmtURL, "--listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("warren ui exited: %v\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("warren ui did not stop within 15s of SIGINT\n%s", stderr.String())
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("warren ui printed no address: %v\n%s", err, stderr.String())
	}
	for _, f := range strings.Fields(line) {
		if strings.HasPrefix(f, "http://") {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return strings.TrimRight(f, "/")
		}
	}
	t.Fatalf("warren ui's first line %q holds no http:// address", line)
	return ""
}

// deleteDemo deletes what the demo declared under ns; warren's shared
// entities (warren.*) stay.
func deleteDemo(t *testing.T, amqpURL, ns string) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	for _, q := range []string{"default", "reports", "default.dlq", "reports.dlq", "default.quarantine", "reports.quarantine", "scheduler"} {
		if _, err := ch.QueueDelete(ns+q, false, false, false); err != nil {
			if ch, err = conn.Channel(); err != nil { // a missing queue closes the channel
				t.Errorf("cleanup: %v", err)
				return
			}
		}
	}
	if err := ch.ExchangeDelete(ns+"jobs", false, false); err != nil {
		t.Errorf("cleanup: delete exchange %sjobs: %v", ns, err)
	}
}
