package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

func TestMain(m *testing.M) {
	if code, ok := runChild(); ok {
		os.Exit(code)
	}
	os.Exit(brokertest.MainWithLeakCheck(m))
}

// warren runs the CLI in-process and returns its exit code and output.
func warren(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code = run(ctx, append([]string{"--url", brokertest.URL(t)}, args...), &out, &errb)
	if slices.Contains(args, "--json") && code != exitUsage {
		checkJSONStyle(t, args, out.String())
	}
	return code, out.String(), errb.String()
}

// names are the unique entity names of one test's topology.
type names struct{ Exchange, Queue, Other string }

const topologyTemplate = `
exchanges:
  {{.Exchange}}:
    type: direct
queues:
  {{.Queue}}:
    type: quorum
    retry:
      max_attempts: 3
  {{.Other}}:
    type: classic
    max_priority: 5
bindings:
  - exchange: {{.Exchange}}
    queue: {{.Queue}}
    routing_key: email.send
  - exchange: {{.Exchange}}
    queue: {{.Other}}
    routing_key: report.render
routes:
  email.send:
    exchange: {{.Exchange}}
  report.render:
    exchange: {{.Exchange}}
`

// writeTopology writes a topology with unique names and deletes its
// entities (not the shared derived ones) at cleanup.
func writeTopology(t *testing.T) (string, names) {
	t.Helper()
	n := names{Exchange: brokertest.Name(t, "jobs"), Queue: brokertest.Name(t, "emails"), Other: brokertest.Name(t, "reports")}
	var buf bytes.Buffer
	if err := template.Must(template.New("t").Parse(topologyTemplate)).Execute(&buf, n); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	brokertest.DeleteQueuesAtCleanup(t, n.Queue, n.Queue+".dlq", n.Queue+".quarantine", n.Other, n.Other+".dlq", n.Other+".quarantine")
	brokertest.DeleteExchangesAtCleanup(t, n.Exchange)
	return path, n
}

