package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/brokertest"
)

// lockedBuffer is a bytes.Buffer a server's goroutine writes while the
// test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startUI runs `warren ui` with args until the test ends, and returns the
// URL it prints.
func startUI(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"--url", brokertest.URL(t), "ui", "--management-url", brokertest.ManagementURL(t)}, args...), &out, &errb)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("warren ui stopped with status %d: %s", code, errb.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("warren ui did not stop within 10 s of its context's end")
		}
	})
	re := regexp.MustCompile(`serving (http://\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-done:
			done <- code
			t.Fatalf("warren ui exited with status %d: %s%s", code, out.String(), errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("warren ui printed no URL: %q %q", out.String(), errb.String())
	return ""
}

func TestUIServesAndStops(t *testing.T) {
	u := startUI(t, "--listen", "127.0.0.1:0", "--prefix", "/ui")
	if !strings.HasSuffix(u, "/ui/") {
		t.Errorf("warren ui prints %s, want the prefix /ui/ in it", u)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "<h1>Overview</h1>") {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, body)
	}
	if strings.Contains(string(body), "guest:guest@") {
		t.Error("the dashboard shows the broker's password")
	}
}

func TestUIToken(t *testing.T) {
	t.Setenv(envUIToken, "from-the-env")
	u := startUI(t, "--listen", "127.0.0.1:0")
	for _, c := range []struct {
		auth   string
		status int
	}{{"", http.StatusUnauthorized}, {"Bearer wrong", http.StatusUnauthorized}, {"Bearer from-the-env", http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodGet, u+"api/overview", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("GET /api/overview with %q: %s, want %d", c.auth, resp.Status, c.status)
		}
	}
}

func TestUIRefusesToListenBeyondLoopbackWithoutToken(t *testing.T) {
	t.Setenv(envUIToken, "")
	for _, listen := range []string{":8080", "0.0.0.0:8080", "192.0.2.1:8080"} {
		code, _, stderr := warren(t, "ui", "--listen", listen)
		if code != exitUsage || !strings.Contains(stderr, "--token") || !strings.Contains(stderr, envUIToken) || !strings.Contains(stderr, "127.0.0.1:PORT") {
			t.Errorf("warren ui --listen %s: status %d, %q; want %d saying to pass --token or %s, or listen on loopback", listen, code, stderr, exitUsage, envUIToken)
		}
	}
	if code, _, stderr := warren(t, "ui", "--listen", "nonsense"); code != exitUsage {
		t.Errorf("warren ui --listen nonsense: status %d, %q; want %d", code, stderr, exitUsage)
	}
}
