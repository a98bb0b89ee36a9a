package main

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		line := out.String()
		if !strings.HasPrefix(line, "warren ") || !strings.HasSuffix(line, runtime.Version()+"\n") || strings.Count(line, "\n") != 1 {
			t.Errorf("%v printed %q, want one line: warren VERSION [commit ...] %s", args, line, runtime.Version())
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--json", "version"}, &out, &errb); code != 0 {
		t.Fatalf("--json version: exit %d: %s", code, errb.String())
	}
	var v map[string]any
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("--json version printed %q: %v", out.String(), err)
	}
	if v["version"] != 1.0 || v["go"] != runtime.Version() || v["warren"] == "" {
		t.Errorf("--json version = %v", v)
	}
}

func TestBuildInfoString(t *testing.T) {
	b := buildInfo{Warren: "v1.2.3", Commit: "0123456789abcdef0123", Time: "2026-01-02T03:04:05Z", Modified: true, Go: "go1.24.1"}
	if got, want := b.String(), "warren v1.2.3 commit 0123456789ab+modified (2026-01-02T03:04:05Z) go1.24.1"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := (buildInfo{Warren: "(devel)", Go: "go1.24.1"}).String(), "warren (devel) go1.24.1"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
