package main

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/brokertest"
)

// The password of every URL below; see broker/secrets_test.go. Its "#"
// must be percent-encoded; written as is, it cuts the URL short in the
// middle of the password, and neither half may be shown.
const (
	secretHead = "Platypus4"
	secretTail = "Echidna8"
	secret     = secretHead + "#" + secretTail
)

// runCaptured runs the CLI with args, logging at debug level, and returns
// its exit code and everything it printed.
func runCaptured(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := run(ctx, append([]string{"--log-level", "debug", "--timeout", "20s"}, args...), &out, &errb)
	return code, out.String() + errb.String()
}

// TestCommandsNeverPrintThePassword runs the commands that connect, to the
// broker (AMQP) or to its management API (plan, stats), with URLs that
// fail in each way, given with --url, WARREN_URL or a deprecated variable
// (WARREN_AMQP_URL, AMQP_URL).
func TestCommandsNeverPrintThePassword(t *testing.T) {
	shared, err := url.Parse(brokertest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	encoded := url.UserPassword("guest", secret).String()
	urls := map[string]string{
		"unreachable":    "amqp://" + encoded + "@127.0.0.1:1/",
		"wrong password": "amqp://" + encoded + "@" + shared.Host + "/", // harmless: the login fails
		"# not encoded":  "amqp://guest:" + secret + "@" + shared.Host + "/",
		"/ not encoded":  "amqp://guest:" + secretHead + "/" + secretTail + "@" + shared.Host + "/",
		"cut short":      "amqp://guest:5672#" + secretTail + "@" + shared.Host + "/",
		"several":        "amqp://" + encoded + "@127.0.0.1:1/,amqp://" + encoded + "@" + shared.Host + "/",
	}
	path, n := writeTopology(t)
	queue := n.Queue + ".dlq" // not declared: nothing here connects
	commands := [][]string{
		{"publish", "--queue", n.Queue, "--type", "x"},
		{"--json", "publish", "--queue", n.Queue, "--type", "x"},
		{"call", "--queue", n.Queue, "--type", "x", "--timeout", "2s"},
		{"topology", "apply", "-f", path},
		{"topology", "plan", "-f", path},
		{"stats", "-f", path},
		{"dlq", "list", queue},
		{"dlq", "replay", queue, "--yes"},
	}
	for name, u := range urls {
		for _, cmd := range commands {
			what := strings.Join(cmd[:2], " ") // the command, not the file's path
			t.Run(name+"/--url/"+what, func(t *testing.T) {
				t.Parallel() // after the environment subtests, which set the environment
				code, out := runCaptured(t, append([]string{"--url", u}, cmd...)...)
				check(t, code, out)
			})
		}
		for _, env := range []string{"WARREN_URL", "WARREN_AMQP_URL", "AMQP_URL"} {
			t.Run(name+"/"+env, func(t *testing.T) {
				for _, other := range []string{"WARREN_URL", "WARREN_AMQP_URL", "AMQP_URL"} {
					t.Setenv(other, "") // an empty variable counts as unset
				}
				t.Setenv(env, u)
				code, out := runCaptured(t, "topology", "apply", "-f", path)
				check(t, code, out)
			})
		}
	}
}

func check(t *testing.T, code int, out string) {
	t.Helper()
	if code == 0 {
		t.Errorf("exit 0, want a failure:\n%s", out)
	}
	for _, s := range []string{secretHead, secretTail} {
		if strings.Contains(out, s) {
			t.Errorf("the password (%q) is printed:\n%s", s, out)
		}
	}
}
