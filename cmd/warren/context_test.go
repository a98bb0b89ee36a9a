package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrenmq/warren/internal/brokertest"
)

// cli runs the CLI in-process without a --url of its own.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestContexts(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "sub", "config.yaml")
	t.Setenv("WARREN_CONFIG", cfg)
	for _, name := range []string{"WARREN_URL", "WARREN_AMQP_URL", "AMQP_URL", "WARREN_MANAGEMENT_URL", "WARREN_TOPOLOGY"} {
		t.Setenv(name, "")
	}
	const secret = "s3cret-pw"
	url := brokertest.URL(t)
	q := brokertest.Queue(t, "ctx", nil)

	if code, out, _ := cli(t, "context", "ls"); code != 0 || !strings.Contains(out, "no contexts") {
		t.Fatalf("ls of no file: exit %d %q", code, out)
	}
	if code, out, errOut := cli(t, "context", "add", "local", "--url", url); code != 0 || !strings.Contains(out, "(current)") {
		t.Fatalf("add: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := cli(t, "context", "add", "far", "--url", "amqp://ops:"+secret+"@127.0.0.1:1/", "--management-url", "http://ops:"+secret+"@127.0.0.1:1"); code != 0 {
		t.Fatalf("add far: %s", errOut)
	}
	if fi, err := os.Stat(cfg); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v, mode %v; want 0600", err, fi)
	}
	code, out, _ := cli(t, "context", "ls")
	if code != 0 || !strings.Contains(out, "\n*") || !strings.Contains(out, "far") || strings.Contains(out, secret) {
		t.Errorf("ls (exit %d):\n%s", code, out)
	}
	if i := strings.Index(out, "\n*"); i < 0 || !strings.HasPrefix(strings.Fields(out[i:])[1], "local") {
		t.Errorf("ls marks the wrong context current:\n%s", out)
	}
	code, out, _ = cli(t, "context", "show", "far")
	if code != 0 || !strings.Contains(out, "amqp://ops:xxxxx@") || strings.Contains(out, secret) {
		t.Errorf("show far (exit %d):\n%s", code, out)
	}

	// The current context gives the URL.
	if code, out, errOut := cli(t, "queue", "peek", q); code != 0 || !strings.Contains(out, "no ready job") {
		t.Errorf("peek through the current context: exit %d\n%s%s", code, out, errOut)
	}
	// --context picks another for one command: its broker does not answer.
	if code, _, errOut := cli(t, "--context", "far", "queue", "peek", q); code == 0 || strings.Contains(errOut, secret) {
		t.Errorf("--context far: exit %d, stderr %q", code, errOut)
	}
	// --url wins over the context.
	if code, _, errOut := cli(t, "--context", "far", "--url", url, "queue", "peek", q); code != 0 {
		t.Errorf("--url over --context: exit %d %s", code, errOut)
	}
	// WARREN_URL wins over the context.
	t.Setenv("WARREN_URL", url)
	if code, _, errOut := cli(t, "--context", "far", "queue", "peek", q); code != 0 {
		t.Errorf("WARREN_URL over --context: exit %d %s", code, errOut)
	}
	t.Setenv("WARREN_URL", "")

	if code, out, _ := cli(t, "context", "use", "far"); code != 0 || !strings.Contains(out, "now using context far") {
		t.Errorf("use far: exit %d %q", code, out)
	}
	if code, _, _ := cli(t, "queue", "peek", q); code == 0 {
		t.Error("peek through the far context succeeded")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--context", "nope", "queue", "peek", q}, `no context "nope"`},
		{[]string{"context", "use", "nope"}, "far, local"},
		{[]string{"context", "add", "x"}, "--url is required"},
	} {
		if code, _, errOut := cli(t, c.args...); code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q lacks %q", c.args, code, errOut, c.want)
		}
	}
	if code, _, errOut := cli(t, "context", "rm", "far"); code != 0 {
		t.Fatalf("rm: %s", errOut)
	}
	c, err := loadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&cliConfig{Contexts: map[string]contextConfig{"local": {URL: url}}}, c); diff != "" {
		t.Errorf("config after rm (-want +got):\n%s", diff)
	}
}

func TestContextConfigErrors(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	t.Setenv("WARREN_CONFIG", cfg)
	if err := os.WriteFile(cfg, []byte("current_context: a\ncontexts:\n  a:\n    url: amqp://x/\n    mgmt_url: http://x/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := cli(t, "queue", "peek", "q")
	if code == 0 || !strings.Contains(errOut, cfg) || !strings.Contains(errOut, "line 5") || !strings.Contains(errOut, "mgmt_url") {
		t.Errorf("unknown key: exit %d, stderr %q; want the file, line 5 and the key", code, errOut)
	}
}

func TestContextPathFromXDG(t *testing.T) {
	t.Setenv("WARREN_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", "/x/y")
	if p, err := configPath(); err != nil || p != "/x/y/warren/config.yaml" {
		t.Errorf("configPath = %q, %v", p, err)
	}
	t.Setenv("WARREN_CONFIG", "/a/b.yaml")
	if p, _ := configPath(); p != "/a/b.yaml" {
		t.Errorf("configPath with WARREN_CONFIG = %q", p)
	}
}
