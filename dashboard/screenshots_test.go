package dashboard

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/browsertest"
	"github.com/warrenmq/warren/worker"
)

var screenshotDir = flag.String("screenshots", "", "write the dashboard's screenshots (PNG) to this directory, relative to the module's root (make screenshots: docs/dashboard)")

// screenshotPages are the pages docs/dashboard.md shows in w: file
// name, path and <h1>.
func screenshotPages(w *dlqWorld) []struct{ name, path, h1 string } {
	job := w.idsOf("email.send")[0]
	return []struct{ name, path, h1 string }{
		{"overview", "/", "Overview"},
		{"queue", "/queues/" + w.work, "Queue " + w.work},
		{"dead-letters", "/dlq", "Dead letters"},
		{"dlq-queue", "/dlq/" + w.dlq, w.dlq},
		{"dlq-job", "/dlq/" + w.dlq + "/jobs/" + job, "Job " + job},
		{"topology", "/topology", "Topology"},
		{"workers", "/workers", "Workers"},
	}
}

// TestScreenshots renders the main pages at 1280 and 390 px, on a private
// virtual host with jobs parked, and writes a PNG of each: to -screenshots
// (make screenshots), else to a temporary directory, so that without the
// flag it still checks every page renders in a browser without a problem.
func TestScreenshots(t *testing.T) {
	dir := *screenshotDir
	switch {
	case dir == "":
		dir = t.TempDir()
	case !filepath.IsAbs(dir):
		dir = filepath.Join("..", dir) // the test runs in dashboard/
	}
	w := newDLQWorld(t)
	runWorker(t, w)
	for _, size := range []browsertest.Size{browsertest.Desktop, browsertest.Phone} {
		t.Run(fmt.Sprint(size.Width), func(t *testing.T) {
			b := browserOn(t, w.srv, size)
			for _, p := range screenshotPages(w) {
				if status := b.Navigate(w.srv.URL + p.path); status != http.StatusOK {
					t.Fatalf("GET %s: status %d", p.path, status)
				}
				if got := b.Text("main h1"); got != p.h1 {
					t.Fatalf("GET %s: <h1> %q, want %q", p.path, got, p.h1)
				}
				// A cell squeezed to a sliver shows its text a letter a line
				// (a stylesheet rule meant for something else, say).
				if thin := browsertest.Eval[[]string](b, `[...document.querySelectorAll('main td, main th')].filter(c => c.innerText.trim().length > 3 && c.getBoundingClientRect().width < 24).map(c => c.innerText.trim())`); len(thin) > 0 {
					t.Errorf("GET %s at %d px: cells too narrow for their text: %q", p.path, size.Width, thin)
				}
				path := filepath.Join(dir, fmt.Sprintf("%s-%d.png", p.name, size.Width))
				b.Screenshot(path)
				if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
					t.Fatalf("screenshot %s: %v", path, err)
				}
				if *screenshotDir != "" {
					t.Logf("wrote %s", path)
				}
			}
		})
	}
}

// runWorker runs a worker pool on w's work queue until the test ends, on a
// connection that says what it consumes, as a worker daemon's does: the
// workers page shows it.
func runWorker(t *testing.T, w *dlqWorld) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := broker.Dial(ctx, []string{w.amqpURL}, broker.WithName("email-worker"),
		broker.WithClientProperty("queues", w.work), broker.WithClientProperty("concurrency", 16))
	if err != nil {
		t.Fatal(err)
	}
	mux := worker.NewMux()
	mux.Handle("email.send", worker.HandlerFunc(func(context.Context, *worker.Job) error { return nil }))
	pool, err := worker.NewPool(conn, w.topo, mux, worker.WithQueue(w.work, worker.Concurrency(16)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker pool: %v", err)
		}
		conn.Close()
	})
	// The management API lists a connection and its consumers within its
	// statistics interval (5 s by default).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		_, body := get(t, w.srv.URL+"/workers", nil)
		if strings.Contains(body, "email-worker") && strings.Contains(body, `href="/queues/`+w.work+`"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workers page does not list the worker after 30s:\n%s", body)
		}
	}
}
