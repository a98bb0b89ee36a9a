package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runLocal runs the CLI in-process with args as given (no --url added).
func runLocal(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestExitStatuses: one case per class of the table in docs/cli.md (the
// broker's: call's timeout and plan's drift, in call_test.go and
// plan_test.go).
func TestExitStatuses(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"unknown flag", []string{"--nope"}, exitUsage, "unknown flag"},
		{"unknown command", []string{"frob"}, exitUsage, "unknown command"},
		{"unknown subcommand", []string{"dlq", "frob"}, exitUsage, "unknown command"},
		{"missing argument", []string{"dlq", "list"}, exitUsage, "arg"},
		{"bad flag value", []string{"dlq", "list", "q", "--limit", "many"}, exitUsage, "--limit"},
		{"bad --timeout", []string{"--timeout", "-1s", "dlq", "list", "q"}, exitUsage, "--timeout"},
		{"no topology file", []string{"topology", "validate"}, exitUsage, "-f FILE"},
		{"failure", []string{"topology", "validate", "-f", missing}, exitFailure, "missing.yaml"},
		{"help", []string{"dlq", "--help"}, exitOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runLocal(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.want)
			}
		})
	}
}

// TestJSONErrors: with --json, a command that fails before it has a
// result prints its error as a document on stdout.
func TestJSONErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--json", "--nope"},
		{"--json", "dlq", "list"},
		{"--json", "topology", "validate", "-f", filepath.Join(t.TempDir(), "missing.yaml")},
	} {
		code, out, errOut := runLocal(t, args...)
		var doc struct {
			Version int `json:"version"`
			Error   struct {
				Message string `json:"message"`
				Code    int    `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Version != 1 || doc.Error.Code != code || doc.Error.Message == "" {
			t.Errorf("%v: exit %d, stdout %q (%v), stderr %q; want {\"version\":1,\"error\":{\"message\",\"code\":%d}}", args, code, out, err, errOut, code)
		}
	}
}

func TestLogLevelRejectsUnknownValues(t *testing.T) {
	code, _, errOut := runLocal(t, "--log-level", "loud", "dlq", "list", "q")
	if code != exitUsage || !strings.Contains(errOut, "--log-level") || !strings.Contains(errOut, "debug, info, warn or error") {
		t.Errorf("--log-level loud: exit %d, %q; want %d and the valid levels", code, errOut, exitUsage)
	}
	t.Setenv("WARREN_LOG_LEVEL", "verbose")
	code, _, errOut = runLocal(t, "dlq", "list", "q")
	if code != exitUsage || !strings.Contains(errOut, "WARREN_LOG_LEVEL") {
		t.Errorf("WARREN_LOG_LEVEL=verbose: exit %d, %q; want %d naming the variable", code, errOut, exitUsage)
	}
	code, _, errOut = runLocal(t, "--log-level", "info", "topology", "validate", "-f", filepath.Join(t.TempDir(), "x.yaml"))
	if code != exitFailure || strings.Contains(errOut, "log-level") {
		t.Errorf("a valid --log-level over a bad WARREN_LOG_LEVEL: exit %d, %q", code, errOut)
	}
}

// TestTimeoutIsTheWholeCommand: --timeout bounds connecting too, and a
// command stopped by it exits 3.
func TestTimeoutIsTheWholeCommand(t *testing.T) {
	// A listener that accepts and never answers: the AMQP handshake waits.
	start := time.Now()
	code, _, errOut := runLocal(t, "--url", "amqp://guest:guest@"+silentListener(t)+"/", "--timeout", "300ms", "dlq", "list", "q")
	if code != exitPartial || !strings.Contains(errOut, "--timeout") {
		t.Errorf("exit %d, %q; want %d and --timeout named", code, errOut, exitPartial)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v for a --timeout of 300ms", d)
	}
}

// silentListener accepts connections and never writes; closed at cleanup.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}
