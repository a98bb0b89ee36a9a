package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// warrenIn runs the CLI in-process with stdin.
func warrenIn(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := &globals{stdout: &out, stderr: &errb}
	root := newRoot(g)
	root.SetArgs(append([]string{"--url", brokertest.URL(t)}, args...))
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errb)
	if err := root.ExecuteContext(ctx); err != nil {
		errb.WriteString("warren: " + err.Error() + "\n")
		return 1, out.String(), errb.String()
	}
	return 0, out.String(), errb.String()
}

func payloadOf(t *testing.T, body []byte) any {
	t.Helper()
	var v any
	if err := msgpack.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestJobNounAndOldSpellings: job publish and job call are the commands;
// publish and call keep working.
func TestJobNounAndOldSpellings(t *testing.T) {
	q := brokertest.Queue(t, "noun", nil)
	for _, args := range [][]string{{"job", "publish"}, {"publish"}} {
		code, out, errOut := warren(t, append(args, "--queue", q, "--type", "x")...)
		if code != 0 || !strings.Contains(out, "confirmed") {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	if got := brokertest.Depth(t, q); got != 2 {
		t.Fatalf("queue holds %d jobs, want 2", got)
	}
	for _, args := range [][]string{{"job", "call"}, {"call"}} {
		// Nobody answers: the request is sent and times out (exit 2).
		code, _, errOut := warren(t, append([]string{"--timeout", "300ms"}, append(args, "--queue", q, "--type", "x")...)...)
		if code != exitCallTimeout {
			t.Errorf("%v: exit %d, want %d (timeout)\n%s", args, code, exitCallTimeout, errOut)
		}
	}
	var out, errb bytes.Buffer
	run(context.Background(), []string{"--help"}, &out, &errb)
	if !strings.Contains(out.String(), "job ") || strings.Contains(out.String(), "\n  publish ") {
		t.Errorf("--help should list job, not the old publish:\n%s", out.String())
	}
}

func TestPublishDataFromFileAndStdin(t *testing.T) {
	q := brokertest.Queue(t, "data", nil)
	file := filepath.Join(t.TempDir(), "payload.json")
	if err := os.WriteFile(file, []byte(`{"from":"file"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := warren(t, "job", "publish", "--queue", q, "--type", "x", "--data", "@"+file); code != 0 {
		t.Fatalf("--data @file: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := warrenIn(t, `{"from":"stdin"}`, "job", "publish", "--queue", q, "--type", "x", "--data", "-"); code != 0 {
		t.Fatalf("--data -: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"file", "stdin"} {
		d := brokertest.Get(t, q, 5*time.Second)
		if got := payloadOf(t, d.Body).(map[string]any)["from"]; got != want {
			t.Errorf("payload from %v, want %s", got, want)
		}
	}
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"--data", "@" + filepath.Join(t.TempDir(), "nope.json")}, "no such file"},
		{"", []string{"--data", "@"}, "@FILE"},
		{"{", []string{"--data", "-"}, "--data - (stdin)"},
	} {
		code, _, errOut := warrenIn(t, c.stdin, append([]string{"job", "publish", "--queue", q, "--type", "x"}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q lacks %q", c.args, code, errOut, c.want)
		}
	}
}

func TestPublishExpiration(t *testing.T) {
	q := brokertest.Queue(t, "ttl", nil)
	if code, out, errOut := warren(t, "job", "publish", "--queue", q, "--type", "x", "--expiration", "90s"); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if d := brokertest.Get(t, q, 5*time.Second); d.Expiration != "90000" {
		t.Errorf("expiration = %q, want 90000", d.Expiration)
	}
}

func TestPublishScheduled(t *testing.T) {
	path, n := writeTopology(t)
	if code, _, errOut := warren(t, "topology", "apply", "-f", path); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	at := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339)
	for _, when := range [][]string{{"--in", "1s"}, {"--at", at}} {
		if code, out, errOut := warren(t, append([]string{"job", "publish", "-f", path, "--type", "email.send"}, when...)...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", when, code, out, errOut)
		}
	}
	if got := brokertest.Depth(t, n.Queue); got != 0 {
		t.Errorf("scheduled jobs on the queue at once: %d", got)
	}
	deadline := time.Now().Add(15 * time.Second)
	for brokertest.Depth(t, n.Queue) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the scheduled jobs did not arrive: depth %d", brokertest.Depth(t, n.Queue))
		}
		time.Sleep(200 * time.Millisecond)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--at", "tomorrow"}, "RFC 3339"},
		{[]string{"--at", at, "--in", "1s"}, "one of them"},
		{[]string{"--in", "-1s"}, "negative"},
		{[]string{"--in", "1s", "--expiration", "1m"}, "cannot expire"},
		{[]string{"--expiration", "0s"}, "at least 1ms"},
	} {
		code, _, errOut := warren(t, append([]string{"job", "publish", "-f", path, "--type", "email.send"}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q lacks %q", c.args, code, errOut, c.want)
		}
	}
	code, _, errOut := warren(t, "job", "publish", "--exchange", n.Exchange, "--key", "email.send", "--type", "email.send", "--in", "1s")
	if code == 0 || !strings.Contains(errOut, "--queue Q") {
		t.Errorf("--in with --exchange: exit %d, stderr %q", code, errOut)
	}
}

// TestPublishVersionAndContract: --version sets the warren-version header,
// and with -f a payload that breaks its contract is refused, unsent.
func TestPublishVersionAndContract(t *testing.T) {
	path, n := writeTopology(t)
	contracts := "contracts:\n  types:\n    email.send:\n      versions:\n        1: {schema: {type: object}}\n" +
		"        2: {schema: {type: object, required: [to], properties: {to: {type: string, format: email}}}}\n"
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(contracts); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if code, out, errOut := warren(t, "topology", "apply", "-f", path); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := warren(t, "job", "publish", "-f", path, "--type", "email.send", "--version", "2", "--data", `{"to":"ada"}`)
	if code != 1 || !strings.Contains(out+errOut, "/to: 'ada' is not valid email") {
		t.Fatalf("a payload breaking its contract: exit %d, want 1 naming the field\n%s%s", code, out, errOut)
	}
	code, out, errOut = warren(t, "job", "publish", "-f", path, "--type", "email.send", "--version", "2", "--data", `{"to":"ada@example.com"}`)
	if code != 0 {
		t.Fatalf("a valid payload: exit %d\n%s%s", code, out, errOut)
	}
	d := brokertest.Get(t, n.Queue, 5*time.Second)
	if v := d.Headers[broker.HeaderVersion]; v != int64(2) {
		t.Errorf("the job's %s header: %v (%T), want 2", broker.HeaderVersion, v, v)
	}
	// Nothing else was sent: the refused job is not in the queue.
	if depth := brokertest.Depth(t, n.Queue); depth != 0 {
		t.Errorf("%d more job(s) in the queue, want none: the refused one was sent", depth)
	}
	code, out, errOut = warren(t, "job", "publish", "-f", path, "--type", "email.send", "--version", "2", "--data", `{"to":"ada"}`, "--validate=false")
	if code != 0 {
		t.Fatalf("--validate=false: exit %d\n%s%s", code, out, errOut)
	}
	brokertest.Get(t, n.Queue, 5*time.Second)
}
