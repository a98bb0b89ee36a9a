package topology

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDefinitionsGolden compares the definitions of the complete example
// with testdata/topology/export/full.json, without the delay levels
// (TestDefinitionsShape covers them). Run with -update to rewrite it.
func TestDefinitionsGolden(t *testing.T) {
	top, err := Load(filepath.Join(testdata, "valid", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d := top.Definitions("")
	d.Exchanges = slices.DeleteFunc(d.Exchanges, func(x ExchangeDefinition) bool { return delayLevel.MatchString(x.Name) })
	d.Queues = slices.DeleteFunc(d.Queues, func(q QueueDefinition) bool { return delayLevel.MatchString(q.Name) })
	d.Bindings = slices.DeleteFunc(d.Bindings, func(b BindingDefinition) bool { return delayLevel.MatchString(b.Source) })
	got, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, filepath.Join(testdata, "export", "full.json"), string(got)+"\n")
}

// TestDefinitionsShape checks the JSON against the keys of RabbitMQ's
// definitions format, entity by entity, and the derived entities.
func TestDefinitionsShape(t *testing.T) {
	top := parsePlanFile(t, planFile)
	// The file gains an exclusive queue and an exchange-to-exchange binding.
	top.Exchanges = append(top.Exchanges, Exchange{Name: "events", Kind: KindTopic, Durable: true})
	top.Queues = append(top.Queues, Queue{Name: "mine", Type: Classic, Exclusive: true})
	top.Bindings = append(top.Bindings,
		Binding{Exchange: "events", ToExchange: "jobs", RoutingKey: "#"},
		Binding{Exchange: "jobs", Queue: "mine", RoutingKey: "mine"})

	data, err := json.Marshal(top.Definitions("prod"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string][]map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{
		"exchanges": {"arguments", "auto_delete", "durable", "internal", "name", "type", "vhost"},
		"queues":    {"arguments", "auto_delete", "durable", "name", "vhost"},
		"bindings":  {"arguments", "destination", "destination_type", "routing_key", "source", "vhost"},
	}
	if got := slices.Sorted(func(yield func(string) bool) {
		for k := range doc {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(got, []string{"bindings", "exchanges", "queues"}) {
		t.Fatalf("top-level keys %v", got)
	}
	for kind, want := range keys {
		for _, e := range doc[kind] {
			var got []string
			for k := range e {
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s entry %v has keys %v, want %v", kind, e, got, want)
			}
			if e["vhost"] != "prod" {
				t.Errorf("%s entry %v: vhost %v", kind, e["name"], e["vhost"])
			}
			if _, ok := e["arguments"].(map[string]any); !ok {
				t.Errorf("%s entry %v: arguments %#v is not an object", kind, e["name"], e["arguments"])
			}
		}
	}

	find := func(kind, key, name string) map[string]any {
		i := slices.IndexFunc(doc[kind], func(e map[string]any) bool { return e[key] == name })
		if i < 0 {
			return nil
		}
		return doc[kind][i]
	}
	if q := find("queues", "name", "mine"); q != nil {
		t.Errorf("exclusive queue exported: %v", q)
	}
	if b := find("bindings", "destination", "mine"); b != nil {
		t.Errorf("binding to an exclusive queue exported: %v", b)
	}
	if b := find("bindings", "source", "events"); b == nil || b["destination_type"] != "exchange" || b["destination"] != "jobs" {
		t.Errorf("exchange-to-exchange binding: %v", b)
	}
	emails := find("queues", "name", "emails")
	if diff := cmp.Diff(map[string]any{
		"x-queue-type":              "quorum",
		"x-message-ttl":             60000.0,
		"x-delivery-limit":          20.0,
		"x-dead-letter-exchange":    DeadLetterExchange,
		"x-dead-letter-routing-key": "emails",
	}, emails["arguments"]); diff != "" {
		t.Errorf("emails arguments (-want +got):\n%s", diff)
	}
	if find("queues", "name", "emails.dlq") == nil || find("exchanges", "name", DeadLetterExchange) == nil {
		t.Error("dead-letter queue or exchange missing")
	}
	var levels int
	for _, q := range doc["queues"] {
		if name := q["name"].(string); strings.HasPrefix(name, "warren.delay.") && delayLevel.MatchString(name) {
			levels++
		}
	}
	if levels != DelayLevels {
		t.Errorf("%d delay levels exported, want %d", levels, DelayLevels)
	}
	if l := find("queues", "name", DelayExchangeName(3)); l["arguments"].(map[string]any)["x-message-ttl"] != 8000.0 {
		t.Errorf("level 3: %v", l)
	}
}

func TestDefinitionsDefaultVhost(t *testing.T) {
	top := parsePlanFile(t, planFile)
	d := top.Definitions("")
	if d.Queues[0].Vhost != "/" || d.Exchanges[0].Vhost != "/" || d.Bindings[0].Vhost != "/" {
		t.Errorf("vhost %q, want /", d.Queues[0].Vhost)
	}
	// The definitions do not share the topology's tables.
	d.Queues[0].Arguments["x-extra"] = true
	if _, ok := top.Queues[0].Args["x-extra"]; ok {
		t.Error("Definitions shares its argument tables with the topology")
	}
}
