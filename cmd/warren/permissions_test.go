package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// rolePermissions are the permissions docs/security.md gives each role,
// for a topology whose names start with "billing.". Keep them equal.
var rolePermissions = map[string]brokertest.Permissions{
	// Publishes jobs (and delayed jobs, through the delay cascade); the
	// check that an exchange exists is a passive declare, which needs no
	// permission.
	"producer": {Configure: `^$`, Write: `^(billing\.jobs|warren\.delay\..*)$`, Read: `^$`},
	// Consumes its work queues; publishes retries into the delay cascade,
	// dead letters to warren.dead-letter, and replies through the default
	// exchange (amq.default).
	"worker": {Configure: `^$`, Write: `^(warren\.delay\..*|warren\.dead-letter|amq\.default)$`, Read: `^billing\.emails$`},
	// Publishes requests; its replies come in a reply queue of its own,
	// which it declares and consumes (server-named: amq.gen-…).
	"caller": {Configure: `^amq\.gen-.*$`, Write: `^billing\.jobs$`, Read: `^amq\.gen-.*$`},
	// The same without a reply queue: its replies come through direct
	// reply-to, which needs no permission.
	"caller-direct": {Configure: `^$`, Write: `^billing\.jobs$`, Read: `^$`},
	// The CLI: applies the topology, reads and replays dead letters; plus
	// the management tag, for topology plan and stats.
	"operator": {Configure: `^(billing\..*|warren\..*)$`, Write: `^(billing\..*|warren\..*|amq\.default)$`, Read: `^(billing\..*|warren\..*)$`},
}

const permissionsTopology = `
defaults:
  retry:
    max_attempts: 2
    initial_interval: 1s
exchanges:
  billing.jobs:
    type: direct
queues:
  billing.emails: {}
bindings:
  - exchange: billing.jobs
    queue: billing.emails
    routing_keys: [email.send, email.welcome, email.lookup]
routes:
  email.send: {exchange: billing.jobs}
  email.welcome: {exchange: billing.jobs}
  email.lookup: {exchange: billing.jobs}
`

