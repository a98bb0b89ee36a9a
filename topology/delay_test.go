package topology

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestDelayRoute(t *testing.T) {
	zeros := strings.Repeat("0.", DelayLevels)
	tests := []struct {
		name     string
		d        time.Duration
		exchange string
		key      string
	}{
		{"zero", 0, DelayDeliverExchange, zeros + "emails"},
		{"negative", -time.Hour, DelayDeliverExchange, zeros + "emails"},
		{"1ns rounds up to 1s", time.Nanosecond, "warren.delay.00", strings.Repeat("0.", 27) + "1.emails"},
		{"1s", time.Second, "warren.delay.00", strings.Repeat("0.", 27) + "1.emails"},
		{"1.5s rounds up to 2s", 1500 * time.Millisecond, "warren.delay.01", strings.Repeat("0.", 26) + "1.0.emails"},
		{"2s", 2 * time.Second, "warren.delay.01", strings.Repeat("0.", 26) + "1.0.emails"},
		{"5s", 5 * time.Second, "warren.delay.02", strings.Repeat("0.", 25) + "1.0.1.emails"},
		{"20s", 20 * time.Second, "warren.delay.04", strings.Repeat("0.", 23) + "1.0.1.0.0.emails"},
		{"1h", time.Hour, "warren.delay.11", strings.Repeat("0.", 16) + "1.1.1.0.0.0.0.1.0.0.0.0.emails"},
		{"max", MaxDelay, "warren.delay.27", strings.Repeat("1.", DelayLevels) + "emails"},
		{"just under max", MaxDelay - time.Nanosecond, "warren.delay.27", strings.Repeat("1.", DelayLevels) + "emails"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exchange, key, err := DelayRoute("emails", tt.d)
			if err != nil {
				t.Fatalf("DelayRoute: %v", err)
			}
			if diff := cmp.Diff([]string{tt.exchange, tt.key}, []string{exchange, key}); diff != "" {
				t.Errorf("DelayRoute(emails, %s) (-want +got):\n%s", tt.d, diff)
			}
		})
	}
}

func TestDelayRouteErrors(t *testing.T) {
	for _, d := range []time.Duration{MaxDelay + time.Nanosecond, MaxDelay + time.Second, math.MaxInt64} {
		if _, _, err := DelayRoute("emails", d); !errors.Is(err, ErrDelayTooLong) {
			t.Errorf("DelayRoute(emails, %s) error = %v, want ErrDelayTooLong", d, err)
		}
	}
	if _, _, err := DelayRoute("", time.Second); err == nil {
		t.Error("DelayRoute with an empty queue name succeeded")
	}
}

