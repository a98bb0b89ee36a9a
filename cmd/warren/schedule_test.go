package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/scheduler"
	"github.com/warrenmq/warren/topology"
)

type scheduleLs struct {
	LeaseQueue string `json:"lease_queue"`
	Schedulers *int
	Schedules  []struct {
		Name      string
		Spec      string
		TimeZone  string `json:"time_zone"`
		Next      []string
		Paused    *bool
		Watermark *string
	}
}

func TestScheduleLsPauseResume(t *testing.T) {
	name := brokertest.Name(t, "nightly")
	lease := brokertest.Name(t, "lease")
	brokertest.DeleteQueuesAtCleanup(t, scheduler.PausedMarker(name), lease)
	path := filepath.Join(t.TempDir(), "topology.yaml")
	file := `version: 1
exchanges:
  jobs: {type: direct}
queues:
  reports: {}
bindings:
  - {exchange: jobs, queue: reports, routing_key: report.build}
routes:
  report.build: {exchange: jobs}
schedules:
  ` + name + `:
    cron: "30 2 * * *"
    time_zone: America/New_York
    type: report.build
    catch_up: 1h
`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	ls := func() scheduleLs {
		t.Helper()
		code, out, errOut := warren(t, "schedule", "ls", "-f", path, "--lease-queue", lease, "--next", "2", "--json")
		if code != 0 {
			t.Fatalf("schedule ls: exit %d\n%s%s", code, out, errOut)
		}
		var got scheduleLs
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if len(got.Schedules) != 1 {
			t.Fatalf("schedules: %+v", got.Schedules)
		}
		return got
	}
	got := ls()
	s := got.Schedules[0]
	if s.Name != name || s.Spec != "30 2 * * *" || s.TimeZone != "America/New_York" || len(s.Next) != 2 {
		t.Errorf("row %+v", s)
	}
	for _, n := range s.Next {
		if !strings.Contains(n, "T02:30:00-0") {
			t.Errorf("next run %s is not at 02:30 New York time", n)
		}
	}
	if s.Paused == nil || *s.Paused {
		t.Errorf("paused %v, want false", s.Paused)
	}
	if got.Schedulers == nil || *got.Schedulers != 0 {
		t.Errorf("schedulers %v, want 0", got.Schedulers)
	}

	if code, out, errOut := warren(t, "schedule", "pause", "-f", path, name); code != 0 || !strings.Contains(out, "paused") {
		t.Fatalf("pause: exit %d\n%s%s", code, out, errOut)
	}
	if p := ls().Schedules[0].Paused; p == nil || !*p {
		t.Errorf("after pause: paused %v", p)
	}
	if code, out, _ := warren(t, "schedule", "pause", name); code != 0 || !strings.Contains(out, "already paused") {
		t.Errorf("pause again: exit %d, %s", code, out)
	}
	if code, out, errOut := warren(t, "schedule", "resume", name, "--json"); code != 0 || !strings.Contains(out, `"changed": true`) {
		t.Fatalf("resume: exit %d\n%s%s", code, out, errOut)
	}
	if p := ls().Schedules[0].Paused; p == nil || *p {
		t.Errorf("after resume: paused %v", p)
	}
	if code, _, errOut := warren(t, "schedule", "pause", "-f", path, "nope"); code != exitUsage || !strings.Contains(errOut, `no schedule "nope"`) {
		t.Errorf("pause of an unknown schedule: exit %d, %s", code, errOut)
	}
	// A scheduler that led and stopped left its token: ls reads how far
	// the schedule is settled.
	runScheduler(t, path, lease)
	if w := ls().Schedules[0].Watermark; w == nil {
		t.Error("no watermark after a scheduler ran")
	}
	// Without the broker the next runs still show.
	code, out, _ := runLocal(t, "--url", "amqp://guest:guest@127.0.0.1:1/", "schedule", "ls", "-f", path)
	if code != 0 || !strings.Contains(out, "02:30:00") || !strings.Contains(out, name) {
		t.Errorf("ls without a broker: exit %d\n%s", code, out)
	}
}

// runScheduler runs the file's schedules until the scheduler leads, then
// stops it.
func runScheduler(t *testing.T, path, lease string) {
	t.Helper()
	top, err := topology.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, []string{brokertest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := scheduler.New(conn, scheduler.FromTopology(top), scheduler.WithLeaseQueue(lease))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	rctx, stop := context.WithCancel(ctx)
	go func() { done <- s.Run(rctx) }()
	// Leading once its first token, with the watermarks, is confirmed.
	for !s.Leading() && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
