package topology

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestQueuesFor(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		jobType string
		want    []string
		wantErr string // substring of the error; empty: no error
	}{
		{
			name: "direct exchange matches the exact key",
			file: `
exchanges: {x: {type: direct}}
queues: {a: {}, b: {}, c: {}}
bindings:
  - {exchange: x, queue: a, routing_key: email.send}
  - {exchange: x, queue: b, routing_key: email}
  - {exchange: x, queue: c, routing_key: email.send}
routes: {email.send: {exchange: x}, email: {exchange: x}}
`,
			jobType: "email.send",
			want:    []string{"a", "c"},
		},
		{
			name: "route with its own routing key",
			file: `
exchanges: {x: {type: direct}}
queues: {a: {}, b: {}}
bindings:
  - {exchange: x, queue: a, routing_key: mail}
  - {exchange: x, queue: b, routing_key: email.send}
routes: {email.send: {exchange: x, routing_key: mail}}
`,
			jobType: "email.send",
			want:    []string{"a"},
		},
		{
			name: "fanout reaches every binding, in binding order",
			file: `
exchanges: {x: {type: fanout}}
queues: {a: {}, b: {}, c: {}}
bindings:
  - {exchange: x, queue: c, routing_key: ignored}
  - {exchange: x, queue: a}
  - {exchange: x, queue: b}
routes: {report.render: {exchange: x}}
`,
			jobType: "report.render",
			want:    []string{"c", "a", "b"},
		},
		{
			name: "topic star is one word, hash zero or more",
			file: `
exchanges: {x: {type: topic}}
queues: {one: {}, many: {}, none: {}, exact: {}, tail: {}}
bindings:
  - {exchange: x, queue: one, routing_key: "email.*"}
  - {exchange: x, queue: many, routing_key: "#"}
  - {exchange: x, queue: none, routing_key: "*"}
  - {exchange: x, queue: exact, routing_key: email.send.now}
  - {exchange: x, queue: tail, routing_key: "email.send.#"}
routes: {email.send: {exchange: x}}
`,
			jobType: "email.send",
			want:    []string{"one", "many", "tail"},
		},
		{
			name: "a queue bound several ways appears once",
			file: `
exchanges: {x: {type: topic}, y: {type: fanout}}
queues: {a: {}, b: {}}
bindings:
  - {exchange: x, queue: a, routing_keys: ["email.*", "#"]}
  - {exchange: x, to_exchange: y, routing_key: "email.send"}
  - {exchange: y, queue: b}
  - {exchange: y, queue: a}
routes: {email.send: {exchange: x}}
`,
			jobType: "email.send",
			want:    []string{"a", "b"},
		},
		{
			name: "exchange-to-exchange bindings are followed with the same key",
			file: `
exchanges: {x: {type: direct}, y: {type: topic}, z: {type: direct}}
queues: {a: {}, b: {}, c: {}}
bindings:
  - {exchange: x, to_exchange: y, routing_key: email.send}
  - {exchange: x, to_exchange: z, routing_key: other}
  - {exchange: y, queue: a, routing_key: "email.#"}
  - {exchange: y, queue: b, routing_key: "sms.#"}
  - {exchange: z, queue: c, routing_key: email.send}
routes: {email.send: {exchange: x}}
`,
			jobType: "email.send",
			want:    []string{"a"},
		},
		{
			name: "a cycle of exchanges ends",
			file: `
exchanges: {x: {type: fanout}, y: {type: fanout}}
queues: {a: {}}
bindings:
  - {exchange: x, to_exchange: y}
  - {exchange: y, to_exchange: x}
  - {exchange: y, queue: a}
routes: {t: {exchange: x}}
`,
			jobType: "t",
			want:    []string{"a"},
		},
		{
			name: "alternate exchange takes what no binding matches",
			file: `
exchanges:
  x: {type: direct, alternate_exchange: ae}
  ae: {type: fanout}
queues: {a: {}, lost: {}}
bindings:
  - {exchange: x, queue: a, routing_key: email.send}
  - {exchange: ae, queue: lost}
routes: {email.send: {exchange: x}, sms.send: {exchange: x}}
`,
			jobType: "sms.send",
			want:    []string{"lost"},
		},
		{
			name: "alternate exchange is not used when a binding matches",
			file: `
exchanges:
  x: {type: direct, alternate_exchange: ae}
  ae: {type: fanout}
queues: {a: {}, lost: {}}
bindings:
  - {exchange: x, queue: a, routing_key: email.send}
  - {exchange: ae, queue: lost}
routes: {email.send: {exchange: x}}
`,
			jobType: "email.send",
			want:    []string{"a"},
		},
		{
			name: "a matching exchange-to-exchange binding counts as a match",
			file: `
exchanges:
  x: {type: direct, alternate_exchange: ae}
  y: {type: direct}
  ae: {type: fanout}
queues: {a: {}, lost: {}}
bindings:
  - {exchange: x, to_exchange: y, routing_key: email.send}
  - {exchange: y, queue: a, routing_key: email.send}
  - {exchange: ae, queue: lost}
routes: {email.send: {exchange: x}}
`,
			jobType: "email.send",
			want:    []string{"a"},
		},
		{
			name: "built-in exchange",
			file: `
queues: {a: {}, b: {}}
bindings:
  - {exchange: amq.topic, queue: a, routing_key: "email.*"}
  - {exchange: amq.topic, queue: b, routing_key: "sms.*"}
routes: {email.send: {exchange: amq.topic}}
`,
			jobType: "email.send",
			want:    []string{"a"},
		},
		{
			name: "headers exchange needs an explicit queue",
			file: `
exchanges: {x: {type: headers}}
queues: {a: {}}
bindings:
  - {exchange: x, queue: a, arguments: {x-match: all, region: eu}}
routes: {t: {exchange: x}}
`,
			jobType: "t",
			wantErr: `headers exchange "x"`,
		},
		{
			name: "headers exchange behind an exchange-to-exchange binding",
			file: `
exchanges: {x: {type: direct}, h: {type: headers}}
queues: {a: {}}
bindings:
  - {exchange: x, to_exchange: h, routing_key: t}
  - {exchange: h, queue: a, arguments: {x-match: any, region: eu}}
routes: {t: {exchange: x}}
`,
			jobType: "t",
			wantErr: "name the queue explicitly",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top, err := Parse("t.yaml", []byte(tt.file))
			if err != nil {
				t.Fatalf("Parse:\n%v", err)
			}
			got, err := top.QueuesFor(tt.jobType)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "topology: ") {
					t.Fatalf("QueuesFor(%q) = %v, %v; want an error containing %q", tt.jobType, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("QueuesFor(%q): %v", tt.jobType, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("QueuesFor(%q) differs (-want +got):\n%s", tt.jobType, diff)
			}
		})
	}
}

