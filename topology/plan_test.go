package topology

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const planFile = `
exchanges:
  jobs: {type: direct}
  docs: {type: headers}
queues:
  emails:
    type: quorum
    message_ttl: 60s
  reports:
    type: classic
    max_priority: 5
bindings:
  - {exchange: jobs, queue: emails, routing_key: email.send}
  - {exchange: jobs, queue: reports, routing_key: report.render}
  - {exchange: docs, queue: reports, arguments: {x-match: all, format: pdf}}
routes:
  email.send: {exchange: jobs}
  report.render: {exchange: jobs}
`

func parsePlanFile(t *testing.T, text string) *Topology {
	t.Helper()
	top, err := Parse("plan.yaml", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return top
}

// liveOf returns what the management API would show after declaring top:
// numbers as JSON decodes them (float64), no Derived or Pos, classic queues
// without a Type (as a broker that reports none), plus RabbitMQ's own
// exchanges and the default exchange's implicit bindings.
func liveOf(top *Topology) Live {
	asJSON := func(args Table) Table {
		if args == nil {
			return Table{}
		}
		out := Table{}
		for k, v := range args {
			switch n := v.(type) {
			case int64:
				out[k] = float64(n)
			default:
				out[k] = v
			}
		}
		return out
	}
	var l Live
	l.Exchanges = append(l.Exchanges,
		Exchange{Name: "", Kind: KindDirect, Durable: true, Args: Table{}},
		Exchange{Name: "amq.topic", Kind: KindTopic, Durable: true, Args: Table{}},
	)
	for _, x := range top.Exchanges {
		l.Exchanges = append(l.Exchanges, Exchange{Name: x.Name, Kind: x.Kind, Durable: x.Durable,
			AutoDelete: x.AutoDelete, Internal: x.Internal, Args: asJSON(x.Args)})
	}
	for _, q := range top.Queues {
		typ := q.Type
		if typ == Classic {
			typ = ""
		}
		l.Queues = append(l.Queues, Queue{Name: q.Name, Type: typ, Durable: q.Durable,
			AutoDelete: q.AutoDelete, Exclusive: q.Exclusive, Args: asJSON(q.Args)})
		l.Bindings = append(l.Bindings, Binding{Exchange: "", Queue: q.Name, RoutingKey: q.Name, Args: Table{}})
	}
	for _, b := range top.Bindings {
		l.Bindings = append(l.Bindings, Binding{Exchange: b.Exchange, Queue: b.Queue, ToExchange: b.ToExchange,
			RoutingKey: b.RoutingKey, Args: asJSON(b.Args)})
	}
	return l
}

// summary lists changes as "action kind name" lines, for comparison.
func summary(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c.Action)+" "+c.Kind+" "+c.Name)
	}
	return out
}

func setQueue(l *Live, name string, f func(*Queue)) {
	for i := range l.Queues {
		if l.Queues[i].Name == name {
			f(&l.Queues[i])
			return
		}
	}
	panic("no queue " + name)
}

func dropQueue(l *Live, name string) {
	l.Queues = slices.DeleteFunc(l.Queues, func(q Queue) bool { return q.Name == name })
	l.Bindings = slices.DeleteFunc(l.Bindings, func(b Binding) bool { return b.Queue == name })
}

