package topology

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeDeclarer records declarations. Entities named in existing exist
// already; those in conflicts fail to declare with a *ConflictError; those
// in broken fail their existence check.
type fakeDeclarer struct {
	existing  map[string]bool
	conflicts map[string]bool
	limits    map[string]bool // conflict on x-delivery-limit
	broken    map[string]bool
	calls     []string
	cancel    func() // called on the first declaration, when set
}

func (f *fakeDeclarer) exists(kind, name string) (bool, error) {
	f.calls = append(f.calls, "exists "+kind+" "+name)
	if f.broken[name] {
		return false, errors.New("channel closed")
	}
	return f.existing[name], nil
}

func (f *fakeDeclarer) declare(kind, name string) error {
	f.calls = append(f.calls, "declare "+kind+" "+name)
	if f.cancel != nil {
		f.cancel()
	}
	if f.conflicts[name] {
		return &ConflictError{Kind: kind, Name: name, Argument: "x-queue-type"}
	}
	if f.limits[name] {
		return &ConflictError{Kind: kind, Name: name, Argument: "x-delivery-limit"}
	}
	return nil
}

func (f *fakeDeclarer) ExchangeExists(_ context.Context, name string) (bool, error) {
	return f.exists("exchange", name)
}
func (f *fakeDeclarer) QueueExists(_ context.Context, name string) (bool, error) {
	return f.exists("queue", name)
}
func (f *fakeDeclarer) DeclareExchange(_ context.Context, x Exchange) error {
	return f.declare("exchange", x.Name)
}
func (f *fakeDeclarer) DeclareQueue(_ context.Context, q Queue) error {
	return f.declare("queue", q.Name)
}
func (f *fakeDeclarer) Bind(_ context.Context, b Binding) error {
	return f.declare("binding", BindingName(b))
}

var smallTopology = &Topology{
	Exchanges: []Exchange{{Name: "jobs", Kind: KindDirect}, {Name: "warren.dead-letter", Kind: KindDirect, Derived: true}},
	Queues:    []Queue{{Name: "emails"}, {Name: "reports"}, {Name: "emails.dlq", Derived: true}},
	Bindings: []Binding{
		{Exchange: "jobs", Queue: "emails", RoutingKey: "email.send"},
		{Exchange: "warren.dead-letter", Queue: "emails.dlq", RoutingKey: "emails", Derived: true},
	},
}

func TestDeclare(t *testing.T) {
	conflict := &ConflictError{Kind: "queue", Name: "reports", Argument: "x-queue-type"}
	f := &fakeDeclarer{
		existing:  map[string]bool{"jobs": true, "reports": true},
		conflicts: map[string]bool{"reports": true},
		broken:    map[string]bool{"warren.dead-letter": true},
	}
	report, err := Declare(context.Background(), f, smallTopology)

	want := []Declaration{
		{Kind: "exchange", Name: "jobs", Existed: true},
		{Kind: "exchange", Name: "warren.dead-letter", Derived: true, Err: errors.New("channel closed")},
		{Kind: "queue", Name: "emails", Created: true},
		{Kind: "queue", Name: "reports", Existed: true, Err: conflict},
		{Kind: "queue", Name: "emails.dlq", Derived: true, Created: true},
		{Kind: "binding", Name: `jobs -> queue emails (key "email.send")`},
		{Kind: "binding", Name: `warren.dead-letter -> queue emails.dlq (key "emails")`, Derived: true},
	}
	errText := cmp.Comparer(func(a, b error) bool { return (a == nil) == (b == nil) && (a == nil || a.Error() == b.Error()) })
	if diff := cmp.Diff(want, report.Entries, errText); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Name != "reports" {
		t.Errorf("error %v does not hold the conflict on reports", err)
	}
	if err == nil || len(err.(interface{ Unwrap() []error }).Unwrap()) != 2 {
		t.Errorf("error = %v, want the two failures joined", err)
	}
	// Every entity is checked, then declared, even after a failure; an
	// entity whose check fails is not declared.
	wantCalls := []string{
		"exists exchange jobs", "declare exchange jobs",
		"exists exchange warren.dead-letter",
		"exists queue emails", "declare queue emails",
		"exists queue reports", "declare queue reports",
		"exists queue emails.dlq", "declare queue emails.dlq",
		`declare binding jobs -> queue emails (key "email.send")`,
		`declare binding warren.dead-letter -> queue emails.dlq (key "emails")`,
	}
	if diff := cmp.Diff(wantCalls, f.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	wantSummary := "exchanges: 0 created, 1 existed, 1 failed\n" +
		"queues:    2 created, 0 existed, 1 failed\n" +
		"bindings:  2 bound"
	if diff := cmp.Diff(wantSummary, report.String()); diff != "" {
		t.Errorf("String() (-want +got):\n%s", diff)
	}
	if got := len(report.Failed()); got != 2 {
		t.Errorf("Failed() has %d entries, want 2", got)
	}
}

func TestDeclareStatus(t *testing.T) {
	got := []string{
		Declaration{Created: true}.Status(),
		Declaration{Existed: true}.Status(),
		Declaration{Kind: "binding"}.Status(),
		Declaration{Existed: true, Err: errors.New("x")}.Status(),
	}
	if diff := cmp.Diff([]string{"created", "existed", "bound", "failed"}, got); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
}

func TestDeclareStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeDeclarer{cancel: cancel}
	report, err := Declare(ctx, f, smallTopology)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	if len(report.Entries) != 1 {
		t.Errorf("report has %d entries after the context ended, want 1", len(report.Entries))
	}
}

