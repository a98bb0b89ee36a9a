package topology

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/topology")

const testdata = "../testdata/topology"

// TestGolden parses every file in testdata/topology/valid and .../invalid
// and compares the rendered problems with the file's .golden file. For the
// valid files it also compares a listing of the resolved topology with the
// .resolved file (without the delay levels, which TestDeriveDelays covers).
// Run with -update to rewrite them, and review the diff.
func TestGolden(t *testing.T) {
	for _, dir := range []string{"valid", "invalid"} {
		files, err := filepath.Glob(filepath.Join(testdata, dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no files in %s/%s", testdata, dir)
		}
		for _, path := range files {
			name := strings.TrimSuffix(filepath.Base(path), ".yaml")
			t.Run(dir+"/"+name, func(t *testing.T) {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				top, err := Parse(filepath.Base(path), data)
				var problems Problems
				switch {
				case dir == "valid" && err != nil:
					t.Fatalf("Parse failed:\n%v", err)
				case dir == "invalid" && err == nil:
					t.Fatal("Parse succeeded, want problems")
				case dir == "invalid" && !errors.As(err, &problems):
					t.Fatalf("Parse returned %T, want Problems: %v", err, err)
				case dir == "valid":
					problems = top.Warnings
				}
				got := ""
				if len(problems) > 0 {
					got = problems.Error() + "\n"
				}
				golden(t, strings.TrimSuffix(path, ".yaml")+".golden", got)
				if top != nil {
					golden(t, strings.TrimSuffix(path, ".yaml")+".resolved", listing(top))
				}
			})
		}
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

var delayLevel = regexp.MustCompile(`^warren\.delay\.\d\d$`)

// listing writes a topology one entity per line, for review.
func listing(t *Topology) string {
	var b strings.Builder
	for _, x := range t.Exchanges {
		if delayLevel.MatchString(x.Name) {
			continue
		}
		fmt.Fprintf(&b, "exchange %s %s durable=%t auto_delete=%t internal=%t%s%s\n",
			x.Name, x.Kind, x.Durable, x.AutoDelete, x.Internal, tableText(x.Args), derivedText(x.Derived, x.Pos))
	}
	for _, q := range t.Queues {
		if delayLevel.MatchString(q.Name) {
			continue
		}
		fmt.Fprintf(&b, "queue %s %s durable=%t auto_delete=%t exclusive=%t%s%s\n",
			q.Name, q.Type, q.Durable, q.AutoDelete, q.Exclusive, tableText(q.Args), derivedText(q.Derived, q.Pos))
		if q.DeadLetterExchange != "" || q.DeadLetterQueue != "" {
			fmt.Fprintf(&b, "  dead letters: exchange=%q key=%q queue=%q\n", q.DeadLetterExchange, q.DeadLetterRoutingKey, q.DeadLetterQueue)
		}
		if q.Retry != nil {
			fmt.Fprintf(&b, "  retry: %+v\n", *q.Retry)
		}
	}
	for _, x := range t.Bindings {
		if delayLevel.MatchString(x.Exchange) {
			continue
		}
		fmt.Fprintf(&b, "binding %s%s%s\n", BindingName(x), tableText(x.Args), derivedText(x.Derived, x.Pos))
	}
	for _, jt := range t.JobTypes() {
		r := t.Routes[jt]
		fmt.Fprintf(&b, "route %s -> %s %q at %s\n", jt, r.Exchange, r.RoutingKey, r.Pos)
		if r.Retry != nil {
			fmt.Fprintf(&b, "  retry: %+v\n", *r.Retry)
		}
		for _, q := range t.WorkQueues() {
			if p := t.RetryPolicy(q.Name, jt); p != *q.Retry {
				fmt.Fprintf(&b, "  retry in %s: %+v\n", q.Name, p)
			}
		}
	}
	return b.String()
}

func tableText(args Table) string {
	if len(args) == 0 {
		return ""
	}
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%#v", k, args[k])
	}
	return " {" + strings.Join(parts, ", ") + "}"
}

func derivedText(derived bool, p Pos) string {
	if derived {
		return " (derived)"
	}
	return " at " + p.String()
}