func TestPlan(t *testing.T) {
	top := parsePlanFile(t, planFile)
	headersBinding := `docs -> queue reports (key "")`

	cases := []struct {
		name string
		edit func(*Live)
		want []string
	}{
		{
			name: "equal after normalising numbers and types",
			edit: func(*Live) {},
			want: nil,
		},
		{
			name: "json.Number and int arguments are equal too",
			edit: func(l *Live) {
				setQueue(l, "emails", func(q *Queue) {
					q.Args["x-message-ttl"] = json.Number("60000")
					q.Args["x-delivery-limit"] = 20
				})
			},
			want: nil,
		},
		{
			name: "missing queue and its bindings",
			edit: func(l *Live) { dropQueue(l, "emails") },
			want: []string{
				"create queue emails",
				`create binding jobs -> queue emails (key "email.send")`,
				`create binding warren.delay.deliver -> queue emails (key "*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.emails")`,
			},
		},
		{
			name: "missing derived entities",
			edit: func(l *Live) {
				dropQueue(l, "emails.dlq")
				l.Exchanges = slices.DeleteFunc(l.Exchanges, func(x Exchange) bool { return x.Name == DeadLetterExchange })
				l.Bindings = slices.DeleteFunc(l.Bindings, func(b Binding) bool { return b.Exchange == DeadLetterExchange })
			},
			want: []string{
				"create exchange warren.dead-letter",
				"create queue emails.dlq",
				`create binding warren.dead-letter -> queue emails.dlq (key "emails")`,
				`create binding warren.dead-letter -> queue reports.dlq (key "reports")`,
			},
		},
		{
			name: "missing exchange",
			edit: func(l *Live) {
				l.Exchanges = slices.DeleteFunc(l.Exchanges, func(x Exchange) bool { return x.Name == "docs" })
				l.Bindings = slices.DeleteFunc(l.Bindings, func(b Binding) bool { return b.Exchange == "docs" })
			},
			want: []string{"create exchange docs", "create binding " + headersBinding},
		},
		{
			name: "binding with other arguments is another binding",
			edit: func(l *Live) {
				for i, b := range l.Bindings {
					if b.Exchange == "docs" {
						l.Bindings[i].Args = Table{"x-match": "all", "format": "png"}
					}
				}
			},
			want: []string{"create binding " + headersBinding, "extra binding " + headersBinding},
		},
		{
			name: "binding arguments compare after normalising",
			edit: func(l *Live) {
				for i, b := range l.Bindings {
					if b.Exchange == "docs" {
						l.Bindings[i].Args = Table{"format": []byte("pdf"), "x-match": "all"}
					}
				}
			},
			want: nil,
		},
		{
			name: "extra bindings the file could own",
			edit: func(l *Live) {
				l.Bindings = append(l.Bindings,
					Binding{Exchange: "jobs", Queue: "someone.else", RoutingKey: "x"},              // source is the file's
					Binding{Exchange: "amq.topic", Queue: "emails", RoutingKey: "#"},               // destination is the file's
					Binding{Exchange: "jobs", Queue: "emails", RoutingKey: "email.digest"},         // both
					Binding{Exchange: "other", Queue: "other.q", RoutingKey: "x"},                  // neither
					Binding{Exchange: DeadLetterExchange, Queue: "other.dlq", RoutingKey: "other"}, // shared source
					Binding{Exchange: DelayDeliverExchange, Queue: "other", RoutingKey: "*.other"},
					Binding{Exchange: "", Queue: "other", RoutingKey: "other"},
				)
			},
			want: []string{
				`extra binding amq.topic -> queue emails (key "#")`,
				`extra binding jobs -> queue emails (key "email.digest")`,
				`extra binding jobs -> queue someone.else (key "x")`,
			},
		},
		{
			name: "extra dead-letter queue and cascade leftovers, not others' entities",
			edit: func(l *Live) {
				l.Queues = append(l.Queues,
					Queue{Name: "other"}, Queue{Name: "other.dlq"}, Queue{Name: "warren.delay.28"}, Queue{Name: "amq.gen-1"})
				l.Exchanges = append(l.Exchanges, Exchange{Name: "other", Kind: KindDirect}, Exchange{Name: "warren.delay.28", Kind: KindTopic},
					Exchange{Name: "amq.direct", Kind: KindDirect})
			},
			want: []string{"extra exchange warren.delay.28", "extra queue warren.delay.28"},
		},
		{
			name: "lower tunable: update by policy",
			edit: func(l *Live) { setQueue(l, "emails", func(q *Queue) { q.Args["x-message-ttl"] = float64(120000) }) },
			want: []string{"update queue emails"},
		},
		{
			name: "tunable the queue lacks: update by policy",
			edit: func(l *Live) { setQueue(l, "emails", func(q *Queue) { delete(q.Args, "x-message-ttl") }) },
			want: []string{"update queue emails"},
		},
		{
			name: "higher tunable: no policy can raise it",
			edit: func(l *Live) { setQueue(l, "emails", func(q *Queue) { q.Args["x-message-ttl"] = int64(30000) }) },
			want: []string{"recreate queue emails"},
		},
		{
			name: "tunable the file drops: no policy can remove it",
			edit: func(l *Live) { setQueue(l, "reports", func(q *Queue) { q.Args["x-max-length"] = int64(10) }) },
			want: []string{"recreate queue reports"},
		},
		{
			name: "other dead-letter exchange: the argument wins",
			edit: func(l *Live) {
				setQueue(l, "emails", func(q *Queue) { q.Args["x-dead-letter-exchange"] = "elsewhere" })
			},
			want: []string{"recreate queue emails"},
		},
		{
			name: "queue type",
			edit: func(l *Live) {
				setQueue(l, "reports", func(q *Queue) { q.Type = Quorum; q.Args["x-queue-type"] = Quorum })
			},
			want: []string{"recreate queue reports"},
		},
		{
			name: "durable",
			edit: func(l *Live) { setQueue(l, "reports", func(q *Queue) { q.Durable = false }) },
			want: []string{"recreate queue reports"},
		},
		{
			name: "other argument",
			edit: func(l *Live) { setQueue(l, "reports", func(q *Queue) { q.Args["x-max-priority"] = float64(10) }) },
			want: []string{"recreate queue reports"},
		},
		{
			name: "exchange type",
			edit: func(l *Live) {
				for i := range l.Exchanges {
					if l.Exchanges[i].Name == "jobs" {
						l.Exchanges[i].Kind = KindTopic
					}
				}
			},
			want: []string{"recreate exchange jobs"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			live := liveOf(top)
			c.edit(&live)
			got := Plan(top, live)
			if diff := cmp.Diff(c.want, summary(got)); diff != "" {
				t.Errorf("Plan (-want +got):\n%s\n%v", diff, got)
			}
		})
	}
}

