package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

type statsOutput struct {
	Version int
	Vhost   string
	Queues  []struct {
		Name            string
		Exists          bool
		Ready, Unacked  int64
		DeadLetterQueue string `json:"dead_letter_queue"`
		DeadLettered    *int64 `json:"dead_lettered"`
		Consumers       int64
		BreakersOpen    int64 `json:"breakers_open"`
	}
}

func TestStatsCountsPublishedJobs(t *testing.T) {
	path, n := writeTopology(t)
	if code, out, errOut := warren(t, "topology", "apply", "-f", path); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	for typ, count := range map[string]string{"email.send": "3", "report.render": "2"} {
		if code, out, errOut := warren(t, "publish", "-f", path, "--type", typ, "--count", count); code != 0 {
			t.Fatalf("publish: exit %d\n%s%s", code, out, errOut)
		}
	}

	// The management API refreshes its counts every 5 seconds by default.
	mgmtURL := brokertest.ManagementURL(t)
	var res statsOutput
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, errOut := warren(t, "--json", "stats", "-f", path, "--management-url", mgmtURL)
		if code != 0 {
			t.Fatalf("stats: exit %d\n%s%s", code, out, errOut)
		}
		res = statsOutput{}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("stats --json is not JSON: %v\n%s", err, out)
		}
		if len(res.Queues) == 4 && res.Queues[0].Ready == 3 && res.Queues[1].Ready == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never showed the published jobs: %+v", res)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if res.Version != 1 || res.Vhost != "/" {
		t.Errorf("version %d vhost %q", res.Version, res.Vhost)
	}
	wantNames := []string{n.Queue, n.Other, n.Queue + ".dlq", n.Other + ".dlq"}
	for i, q := range res.Queues {
		if q.Name != wantNames[i] || !q.Exists || q.Unacked != 0 || q.Consumers != 0 {
			t.Errorf("row %d: %+v, want queue %s", i, q, wantNames[i])
		}
	}
	for _, q := range res.Queues[:2] {
		if q.DeadLetterQueue != q.Name+".dlq" || q.DeadLettered == nil || *q.DeadLettered != 0 {
			t.Errorf("work queue %s: dead-letter queue %q, dead-lettered %v", q.Name, q.DeadLetterQueue, q.DeadLettered)
		}
	}
	for _, q := range res.Queues[2:] {
		if q.DeadLettered != nil {
			t.Errorf("dead-letter queue %s has a dead-lettered count", q.Name)
		}
	}

	code, out, _ := warren(t, "stats", "-f", path, "--management-url", mgmtURL)
	if code != 0 {
		t.Fatalf("stats: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "QUEUE") || !strings.Contains(lines[0], "DEAD-LETTERED") {
		t.Fatalf("stats table:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[0] != n.Queue || f[1] != "quorum" || f[2] != "3" || f[3] != "0" || f[4] != "0" {
		t.Errorf("row of %s: %q", n.Queue, lines[1])
	}
	if !strings.HasPrefix(lines[5], "delay cascade: ") {
		t.Errorf("no delay cascade line after the table:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour codes in output that is not a terminal:\n%q", out)
	}

	// Without -f: every queue but warren's.
	code, out, _ = warren(t, "--json", "stats", "--management-url", mgmtURL)
	res = statsOutput{}
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("stats without -f: exit %d, %v", code, err)
	}
	var found bool
	for _, q := range res.Queues {
		if strings.HasPrefix(q.Name, "warren.") {
			t.Errorf("warren's own queue %s listed", q.Name)
		}
		if q.Name == n.Queue {
			found = q.DeadLetterQueue == n.Queue+".dlq" && q.DeadLettered != nil
		}
	}
	if !found {
		t.Errorf("queue %s missing, or without its dead-letter queue, in %+v", n.Queue, res.Queues)
	}
}

