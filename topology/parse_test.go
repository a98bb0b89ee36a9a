package topology

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// parseProblems parses a file that must fail and returns its problems.
func parseProblems(t *testing.T, file string) Problems {
	t.Helper()
	top, err := Parse("t.yaml", []byte(file))
	if err == nil {
		t.Fatalf("Parse succeeded with warnings %v, want problems", top.Warnings)
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse returned %T (%v), want Problems", err, err)
	}
	return ps
}

// brief renders problems without hints, one string each.
func brief(ps Problems) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		p.Hint = ""
		out[i] = p.String()
	}
	return out
}

func TestFiveMistakes(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testdata, "invalid", "five-mistakes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse("five-mistakes.yaml", data)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse error = %v, want Problems", err)
	}
	if got := len(ps.Errors()); got != 5 {
		t.Errorf("got %d errors, want 5:\n%v", got, ps)
	}
	if got := len(ps.Warnings()); got != 0 {
		t.Errorf("got %d warnings, want none:\n%v", got, ps)
	}
}

func TestQuickstart(t *testing.T) {
	top, err := Load("../examples/quickstart/topology.yaml")
	if err != nil {
		t.Fatalf("Load:\n%v", err)
	}
	if len(top.Warnings) > 0 {
		t.Errorf("warnings:\n%v", top.Warnings)
	}
	for _, jt := range []string{"email.send", "image.resize", "report.render"} {
		if x, key, ok := top.Route(jt); !ok || x != "jobs" || key != jt {
			t.Errorf("Route(%q) = %q, %q, %t", jt, x, key, ok)
		}
	}
	if got := top.RetryPolicy("reports", "report.render").MaxAttempts; got != 3 {
		t.Errorf("report.render in reports: %d attempts, want 3", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	var ps Problems
	if !errors.Is(err, os.ErrNotExist) || errors.As(err, &ps) {
		t.Errorf("Load of a missing file: %v, want a not-exist error", err)
	}
}

// TestParseProblems checks what is reported, and where, for small files.
func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string
	}{
		{
			name: "value position",
			file: "queues:\n  q:\n    max_length: many\n",
			want: []string{"t.yaml:3:17: max_length must be an integer, not a string"},
		},
		{
			name: "key position",
			file: "queues:\n  q:\n    max_lenght: 3\n",
			want: []string{`t.yaml:3:5: unknown key "max_lenght" in queue "q"`},
		},
		{
			name: "flow style",
			file: "queues: {q: {type: classic, delivery_limit: 3}}\nbindings: [{exchange: amq.direct, queue: q}]\n",
			want: []string{`t.yaml:1:45: delivery_limit is for quorum queues only, and queue "q" is classic`},
		},
		{
			name: "default queue type from defaults",
			file: "defaults: {queue_type: classic}\nqueues: {q: {delivery_limit: 3}}\nbindings: [{exchange: amq.direct, queue: q}]\n",
			want: []string{`t.yaml:2:30: delivery_limit is for quorum queues only, and queue "q" is classic`},
		},
		{
			name: "invalid type is not checked further",
			file: "queues: {q: {type: clasic, max_priority: 3}}\nbindings: [{exchange: amq.direct, queue: q}]\n",
			want: []string{`t.yaml:1:20: type "clasic" is not one of classic, quorum`},
		},
		{
			name: "invalid exchange type is not missing",
			file: "exchanges: {x: {type: 3}}\n",
			want: []string{"t.yaml:1:23: type must be a string, not an integer"},
		},
		{
			name: "a missing type is reported next to another mistake",
			file: "exchanges: {x: {durable: yes}}\n",
			want: []string{
				"t.yaml:1:13: exchange \"x\" has no type",
				"t.yaml:1:26: durable must be true or false, not a string",
			},
		},
		{
			name: "a misspelled type is not reported as missing too",
			file: "exchanges: {x: {typ: direct}}\n",
			want: []string{`t.yaml:1:17: unknown key "typ" in exchange "x"`},
		},
		{
			name: "a route with another mistake is still checked for routing",
			file: "exchanges: {x: {type: direct}}\nqueues: {q: }\nbindings: [{exchange: x, queue: q, routing_key: a}]\nroutes: {b: {exchange: x, retry: {jitter: 2}}}\n",
			want: []string{
				`t.yaml:4:10: jobs of type "b" would be returned as unroutable: routing key "b" reaches no queue from exchange "x"`,
				"t.yaml:4:43: jitter must be between 0 and 1, not 2",
			},
		},
		{
			name: "misspelled binding key does not make routes unroutable",
			file: "exchanges: {x: {type: direct}}\nqueues: {q: }\nbindings: [{exchange: x, queue: q, routing_kye: a}]\nroutes: {a: {exchange: x}}\n",
			want: []string{`t.yaml:3:36: unknown key "routing_kye" in binding 1`},
		},
		{
			name: "broken bindings section does not make routes unroutable",
			file: "exchanges: {x: {type: direct}}\nqueues: {q: }\nbindings: {exchange: x}\nroutes: {a: {exchange: x}}\n",
			want: []string{"t.yaml:3:11: bindings must be a list, not a mapping"},
		},
		{
			name: "binding to an undeclared queue is reported once",
			file: "exchanges: {x: {type: direct}}\nqueues: {q: }\nbindings: [{exchange: x, queue: qq, routing_key: a}, {exchange: x, queue: q}]\nroutes: {a: {exchange: x}}\n",
			want: []string{`t.yaml:3:33: queue "qq" is not declared`},
		},
		{
			name: "merge keys",
			file: "x-base: &b {type: classic, max_priority: 300}\nqueues:\n  q:\n    <<: *b\n    max_length: 2\nbindings: [{exchange: amq.direct, queue: q}]\n",
			want: []string{"t.yaml:1:42: max_priority must be between 1 and 255, not 300"},
		},
		{
			name: "a mistake behind an alias used twice is reported once",
			file: "x-r: &r {max_attempts: 0}\nqueues:\n  a: {retry: *r}\n  b: {retry: *r}\nbindings: [{exchange: amq.fanout, queue: a}, {exchange: amq.fanout, queue: b}]\n",
			want: []string{"t.yaml:1:24: max_attempts must be at least 1, not 0"},
		},
		{
			name: "merge of a scalar",
			file: "queues:\n  q:\n    <<: 3\n",
			want: []string{"t.yaml:3:9: << merges mappings, not an integer"},
		},
		{
			name: "non-scalar key",
			file: "queues:\n  ? [a]\n  : {}\n",
			want: []string{"t.yaml:2:5: a key must be a name, not a list"},
		},
		{
			name: "huge integer",
			file: "queues:\n  q:\n    max_length: 99999999999999999999\n",
			want: []string{"t.yaml:3:17: max_length is out of range: 99999999999999999999"},
		},
		{
			name: "unknown YAML tag",
			file: "queues:\n  q:\n    type: !custom quorum\n",
			want: []string{"t.yaml:3:11: type must be a string, not a value tagged !custom"},
		},
		{
			name: "tab indentation",
			file: "queues:\n\tq:\n",
			want: []string{"t.yaml:2:1: invalid YAML: found character that cannot start any token"},
		},
		{
			name: "unknown anchor",
			file: "queues: *nope\n",
			want: []string{"t.yaml:1:1: invalid YAML: unknown anchor 'nope' referenced"},
		},
		{
			name: "billion laughs",
			file: `a: &a ["x","x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]
`,
			want: []string{"t.yaml:1:1: the document is too large with its aliases expanded: more than 2000000 YAML nodes (topology.MaxNodes)"},
		},
		{
			name: "dead-letter routing key that leads nowhere is fine, one that loops is not",
			file: `exchanges: {dlx: {type: topic}}
queues:
  a: {dead_letter_exchange: dlx, dead_letter_routing_key: to.b}
  b: {dead_letter_exchange: dlx, dead_letter_routing_key: to.c}
  c: {dead_letter_exchange: dlx, dead_letter_routing_key: to.a}
  d: {dead_letter_exchange: dlx, dead_letter_routing_key: nowhere}
bindings:
  - {exchange: dlx, queue: a, routing_key: "*.a"}
  - {exchange: dlx, queue: b, routing_key: "*.b"}
  - {exchange: dlx, queue: c, routing_key: "#.c"}
  - {exchange: dlx, queue: d, routing_key: "d"}
`,
			want: []string{`t.yaml:3:29: dead letters of queue "a" come back to it (a -> b -> c -> a): RabbitMQ drops them or they loop forever`},
		},
		{
			name: "dead letters through an exchange-to-exchange binding and an alternate exchange",
			file: `exchanges:
  dlx: {type: direct, alternate_exchange: ae}
  ae: {type: fanout}
queues:
  a: {dead_letter_exchange: dlx, dead_letter_routing_key: unmatched}
bindings:
  - {exchange: ae, to_exchange: amq.topic}
  - {exchange: amq.topic, queue: a, routing_key: "#"}
`,
			want: []string{`t.yaml:5:29: dead letters of queue "a" come back to it (a -> a): RabbitMQ drops them or they loop forever`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := brief(parseProblems(t, tt.file))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseWarnings(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string
	}{
		{
			name: "headers exchange with a binding routes",
			file: "exchanges: {h: {type: headers}}\nqueues: {q: }\nbindings: [{exchange: h, queue: q, arguments: {x-match: any, a: 1}}]\nroutes: {j: {exchange: h}}\n",
		},
		{
			name: "fanout through amq.topic",
			file: "exchanges: {f: {type: fanout}}\nqueues: {q: }\nbindings: [{exchange: f, to_exchange: amq.topic}, {exchange: amq.topic, queue: q, routing_key: j.*}]\nroutes: {j.x: {exchange: f}}\n",
		},
		{
			name: "only the alternate exchange",
			file: "exchanges: {x: {type: direct, alternate_exchange: ae}, ae: {type: fanout}}\nqueues: {q: }\nbindings: [{exchange: ae, queue: q}]\nroutes: {j: {exchange: x}}\n",
			want: []string{`t.yaml:4:10: warning: jobs of type "j" match no binding of exchange "x" and all go to its alternate exchange`},
		},
		{
			name: "unbound queue",
			file: "queues: {q: }\n",
			want: []string{`t.yaml:1:10: warning: queue "q" is not bound to any exchange: no route reaches it`},
		},
		{
			name: "quorum queue with warren's default delivery limit",
			file: "queues: {q: {type: quorum}}\nbindings: [{exchange: amq.direct, queue: q}]\n",
		},
		{
			name: "delivery limit of 3 is enough",
			file: "queues: {q: {type: quorum, delivery_limit: 3}}\nbindings: [{exchange: amq.direct, queue: q}]\n",
		},
		{
			name: "no delivery limit",
			file: "queues: {q: {type: quorum, delivery_limit: -1}}\nbindings: [{exchange: amq.direct, queue: q}]\n",
			want: []string{`t.yaml:1:44: warning: quorum queue "q" has no delivery limit: a job that crashes its worker is redelivered forever`},
		},
		{
			name: "no delivery limit and no dead-letter target is one warning",
			file: "queues: {q: {delivery_limit: -1, dead_letter: false}}\nbindings: [{exchange: amq.direct, queue: q}]\n",
			want: []string{`t.yaml:1:30: warning: quorum queue "q" has no delivery limit: a job that crashes its worker is redelivered forever`},
		},
		{
			name: "delivery limit below 3",
			file: "queues: {q: {type: quorum, delivery_limit: 2}}\nbindings: [{exchange: amq.direct, queue: q}]\n",
			want: []string{`t.yaml:1:44: warning: delivery_limit 2 on quorum queue "q" dead-letters jobs that never failed: every graceful worker shutdown returns the jobs it had prefetched, which counts as a delivery`},
		},
		{
			name: "delivery limit 0",
			file: "queues: {q: {type: quorum, delivery_limit: 0}}\nbindings: [{exchange: amq.direct, queue: q}]\n",
			want: []string{`t.yaml:1:44: warning: delivery_limit 0 on quorum queue "q" dead-letters jobs that never failed: every graceful worker shutdown returns the jobs it had prefetched, which counts as a delivery`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top, err := Parse("t.yaml", []byte(tt.file))
			if err != nil {
				t.Fatalf("Parse:\n%v", err)
			}
			if diff := cmp.Diff(tt.want, brief(top.Warnings), cmpEmpty); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// cmpEmpty treats nil and empty slices alike.
var cmpEmpty = cmp.FilterValues(func(a, b []string) bool { return len(a) == 0 && len(b) == 0 }, cmp.Ignore())

func TestWorkQueueDeadLetters(t *testing.T) {
	top, err := Parse("t.yaml", []byte(`
exchanges:
  parking: {type: direct}
queues:
  derived: {type: quorum}
  explicit: {type: classic, dead_letter_exchange: parking, dead_letter_routing_key: later}
  keyless: {type: classic, dead_letter_exchange: parking}
  none: {type: classic, dead_letter: false}
bindings:
  - {exchange: amq.fanout, queue: derived}
  - {exchange: amq.fanout, queue: explicit}
  - {exchange: amq.fanout, queue: keyless}
  - {exchange: amq.fanout, queue: none}
  - {exchange: parking, queue: none, routing_key: later}
`))
	if err != nil {
		t.Fatal(err)
	}
	retry := DefaultRetryPolicy()
	want := []Queue{
		{Name: "derived", Type: Quorum, Durable: true, Args: Table{
			"x-queue-type": Quorum, "x-dead-letter-exchange": DeadLetterExchange, "x-dead-letter-routing-key": "derived",
			"x-delivery-limit": int64(DefaultDeliveryLimit),
		}, DeadLetterExchange: DeadLetterExchange, DeadLetterRoutingKey: "derived", DeadLetterQueue: "derived.dlq", QuarantineQueue: "derived.quarantine", Retry: &retry,
			Pos: Pos{File: "t.yaml", Line: 5, Column: 3}},
		{Name: "explicit", Type: Classic, Durable: true, Args: Table{
			"x-queue-type": Classic, "x-dead-letter-exchange": "parking", "x-dead-letter-routing-key": "later",
		}, DeadLetterExchange: "parking", DeadLetterRoutingKey: "later", QuarantineQueue: "explicit.quarantine", Retry: &retry, Pos: Pos{File: "t.yaml", Line: 6, Column: 3}},
		{Name: "keyless", Type: Classic, Durable: true, Args: Table{
			"x-queue-type": Classic, "x-dead-letter-exchange": "parking",
		}, DeadLetterExchange: "parking", QuarantineQueue: "keyless.quarantine", Retry: &retry, Pos: Pos{File: "t.yaml", Line: 7, Column: 3}},
		{Name: "none", Type: Classic, Durable: true, Args: Table{"x-queue-type": Classic}, QuarantineQueue: "none.quarantine", Retry: &retry,
			Pos: Pos{File: "t.yaml", Line: 8, Column: 3}},
	}
	if diff := cmp.Diff(want, top.WorkQueues()); diff != "" {
		t.Errorf("work queues (-want +got):\n%s", diff)
	}
	dlq, ok := top.Queue("derived.dlq")
	wantDLQ := Queue{Name: "derived.dlq", Type: Quorum, Durable: true, Args: Table{"x-queue-type": Quorum, "x-delivery-limit": int64(DeadLetterDeliveryLimit)}, Derived: true}
	if diff := cmp.Diff(wantDLQ, dlq); !ok || diff != "" {
		t.Errorf("derived.dlq (-want +got):\n%s", diff)
	}
	var dlBindings []Binding
	for _, b := range top.Bindings {
		if b.Exchange == DeadLetterExchange {
			dlBindings = append(dlBindings, b)
		}
	}
	wantBindings := []Binding{{Exchange: DeadLetterExchange, Queue: "derived.dlq", RoutingKey: "derived", Derived: true}}
	if diff := cmp.Diff(wantBindings, dlBindings); diff != "" {
		t.Errorf("dead-letter bindings (-want +got):\n%s", diff)
	}
	for _, name := range []string{"explicit.dlq", "keyless.dlq", "none.dlq"} {
		if _, ok := top.Queue(name); ok {
			t.Errorf("%s derived, want no dead-letter queue", name)
		}
	}
}

func TestRetryPolicy(t *testing.T) {
	top, err := Parse("t.yaml", []byte(`
defaults:
  retry: {max_attempts: 4, jitter: 0.1}
exchanges:
  jobs: {type: direct}
queues:
  plain:
  tuned:
    retry: {max_attempts: 10, initial_interval: 5s, max_interval: 2m}
bindings:
  - {exchange: jobs, queue: plain, routing_key: a}
  - {exchange: jobs, queue: tuned, routing_key: b}
routes:
  a: {exchange: jobs}
  b: {exchange: jobs, retry: {max_attempts: 2, jitter: 0}}
`))
	if err != nil {
		t.Fatal(err)
	}
	defaults := RetryPolicy{MaxAttempts: 4, InitialInterval: time.Second, MaxInterval: time.Hour, Multiplier: 2, Jitter: 0.1}
	tuned := RetryPolicy{MaxAttempts: 10, InitialInterval: 5 * time.Second, MaxInterval: 2 * time.Minute, Multiplier: 2, Jitter: 0.1}
	tests := []struct {
		queue, jobType string
		want           RetryPolicy
	}{
		{"plain", "a", defaults},
		{"tuned", "a", tuned},
		{"tuned", "b", RetryPolicy{MaxAttempts: 2, InitialInterval: 5 * time.Second, MaxInterval: 2 * time.Minute, Multiplier: 2, Jitter: 0}},
		{"plain", "b", RetryPolicy{MaxAttempts: 2, InitialInterval: time.Second, MaxInterval: time.Hour, Multiplier: 2, Jitter: 0}},
		{"nosuch", "nosuch", defaults},
		{"plain.dlq", "a", defaults},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, top.RetryPolicy(tt.queue, tt.jobType)); diff != "" {
			t.Errorf("RetryPolicy(%q, %q) (-want +got):\n%s", tt.queue, tt.jobType, diff)
		}
	}
	wantRoute := Route{JobType: "b", Exchange: "jobs", RoutingKey: "b", Pos: Pos{File: "t.yaml", Line: 15, Column: 3},
		Retry: &RetryPolicy{MaxAttempts: 2, InitialInterval: time.Second, MaxInterval: time.Hour, Multiplier: 2, Jitter: 0}}
	if diff := cmp.Diff(wantRoute, top.Routes["b"]); diff != "" {
		t.Errorf(`Routes["b"] (-want +got):\n%s`, diff)
	}
	if top.Routes["a"].Retry != nil {
		t.Errorf(`Routes["a"].Retry = %+v, want nil`, top.Routes["a"].Retry)
	}
	if got := (&Topology{}).RetryPolicy("q", "j"); got != DefaultRetryPolicy() {
		t.Errorf("RetryPolicy of an empty Topology = %+v, want the default", got)
	}
}

func TestMergeKeys(t *testing.T) {
	top, err := Parse("t.yaml", []byte(`
x-base: &base {type: classic, max_priority: 300, max_length: 5}
x-more: &more {max_length: 7, expires: 1h}
queues:
  q:
    <<: [*more, *base]
    max_priority: 2
bindings: [{exchange: amq.direct, queue: q}]
`))
	if err != nil {
		t.Fatalf("explicit keys must win over merged ones:\n%v", err)
	}
	q, _ := top.Queue("q")
	want := Table{"x-queue-type": Classic, "x-dead-letter-exchange": DeadLetterExchange, "x-dead-letter-routing-key": "q",
		"x-max-priority": int64(2), "x-max-length": int64(7), "x-expires": int64(3600000)}
	if diff := cmp.Diff(want, q.Args); diff != "" {
		t.Errorf("arguments (-want +got):\n%s", diff)
	}
}

func TestTopologyLookups(t *testing.T) {
	top, err := Parse("t.yaml", []byte(`
exchanges: {jobs: {type: direct}}
queues: {b: , a: }
bindings: [{exchange: jobs, queue: a, routing_keys: [x, y]}, {exchange: jobs, queue: b, routing_key: z}]
routes: {z: {exchange: jobs}, x: {exchange: jobs}, y: {exchange: jobs, routing_key: x}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"x", "y", "z"}, top.JobTypes()); diff != "" {
		t.Errorf("JobTypes (-want +got):\n%s", diff)
	}
	if x, key, ok := top.Route("y"); x != "jobs" || key != "x" || !ok {
		t.Errorf(`Route("y") = %q, %q, %t`, x, key, ok)
	}
	if _, _, ok := top.Route("nosuch"); ok {
		t.Error(`Route("nosuch") found`)
	}
	var names []string
	for _, q := range top.WorkQueues() {
		names = append(names, q.Name)
	}
	if diff := cmp.Diff([]string{"b", "a"}, names); diff != "" {
		t.Errorf("WorkQueues in file order (-want +got):\n%s", diff)
	}
	if q, ok := top.Queue(DelayExchangeName(3)); !ok || !q.Derived {
		t.Errorf("Queue(delay level 3) = %+v, %t", q, ok)
	}
	if _, ok := top.Exchange("nosuch"); ok {
		t.Error(`Exchange("nosuch") found`)
	}
	// Derived entities come after the file's, and what a binding needs is
	// declared before it (Declare does all exchanges, then queues).
	if top.Exchanges[0].Name != "jobs" || top.Queues[0].Name != "b" || top.Bindings[0].RoutingKey != "x" {
		t.Errorf("file entities do not come first: %s, %s, %s", top.Exchanges[0].Name, top.Queues[0].Name, top.Bindings[0].RoutingKey)
	}
}

// TestArgumentTypes checks the contract with the broker package: argument
// values are only string, bool, int64, float64, or lists of those.
func TestArgumentTypes(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testdata, "valid", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../examples/quickstart/topology.yaml")
	extra := "queues:\n  q:\n    arguments: {x-a: 1, x-b: 1.5, x-c: true, x-d: s, x-e: [1, [2.5, x]], x-f: 0x10}\n"
	check := func(where string, args Table) {
		for k, v := range args {
			if !validArg(v) {
				t.Errorf("%s: argument %q is %T", where, k, v)
			}
		}
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		top, err := Parse(path, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range top.Exchanges {
			check(path+" exchange "+x.Name, x.Args)
		}
		for _, q := range top.Queues {
			check(path+" queue "+q.Name, q.Args)
		}
		for _, b := range top.Bindings {
			check(path+" binding "+BindingName(b), b.Args)
		}
	}
	top, err := Parse("extra.yaml", []byte(extra))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := top.Queue("q")
	check("extra", q.Args)
	want := Table{"x-queue-type": Quorum, "x-dead-letter-exchange": DeadLetterExchange, "x-dead-letter-routing-key": "q",
		"x-delivery-limit": int64(DefaultDeliveryLimit), "x-a": int64(1), "x-b": 1.5, "x-c": true, "x-d": "s", "x-e": []any{int64(1), []any{2.5, "x"}}, "x-f": int64(16)}
	if diff := cmp.Diff(want, q.Args); diff != "" {
		t.Errorf("arguments (-want +got):\n%s", diff)
	}
}

func validArg(v any) bool {
	switch v := v.(type) {
	case string, bool, int64, float64:
		return true
	case []any:
		for _, x := range v {
			if !validArg(x) {
				return false
			}
		}
		return true
	}
	return false
}

// TestDocExamples parses the YAML examples of docs/topology.md: they must
// load, the first two (the quickstart file and the complete example) without
// warnings and the same as their copies in the repository.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/topology.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d YAML examples, want at least 3", len(blocks))
	}
	copies := []string{"../examples/quickstart/topology.yaml", filepath.Join(testdata, "valid", "full.yaml")}
	for i, b := range blocks {
		top, err := Parse(fmt.Sprintf("example %d", i+1), b[1])
		if err != nil {
			t.Errorf("example %d:\n%v", i+1, err)
			continue
		}
		if i >= len(copies) {
			continue
		}
		if len(top.Warnings) > 0 {
			t.Errorf("example %d has warnings:\n%v", i+1, top.Warnings)
		}
		data, err := os.ReadFile(copies[i])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), string(b[1])) {
			t.Errorf("example %d differs from %s", i+1, copies[i])
		}
	}
}

func TestReplyQueueNeedsNoBinding(t *testing.T) {
	for _, tc := range []struct {
		name, queue string
		warned      bool
	}{
		{"unbound", "replies: {type: quorum}", true},
		{"reply queue", "replies: {type: quorum, reply_queue: true}", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo, err := Parse("f.yaml", []byte("version: 1\nqueues:\n  "+tc.queue+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			warned := strings.Contains(topo.Warnings.Error(), "not bound to any exchange")
			if warned != tc.warned {
				t.Errorf("warned %v, want %v: %v", warned, tc.warned, topo.Warnings)
			}
		})
	}
}