// TestRolePermissions proves, on a virtual host of its own on the shared
// broker, that each role can do its job with the permissions of
// docs/security.md, and is refused what lies outside it. The operator is
// the CLI, run in-process: this is why the test is here.
func TestRolePermissions(t *testing.T) {
	// The test broker's management API, without credentials: the CLI
	// then logs in with the operator's, from its broker URL.
	mgmtURL, err := url.Parse(brokertest.ManagementURL(t))
	if err != nil {
		t.Fatal(err)
	}
	mgmtURL.User = nil
	t.Setenv("WARREN_MANAGEMENT_URL", mgmtURL.String())
	vhost := brokertest.Vhost(t)
	password := brokertest.Name(t, "password")
	urls := map[string]string{}
	for role, p := range rolePermissions {
		var tags []string
		if role == "operator" {
			tags = []string{"management"}
		}
		urls[role] = brokertest.URLFor(t, brokertest.User(t, password, vhost, p, tags...), password, vhost)
	}
	path := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(path, []byte(permissionsTopology), 0o600); err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := brokertest.Context(t, 2*time.Minute)
	operator := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(ctx, append([]string{"--url", urls["operator"]}, args...), &out, &errb); code != 0 {
			t.Fatalf("operator: warren %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		}
		return out.String()
	}
	dial := func(role string) *broker.Conn {
		t.Helper()
		conn, err := broker.Dial(ctx, []string{urls[role]}, broker.WithName(brokertest.ConnName(t, role)))
		if err != nil {
			t.Fatalf("%s: Dial: %v", role, err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}

	// The operator declares everything, and the broker then holds what
	// the file says.
	operator("topology", "apply", "-f", path)
	operator("topology", "plan", "-f", path)
	operator("stats", "-f", path)

	// The producer publishes, with confirms, a job that will fail and a
	// delayed one that will succeed.
	pub, err := broker.NewPublisher(dial("producer"), broker.WithRouter(topo))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	failing, welcome := brokertest.JobID(t), brokertest.JobID(t)
	if err := pub.Publish(ctx, broker.Job{ID: failing, Type: "email.send", Payload: "ada@example.com"}); err != nil {
		t.Fatalf("producer: Publish: %v", err)
	}
	if err := pub.Publish(ctx, broker.Job{ID: welcome, Type: "email.welcome", Payload: "bob"}, broker.In(time.Second)); err != nil {
		t.Fatalf("producer: Publish In: %v", err)
	}

	// The worker runs them: the failing one is retried once, then
	// dead-lettered; it answers the caller's request.
	mux := worker.NewMux()
	mux.HandleFunc("email.send", func(context.Context, *worker.Job) error { return errors.New("smtp: connection refused") })
	mux.HandleFunc("email.welcome", func(context.Context, *worker.Job) error { return nil })
	var replyTos sync.Map // caller role -> the reply_to of its request
	mux.Handle("email.lookup", worker.TypedResult(func(_ context.Context, j *worker.Job, name string) (string, error) {
		replyTos.Store(name, j.ReplyTo)
		return "found " + name, nil
	}))
	var mu sync.Mutex
	var seen []worker.Outcome
	done := make(chan struct{}, 16)
	pool, err := worker.NewPool(dial("worker"), topo, mux, worker.WithObserver(worker.OutcomeFunc(func(o worker.Outcome) {
		mu.Lock()
		seen = append(seen, o)
		mu.Unlock()
		select {
		case done <- struct{}{}:
		default: // the test looks at seen anyway
		}
	})))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- pool.Run(runCtx) }()

	// Each caller gets its reply: the one allowed a reply queue in it, the
	// other (refused the queue) through direct reply-to.
	for role, want := range map[string]func(string) bool{
		"caller":        func(r string) bool { return strings.HasPrefix(r, broker.ServerNamedPrefix) },
		"caller-direct": broker.IsDirectReplyTo,
	} {
		caller, err := broker.NewCaller(dial(role), broker.WithCallRouter(topo))
		if err != nil {
			t.Fatal(err)
		}
		defer caller.Close(ctx)
		callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		reply, err := caller.Call(callCtx, broker.Job{Type: "email.lookup", Payload: role})
		cancel()
		if err != nil {
			t.Fatalf("%s: Call: %v", role, err)
		}
		var answer string
		if err := reply.Decode(&answer); err != nil || answer != "found "+role {
			t.Fatalf("%s: reply %q (%v), want %q", role, answer, err, "found "+role)
		}
		if r, _ := replyTos.Load(role); !want(r.(string)) {
			t.Errorf("%s: the request's reply_to was %q", role, r)
		}
	}

	// Wait for the failing job's end and the delayed one's.
	want := map[string]worker.Status{failing: worker.DeadLettered, welcome: worker.Succeeded}
	outcomes := func() map[string][]worker.Status {
		mu.Lock()
		defer mu.Unlock()
		m := map[string][]worker.Status{}
		for _, o := range seen {
			m[o.JobID] = append(m[o.JobID], o.Status)
		}
		return m
	}
	for finished := false; !finished; {
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatalf("worker: outcomes so far %v, want %v last", outcomes(), want)
		}
		got := outcomes()
		finished = true
		for id, s := range want {
			if l := got[id]; len(l) == 0 || l[len(l)-1] != s {
				finished = false
			}
		}
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("worker: Run: %v", err)
	}
	if got := outcomes()[failing]; fmt.Sprint(got) != fmt.Sprint([]worker.Status{worker.Retried, worker.DeadLettered}) {
		t.Errorf("worker: the failing job went %v, want retried, then dead-lettered", got)
	}

	// The operator finds the dead letter, replays it to its origin, and
	// purges the work queue it went back to.
	if out := operator("dlq", "list", "billing.emails.dlq"); !strings.Contains(out, failing) {
		t.Errorf("operator: dlq list does not show job %s:\n%s", failing, out)
	}
	var replay struct {
		Moved []struct{ ID, Exchange string }
	}
	if err := json.Unmarshal([]byte(operator("--json", "dlq", "replay", "billing.emails.dlq", "--yes")), &replay); err != nil {
		t.Fatal(err)
	}
	if len(replay.Moved) != 1 || replay.Moved[0].ID != failing || replay.Moved[0].Exchange != "billing.jobs" {
		t.Errorf("operator: replay moved %+v, want job %s to billing.jobs", replay.Moved, failing)
	}
	var purge struct{ Deleted int }
	if err := json.Unmarshal([]byte(operator("--json", "dlq", "purge", "billing.emails", "--yes")), &purge); err != nil {
		t.Fatal(err)
	}
	if purge.Deleted != 1 {
		t.Errorf("operator: purge deleted %d jobs, want the replayed one", purge.Deleted)
	}

	// And what each role must not do.
	refused := func(t *testing.T, err error) {
		t.Helper()
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused {
			t.Errorf("got %v, want the broker's 403 ACCESS_REFUSED", err)
		}
	}
	consume := func(role, queue string) func(t *testing.T) {
		return func(t *testing.T) {
			c, err := broker.Consume(ctx, dial(role), queue)
			if err == nil {
				c.Close(ctx)
			}
			refused(t, err)
		}
	}
	declare := func(role string) func(t *testing.T) {
		return func(t *testing.T) {
			d := broker.NewDeclarer(dial(role))
			defer d.Close(ctx)
			refused(t, d.DeclareExchange(ctx, topology.Exchange{Name: "billing.more", Kind: topology.KindDirect, Durable: true}))
		}
	}
	t.Run("producer cannot consume", consume("producer", "billing.emails"))
	t.Run("producer cannot declare", declare("producer"))
	t.Run("worker cannot read dead letters", consume("worker", "billing.emails.dlq"))
	t.Run("worker cannot declare", declare("worker"))
	t.Run("worker cannot publish new jobs", func(t *testing.T) {
		p, err := broker.NewPublisher(dial("worker"), broker.WithRouter(topo))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
		refused(t, p.Publish(ctx, broker.Job{Type: "email.send"}))
	})
	t.Run("caller cannot consume", consume("caller", "billing.emails"))
	t.Run("operator cannot reach another vhost", func(t *testing.T) {
		var out, errb bytes.Buffer
		other := strings.TrimSuffix(urls["operator"], vhost) // the default vhost, "/"
		code := run(ctx, []string{"--url", other, "topology", "apply", "-f", path}, &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), "access to vhost '/' refused") {
			t.Errorf("apply on vhost / as the operator: exit %d\n%s", code, errb.String())
		}
	})
}