func TestDelayNames(t *testing.T) {
	got := []string{DelayExchangeName(0), DelayExchangeName(7), DelayExchangeName(27), DeadLetterQueueName("emails")}
	want := []string{"warren.delay.00", "warren.delay.07", "warren.delay.27", "emails.dlq"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if MaxDelay != (1<<28-1)*time.Second {
		t.Errorf("MaxDelay = %s", MaxDelay)
	}
}

// cascadeTopology has work queues whose names overlap as topic words, to
// check that a delayed message reaches exactly its own queue.
const cascadeTopology = `
exchanges:
  jobs: {type: direct}
queues:
  b:
  a.b:
  b.c:
  emails: {type: classic}
bindings:
  - {exchange: jobs, queue: b, routing_key: b}
  - {exchange: jobs, queue: a.b, routing_key: a.b}
  - {exchange: jobs, queue: b.c, routing_key: b.c}
  - {exchange: jobs, queue: emails, routing_key: emails}
`

// TestDelayCascade publishes, in a simulation of RabbitMQ's routing over the
// derived bindings and TTLs, a message for several delays and checks that it
// reaches its queue, and only that one, after exactly the delay.
func TestDelayCascade(t *testing.T) {
	top, err := Parse("cascade.yaml", []byte(cascadeTopology))
	if err != nil {
		t.Fatal(err)
	}
	delays := []time.Duration{
		0, time.Second, 2 * time.Second, 3 * time.Second, 20 * time.Second,
		time.Hour, 3601 * time.Second, 24 * time.Hour, 1 << 27 * time.Second, MaxDelay,
	}
	for _, queue := range []string{"b", "a.b", "b.c", "emails"} {
		for _, d := range delays {
			exchange, key, err := DelayRoute(queue, d)
			if err != nil {
				t.Fatal(err)
			}
			got := simulate(t, top, exchange, key)
			want := delivery{queue: queue, after: d}
			if diff := cmp.Diff(want, got, cmpDelivery); diff != "" {
				t.Errorf("%s to %q via %s %s (-want +got):\n%s", d, queue, exchange, key, diff)
			}
			if hops := bitsSet(d); got.waits != hops {
				t.Errorf("%s to %q waited in %d queues, want %d (one per bit set)", d, queue, got.waits, hops)
			}
		}
	}
}

func TestDelayCascadeUnknownQueue(t *testing.T) {
	top, err := Parse("cascade.yaml", []byte(cascadeTopology))
	if err != nil {
		t.Fatal(err)
	}
	for _, queue := range []string{"nosuch", "c", "x.a.b"} {
		exchange, key, err := DelayRoute(queue, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got := simulate(t, top, exchange, key)
		want := delivery{queue: DelayUnroutable, after: 3 * time.Second}
		if diff := cmp.Diff(want, got, cmpDelivery); diff != "" {
			t.Errorf("delay to %q (-want +got):\n%s", queue, diff)
		}
	}
}

var cmpDelivery = cmp.Options{cmp.AllowUnexported(delivery{}), cmpopts.IgnoreFields(delivery{}, "waits")}

type delivery struct {
	queue string
	after time.Duration
	waits int // queues it waited in
}

// simulate routes a message as RabbitMQ would through top's bindings: a
// queue with a TTL and a dead-letter exchange holds it for the TTL, then
// dead-letters it with its routing key unchanged; any other queue is where
// it ends. Every step must match exactly one binding.
func simulate(t *testing.T, top *Topology, exchange, key string) delivery {
	t.Helper()
	var got delivery
	for hops := 0; hops < 3*DelayLevels; hops++ {
		x, ok := top.Exchange(exchange)
		if !ok {
			t.Fatalf("exchange %q is not in the topology", exchange)
		}
		var matches []Binding
		for _, b := range top.Bindings {
			if b.Exchange == exchange && bindingMatches(x.Kind, b.RoutingKey, &key) {
				matches = append(matches, b)
			}
		}
		if len(matches) == 0 {
			ae, ok := x.Args["alternate-exchange"].(string)
			if !ok {
				t.Fatalf("key %q dropped by exchange %q", key, exchange)
			}
			exchange = ae
			continue
		}
		if len(matches) > 1 {
			t.Fatalf("key %q matches %d bindings of exchange %q: %v", key, len(matches), exchange, matches)
		}
		b := matches[0]
		if b.ToExchange != "" {
			exchange = b.ToExchange
			continue
		}
		q, ok := top.Queue(b.Queue)
		if !ok {
			t.Fatalf("queue %q is not in the topology", b.Queue)
		}
		ttl, hasTTL := q.Args["x-message-ttl"].(int64)
		dlx, hasDLX := q.Args["x-dead-letter-exchange"].(string)
		if !q.Derived || !hasTTL || !hasDLX {
			got.queue = q.Name
			return got
		}
		if _, ok := q.Args["x-dead-letter-routing-key"]; ok {
			t.Fatalf("delay queue %q replaces the routing key", q.Name)
		}
		got.after += time.Duration(ttl) * time.Millisecond
		got.waits++
		exchange = dlx
	}
	t.Fatalf("key %q still travelling after %d hops", key, 3*DelayLevels)
	return got
}

func bitsSet(d time.Duration) int {
	n := 0
	for s := uint64(d / time.Second); s > 0; s &= s - 1 {
		n++
	}
	return n
}

func TestDeriveDelays(t *testing.T) {
	for _, tt := range []struct {
		name, file, typ string
	}{
		{"quorum work queue", "queues: {a: {type: quorum}, b: {type: classic}}", Quorum},
		{"classic only: still quorum, the cascade is shared by the vhost", "queues: {a: {type: classic}}", Quorum},
		{"explicit", "delay: {queue_type: classic}\nqueues: {a: {type: quorum}}", Classic},
	} {
		t.Run(tt.name, func(t *testing.T) {
			top, err := Parse("d.yaml", []byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			for level := range DelayLevels {
				name := DelayExchangeName(level)
				x, ok := top.Exchange(name)
				if want := (Exchange{Name: name, Kind: KindTopic, Durable: true, Derived: true}); !ok || !cmp.Equal(want, x) {
					t.Errorf("exchange %s = %+v, want %+v", name, x, want)
				}
				q, ok := top.Queue(name)
				want := Queue{Name: name, Type: tt.typ, Durable: true, Derived: true, Args: Table{
					"x-queue-type":           tt.typ,
					"x-message-ttl":          int64(1000) << level,
					"x-dead-letter-exchange": delayTarget(level),
				}}
				if tt.typ == Quorum {
					want.Args["x-dead-letter-strategy"] = "at-least-once"
					want.Args["x-overflow"] = "reject-publish"
				}
				if diff := cmp.Diff(want, q); !ok || diff != "" {
					t.Errorf("queue %s (-want +got):\n%s", name, diff)
				}
			}
			if q, _ := top.Queue(DelayUnroutable); q.Type != tt.typ {
				t.Errorf("%s is %s, want %s", DelayUnroutable, q.Type, tt.typ)
			}
		})
	}
}

func TestNoDelaysWithoutWorkQueues(t *testing.T) {
	top, err := Parse("x.yaml", []byte("exchanges: {jobs: {type: fanout}}"))
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Exchanges) != 1 || len(top.Queues) != 0 || len(top.Bindings) != 0 {
		t.Errorf("got %d exchanges, %d queues, %d bindings; want only the file's exchange",
			len(top.Exchanges), len(top.Queues), len(top.Bindings))
	}
}