func TestTopologyValidate(t *testing.T) {
	path, _ := writeTopology(t)
	code, out, errOut := warren(t, "topology", "validate", "-f", path)
	if code != 0 {
		t.Fatalf("validate of a good file: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "is valid") {
		t.Errorf("output %q should say the file is valid", out)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("exchanges:\n  jobs:\n    type: dierct\nqueues:\n  q:\n    tpye: quorum\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = warren(t, "topology", "validate", "-f", bad)
	if code != 1 {
		t.Fatalf("validate of a bad file: exit %d, want 1", code)
	}
	for _, want := range []string{"bad.yaml:3:11", "bad.yaml:6:5"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks a problem located at %s:\n%s", want, out)
		}
	}

	code, out, _ = warren(t, "--json", "topology", "validate", "-f", bad)
	var res struct {
		Valid    bool `json:"valid"`
		Problems []struct {
			Line, Column int
			Severity     string
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if code != 1 || res.Valid || len(res.Problems) < 2 {
		t.Fatalf("--json validate: exit %d, %+v", code, res)
	}
}

// TestTopologyValidateContracts: validate also checks the contracts a
// topology file declares and includes.
func TestTopologyValidateContracts(t *testing.T) {
	code, out, errOut := warren(t, "topology", "validate", "-f", "../../examples/taxi/topology.yaml")
	if code != 0 || !strings.Contains(out, "contracts: 9 job type(s), 9 version(s), from 2 file(s)") {
		t.Fatalf("validate of the taxi topology: exit %d\n%s%s", code, out, errOut)
	}
	dir := t.TempDir()
	top := filepath.Join(dir, "topology.yaml")
	src := "exchanges:\n  e: {type: fanout}\nqueues:\n  q: {}\nbindings:\n  - {exchange: e, queue: q}\nroutes:\n  a: {exchange: e}\ncontracts:\n  include: [c.yaml]\n"
	if err := os.WriteFile(top, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte("types:\n  a:\n    versions:\n      1: {schema: {type: object, propertys: {}}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = warren(t, "topology", "validate", "-f", top)
	if code != 1 || !strings.Contains(out, `c.yaml:4:34: unknown schema keyword "propertys" in a v1`) {
		t.Fatalf("validate with a bad contract: exit %d, want 1 and the problem in c.yaml:\n%s", code, out)
	}
}

func TestApplyThenPublishPutsJobOnTheRightQueue(t *testing.T) {
	path, n := writeTopology(t)

	code, out, errOut := warren(t, "topology", "apply", "-f", path)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "created") || !strings.Contains(out, n.Queue) {
		t.Errorf("first apply should list what it created:\n%s", out)
	}
	code, out, errOut = warren(t, "topology", "apply", "-f", path)
	if code != 0 {
		t.Fatalf("second apply: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "0 created") {
		t.Errorf("second apply should create nothing:\n%s", out)
	}

	code, out, errOut = warren(t, "--json", "publish", "-f", path, "--type", "email.send",
		"--data", `{"to":"ada@example.com","n":3,"big":18446744073709551615,"ratio":0.5}`, "-H", "tenant=acme")
	if code != 0 {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errOut)
	}
	var res struct {
		Published int
		Jobs      []struct{ ID string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Published != 1 || len(res.Jobs) != 1 {
		t.Fatalf("publish --json = %q (%v)", out, err)
	}

	d := brokertest.Get(t, n.Queue, 5*time.Second)
	if d.MessageId != res.Jobs[0].ID || d.Type != "email.send" || d.ContentType != broker.ContentType || d.DeliveryMode != 2 {
		t.Fatalf("job on the queue: id %q type %q content type %q mode %d", d.MessageId, d.Type, d.ContentType, d.DeliveryMode)
	}
	if _, ok := d.Headers[broker.HeaderAttempt]; d.Headers["tenant"] != "acme" || ok {
		t.Errorf("headers = %v", d.Headers)
	}
	var payload map[string]any
	if err := msgpack.Unmarshal(d.Body, &payload); err != nil {
		t.Fatal(err)
	}
	if payload["to"] != "ada@example.com" || payload["n"] != int8(3) || payload["big"] != uint64(18446744073709551615) || payload["ratio"] != 0.5 {
		t.Errorf("payload = %#v", payload)
	}
	if got := brokertest.Depth(t, n.Other); got != 0 {
		t.Errorf("the other queue got %d jobs", got)
	}
}

func TestPublishCountAndExplicitTarget(t *testing.T) {
	path, n := writeTopology(t)
	if code, out, errOut := warren(t, "topology", "apply", "-f", path); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := warren(t, "publish", "--exchange", n.Exchange, "--key", "report.render", "--type", "report.render", "--count", "250")
	if code != 0 {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "250 of 250") {
		t.Errorf("output %q should count the confirmed jobs", out)
	}
	if got := brokertest.Depth(t, n.Other); got != 250 {
		t.Fatalf("queue holds %d jobs, want 250", got)
	}
}

func TestPublishErrorsSayWhatToDo(t *testing.T) {
	path, n := writeTopology(t)
	if code, _, errOut := warren(t, "topology", "apply", "-f", path); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no route for type", []string{"publish", "-f", path, "--type", "nope"}, "no route"},
		{"unroutable key", []string{"publish", "--exchange", n.Exchange, "--key", "nobody", "--type", "x"}, "unroutable"},
		{"missing exchange", []string{"publish", "--exchange", brokertest.Name(t, "missing"), "--type", "x"}, "topology apply"},
		{"nowhere", []string{"publish", "--type", "x"}, "nowhere to publish"},
		{"bad json", []string{"publish", "--queue", n.Queue, "--type", "x", "--data", "{"}, "invalid JSON"},
		{"no type", []string{"publish", "--queue", n.Queue}, "--type is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := warren(t, c.args...)
			if code == 0 {
				t.Fatal("exit 0, want failure")
			}
			if !strings.Contains(errOut, c.want) {
				t.Errorf("stderr %q lacks %q", errOut, c.want)
			}
		})
	}
}

func TestPasswordNeverPrinted(t *testing.T) {
	const secret = "hunter2-Secret"
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--url", "amqp://guest:" + secret + "@127.0.0.1:1/", "--log-level", "debug", "publish", "--queue", "q", "--type", "x"}, &out, &errb)
	if code == 0 {
		t.Fatal("publish to a closed port succeeded")
	}
	if strings.Contains(out.String()+errb.String(), secret) {
		t.Fatalf("output shows the password:\n%s%s", out.String(), errb.String())
	}
}

func TestParseJSONKeepsIntegers(t *testing.T) {
	v, err := parseJSON(`{"a":1,"b":-2,"c":1.5,"d":[1e3],"e":18446744073709551615}`)
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["a"] != int64(1) || m["b"] != int64(-2) || m["c"] != 1.5 || m["d"].([]any)[0] != 1000.0 || m["e"] != uint64(18446744073709551615) {
		t.Fatalf("parseJSON = %#v", m)
	}
	if _, err := parseJSON(`1 2`); err == nil {
		t.Error("two values accepted")
	}
}

// TestHelpHidesPasswordFromEnvironment: --help must not print WARREN_URL
// or AMQP_URL, which may hold a password.
func TestHelpHidesPasswordFromEnvironment(t *testing.T) {
	t.Setenv("AMQP_URL", "amqp://user:s3cret-pw@broker.invalid:5672/")
	t.Setenv("WARREN_URL", "amqp://user:0ther-pw@broker.invalid:5672/")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--help"}, &out, &errb)
	if code != 0 {
		t.Fatalf("--help exited %d: %s", code, errb.String())
	}
	if strings.Contains(out.String()+errb.String(), "s3cret-pw") {
		t.Errorf("--help printed the password from AMQP_URL:\n%s", out.String())
	}
	if strings.Contains(out.String()+errb.String(), "0ther-pw") {
		t.Errorf("--help printed the password from WARREN_URL:\n%s", out.String())
	}
	for _, name := range []string{"WARREN_URL", "AMQP_URL"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("--help does not mention %s:\n%s", name, out.String())
		}
	}
}

// TestURLFromEnvironment: the CLI reads the broker URLs as a worker
// daemon does: --url, else WARREN_URL, else the deprecated
// WARREN_AMQP_URL or AMQP_URL with one warning line, else the default.
func TestURLFromEnvironment(t *testing.T) {
	const flagURL, envURL, oldURL, olderURL = "amqp://f:pw@flag:5672/", "amqp://n:pw@new:5672/", "amqp://o:pw@old:5672/", "amqp://a:pw@amqp:5672/"
	for _, tc := range []struct {
		name string
		flag []string
		env  map[string]string
		want []string
		warn string // "" when nothing may be written
	}{
		{name: "nothing", want: []string{broker.DefaultURL}},
		{name: "--url wins", flag: []string{flagURL}, env: map[string]string{"WARREN_URL": envURL, "AMQP_URL": olderURL}, want: []string{flagURL}},
		{name: "WARREN_URL", env: map[string]string{"WARREN_URL": envURL + "," + flagURL}, want: []string{envURL, flagURL}},
		{name: "WARREN_URL over the deprecated", env: map[string]string{"WARREN_URL": envURL, "WARREN_AMQP_URL": oldURL, "AMQP_URL": olderURL}, want: []string{envURL}},
		{name: "WARREN_AMQP_URL", env: map[string]string{"WARREN_AMQP_URL": oldURL, "AMQP_URL": olderURL}, want: []string{oldURL},
			warn: "Environment variable WARREN_AMQP_URL has been deprecated, use WARREN_URL instead\n"},
		{name: "AMQP_URL", env: map[string]string{"AMQP_URL": olderURL}, want: []string{olderURL},
			warn: "Environment variable AMQP_URL has been deprecated, use WARREN_URL instead\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range []string{"WARREN_URL", "WARREN_AMQP_URL", "AMQP_URL"} {
				t.Setenv(name, tc.env[name])
			}
			var errb bytes.Buffer
			g := &globals{urls: tc.flag, stderr: &errb}
			for range 2 { // a command may ask more than once; it warns once
				if diff := cmp.Diff(tc.want, g.brokerURLs()); diff != "" {
					t.Errorf("URLs (-want +got):\n%s", diff)
				}
			}
			if errb.String() != tc.warn {
				t.Errorf("stderr %q, want %q", errb.String(), tc.warn)
			}
		})
	}
}

// TestTopologyApplyKeepsAnOlderDeadLetterQueue: a quorum .dlq an earlier
// warren declared without x-delivery-limit is kept, holding its jobs, and
// apply says what to do about it instead of failing.
func TestTopologyApplyKeepsAnOlderDeadLetterQueue(t *testing.T) {
	path, n := writeTopology(t)
	dlq := n.Queue + ".dlq"
	if _, err := brokertest.Channel(t).QueueDeclare(dlq, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := warren(t, "topology", "apply", "-f", path)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "warning: queue \""+dlq+"\" was declared by an earlier warren") || !strings.Contains(out, "delivery-limit -1") {
		t.Errorf("apply does not warn about the older dead-letter queue:\n%s", out)
	}
}