func TestPlanEmptyBroker(t *testing.T) {
	top := parsePlanFile(t, planFile)
	got := Plan(top, Live{})
	if len(got) != len(top.Exchanges)+len(top.Queues)+len(top.Bindings) {
		t.Fatalf("Plan against an empty broker gave %d changes, want one per entity (%d)",
			len(got), len(top.Exchanges)+len(top.Queues)+len(top.Bindings))
	}
	for _, c := range got {
		if c.Action != ActionCreate {
			t.Errorf("%v: want create", c)
		}
	}
	if got[0].Kind != EntityExchange || got[len(got)-1].Kind != EntityBinding {
		t.Errorf("changes are not in declaration order: first %v, last %v", got[0], got[len(got)-1])
	}
}

func TestPlanLeftoverDeadLetterQueue(t *testing.T) {
	before := parsePlanFile(t, planFile)
	after := parsePlanFile(t, strings.Replace(planFile, "max_priority: 5", "max_priority: 5\n    dead_letter: false", 1))
	live := liveOf(before)
	got := summary(Plan(after, live))
	want := []string{
		// The queue loses its dead-letter arguments: a policy could set
		// them, but not remove them.
		"recreate queue reports",
		"extra queue reports.dlq",
		`extra binding warren.dead-letter -> queue reports.dlq (key "reports")`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Plan (-want +got):\n%s", diff)
	}
}

func TestPlanDetails(t *testing.T) {
	top := parsePlanFile(t, planFile)
	live := liveOf(top)
	setQueue(&live, "emails", func(q *Queue) { q.Args["x-message-ttl"] = float64(120000) })
	setQueue(&live, "reports", func(q *Queue) { q.Type = Quorum })
	got := Plan(top, live)
	if len(got) != 2 {
		t.Fatalf("Plan = %v, want 2 changes", got)
	}
	wantDiffs := [][]Diff{
		{{Attribute: "x-message-ttl", Live: int64(120000), Want: int64(60000), Policy: "message-ttl"}},
		{{Attribute: "type", Live: Quorum, Want: Classic}},
	}
	for i, c := range got {
		if diff := cmp.Diff(wantDiffs[i], c.Diffs); diff != "" {
			t.Errorf("%s: diffs (-want +got):\n%s", c.Name, diff)
		}
	}
	for _, want := range []string{
		`update (by policy) queue emails: x-message-ttl: 120000 on the broker, 60000 in the file (a policy can set "message-ttl")`,
		`needs recreate queue reports: type: "quorum" on the broker, "classic" in the file`,
	} {
		if !slices.ContainsFunc(got, func(c Change) bool { return c.String() == want }) {
			t.Errorf("no change reads %q in %q", want, got)
		}
	}
}

func TestNormalize(t *testing.T) {
	cases := []struct {
		a, b any
		eq   bool
	}{
		{int64(60000), 60000.0, true},
		{int64(60000), json.Number("60000"), true},
		{int64(60000), int32(60000), true},
		{uint64(1 << 63), float64(1 << 63), true},
		{int64(1), 1.5, false},
		{int64(1), "1", false},
		{"a", []byte("a"), true},
		{[]any{int64(1), "x"}, []any{1.0, "x"}, true},
		{map[string]any{"a": int64(1)}, Table{"a": 1.0}, true},
		{Table(nil), map[string]any{}, true},
		{true, "true", false},
	}
	for _, c := range cases {
		if got := equal(c.a, c.b); got != c.eq {
			t.Errorf("equal(%#v, %#v) = %t, want %t", c.a, c.b, got, c.eq)
		}
	}
}