func TestDeclareParsedTopology(t *testing.T) {
	top, err := Load("../examples/quickstart/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDeclarer{}
	report, err := Declare(context.Background(), f, top)
	if err != nil {
		t.Fatal(err)
	}
	want := len(top.Exchanges) + len(top.Queues) + len(top.Bindings)
	if len(report.Entries) != want {
		t.Errorf("report has %d entries, want %d", len(report.Entries), want)
	}
	// Exchanges, then queues, then bindings.
	rank := map[string]int{"exchange": 0, "queue": 1, "binding": 2}
	for i := 1; i < len(report.Entries); i++ {
		if prev, cur := report.Entries[i-1], report.Entries[i]; rank[prev.Kind] > rank[cur.Kind] {
			t.Fatalf("%s %s declared after %s %s", cur.Kind, cur.Name, prev.Kind, prev.Name)
		}
	}
}

// TestDeclareOlderDeliveryLimit: a derived queue an earlier warren
// declared without x-delivery-limit is kept, with a warning saying what to
// do; a work queue in the same conflict, or one on another argument, still
// fails.
func TestDeclareOlderDeliveryLimit(t *testing.T) {
	top := &Topology{Queues: []Queue{
		{Name: "emails"},
		{Name: "emails.dlq", Derived: true, Args: Table{"x-delivery-limit": int64(DeadLetterDeliveryLimit)}},
		{Name: "emails.quarantine", Derived: true, Args: Table{"x-delivery-limit": int64(DeadLetterDeliveryLimit)}},
		{Name: "new.dlq", Derived: true},
	}}
	d := &fakeDeclarer{
		existing: map[string]bool{"emails": true, "emails.dlq": true, "emails.quarantine": true},
		limits:   map[string]bool{"emails": true, "emails.dlq": true, "new.dlq": true},
	}
	r, err := Declare(context.Background(), d, top)
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Name != "emails" {
		t.Fatalf("Declare: %v, want the work queue's conflict alone", err)
	}
	got := map[string]string{}
	for _, o := range r.Entries {
		got[o.Name] = o.Status()
		if o.Name == "emails.dlq" && !strings.Contains(o.Warning, "delivery-limit -1") {
			t.Errorf("emails.dlq warning %q", o.Warning)
		}
		if o.Name != "emails.dlq" && o.Warning != "" {
			t.Errorf("%s: warning %q", o.Name, o.Warning)
		}
	}
	want := map[string]string{"emails": "failed", "emails.dlq": "existed", "emails.quarantine": "existed", "new.dlq": "failed"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}