// TestStatsBreakerColumn: a pool holding a queue's breaker marker (as a
// pool whose breaker is open does) shows in the queue's row, in --json
// and in the table; once it lets go, the row shows none.
func TestStatsBreakerColumn(t *testing.T) {
	path, n := writeTopology(t)
	if code, out, errOut := warren(t, "topology", "apply", "-f", path); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	conn, err := broker.Dial(brokertest.Context(t, 10*time.Second), []string{brokertest.URL(t)}, broker.WithName(brokertest.ConnName(t, "breaker")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, release := context.WithCancel(context.Background())
	held := make(chan struct{})
	go func() {
		defer close(held)
		broker.HoldBreakerMarker(ctx, conn, n.Queue)
	}()
	defer func() { release(); <-held }()

	mgmtURL := brokertest.ManagementURL(t)
	open := func() int64 {
		code, out, errOut := warren(t, "--json", "stats", "-f", path, "--management-url", mgmtURL)
		if code != 0 {
			t.Fatalf("stats: exit %d\n%s%s", code, out, errOut)
		}
		var res statsOutput
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("stats --json is not JSON: %v\n%s", err, out)
		}
		for _, q := range res.Queues {
			if q.Name == n.Queue {
				return q.BreakersOpen
			}
		}
		t.Fatalf("queue %s not listed:\n%s", n.Queue, out)
		return 0
	}
	// The management API refreshes its counts every 5 seconds by default.
	waitStats(t, "the open breaker in stats", func() bool { return open() == 1 })
	code, out, _ := warren(t, "stats", "-f", path, "--management-url", mgmtURL)
	if code != 0 {
		t.Fatalf("stats: exit %d", code)
	}
	lines := strings.Split(out, "\n")
	if !strings.Contains(lines[0], "BREAKER") || !strings.HasPrefix(lines[1], n.Queue+" ") || !strings.HasSuffix(lines[1], "  open 1/1") {
		t.Errorf("table does not show the open breaker:\n%s", out)
	}
	release()
	<-held
	waitStats(t, "the breaker gone from stats", func() bool { return open() == 0 })
}

// waitStats polls cond until it holds, for up to 30s.
func waitStats(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestStatsMissingQueue(t *testing.T) {
	path, n := writeTopology(t) // not applied
	code, out, errOut := warren(t, "stats", "-f", path, "--management-url", brokertest.ManagementURL(t))
	if code != 0 {
		t.Fatalf("stats: exit %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[1], n.Queue+" ") || !strings.HasSuffix(lines[1], " missing: run warren topology apply") {
		t.Errorf("missing queue not reported:\n%s", out)
	}
}

func TestPrintStatsColour(t *testing.T) {
	five, zero := int64(5), int64(0)
	rows := []statsRow{
		{Name: "emails", Type: "quorum", Exists: true, Ready: 12, DeadLetterQueue: "emails.dlq", DeadLettered: &five, Rates: &statsRate{Publish: 2.5}, BreakersOpen: 2},
		{Name: "reports", Type: "classic", Exists: true, DeadLetterQueue: "reports.dlq", DeadLettered: &zero, Consumers: 1, BreakersOpen: 1},
		{Name: "sms", Type: "classic", Exists: true, DeadLetterQueue: "sms.dlq", DeadLettered: &zero, Consumers: 3},
		{Name: "a-rather-long-queue-name", Exists: false},
	}
	var plain, colour strings.Builder
	printStats(&plain, rows, false)
	printStats(&colour, rows, true)
	if strings.Contains(plain.String(), "\x1b") {
		t.Errorf("colour without colour:\n%s", plain.String())
	}
	for _, want := range []string{styleRed + "5" + styleReset, styleBold + "QUEUE", styleYellow + "missing", styleRed + "open 2/2", styleYellow + "open 1/2"} {
		if !strings.Contains(colour.String(), want) {
			t.Errorf("coloured table lacks %q:\n%q", want, colour.String())
		}
	}
	stripped := strings.NewReplacer(styleRed, "", styleBold, "", styleYellow, "", styleReset, "").Replace(colour.String())
	if stripped != plain.String() {
		t.Errorf("colour changes the layout:\n%s\nvs\n%s", stripped, plain.String())
	}
	want := `QUEUE                     TYPE     READY  UNACKED  DEAD-LETTERED  QUARANTINED  CONSUMERS  PUBLISH/S  DELIVER/S  ACK/S  BREAKER
emails                    quorum      12        0              5            -          0        2.5        0.0    0.0  open 2/2
reports                   classic      0        0              0            -          1          -          -      -  open 1/2
sms                       classic      0        0              0            -          3          -          -      -  -
a-rather-long-queue-name  missing: run warren topology apply
`
	if plain.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", plain.String(), want)
	}
}
