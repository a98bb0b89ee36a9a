package main

import (
	"os"
	"strings"
	"testing"

	"github.com/warrenmq/warren/internal/brokertest"
)

// TestNoANSIEscapes: with NO_COLOR set, and without it off a terminal,
// nothing warren prints (logs at debug, the stats and queue tables, errors)
// holds an ANSI escape.
func TestNoANSIEscapes(t *testing.T) {
	path, _ := writeTopology(t)
	if code, _, errOut := warren(t, "topology", "apply", "-f", path); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	mgmtURL := brokertest.ManagementURL(t)
	for _, noColorEnv := range []string{"1", ""} {
		t.Run("NO_COLOR="+noColorEnv, func(t *testing.T) {
			t.Setenv("NO_COLOR", noColorEnv)
			for _, args := range [][]string{
				{"--log-level", "debug", "stats", "-f", path, "--management-url", mgmtURL},
				{"--log-level", "debug", "queue", "ls", "-f", path, "--management-url", mgmtURL},
				{"--log-level", "debug", "queue", "ls", "-f", path, "--management-url", "http://127.0.0.1:1"},
				{"--log-level", "debug", "job", "publish", "--queue", brokertest.Name(t, "missing"), "--type", "x"},
			} {
				_, out, errOut := warren(t, args...)
				if strings.Contains(out+errOut, "\x1b[") {
					t.Errorf("%v printed an ANSI escape:\n%q\n%q", args, out, errOut)
				}
			}
		})
	}
	t.Setenv("NO_COLOR", "1")
	if !noColor(os.Stdout) {
		t.Error("noColor(os.Stdout) with NO_COLOR set = false")
	}
}