func TestQueuesForUnknownJobType(t *testing.T) {
	top, err := Parse("t.yaml", []byte("queues: {a: {}}\nbindings: [{exchange: amq.direct, queue: a, routing_key: t}]\nroutes: {t: {exchange: amq.direct}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = top.QueuesFor("nope")
	if !errors.Is(err, ErrNoRoute) || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "routes:") {
		t.Fatalf("QueuesFor of an unknown type = %v, want ErrNoRoute naming the type and saying where to add it", err)
	}
}

// A Topology built by hand may bind derived entities anywhere: they are
// still never returned.
func TestQueuesForSkipsDerivedEntities(t *testing.T) {
	top := &Topology{
		Exchanges: []Exchange{{Name: "x", Kind: KindFanout}},
		Queues: []Queue{
			{Name: "a"},
			{Name: "a.dlq", Derived: true},
			{Name: DelayUnroutable, Derived: true},
		},
		Bindings: []Binding{
			{Exchange: "x", Queue: DelayUnroutable, Derived: true},
			{Exchange: "x", Queue: DelayUnroutable},
			{Exchange: "x", Queue: "a.dlq"},
			{Exchange: "x", Queue: "a"},
		},
		Routes: map[string]Route{"t": {JobType: "t", Exchange: "x", RoutingKey: "t"}},
	}
	got, err := top.QueuesFor("t")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a"}, got); diff != "" {
		t.Errorf("QueuesFor differs (-want +got):\n%s", diff)
	}
}
