package broker_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/topology"
)

func TestDialTriesURLsInTurn(t *testing.T) {
	good := brokertest.URL(t)
	// Port 1 on loopback refuses at once.
	conn, err := broker.Dial(brokertest.Context(t, 30*time.Second), []string{"amqp://guest:guest@127.0.0.1:1/", good})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	if conn.URL() != broker.RedactURL(good) {
		t.Errorf("connected to %s, want %s", conn.URL(), broker.RedactURL(good))
	}
}

func TestDialErrorsNeverShowThePassword(t *testing.T) {
	u, err := url.Parse(brokertest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	const secret = "s3cr3t-Pa55word"
	u.User = url.UserPassword("warren-nobody", secret)
	cases := map[string][]string{
		"wrong password":   {u.String()},
		"refused":          {"amqp://guest:" + secret + "@127.0.0.1:1/"},
		"unparsable":       {"amqp://guest:" + secret + "@127.0.0.1:notaport/"},
		"several, all bad": {"amqp://u:" + secret + "@127.0.0.1:1/", u.String()},
	}
	for name, urls := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := broker.Dial(brokertest.Context(t, 30*time.Second), urls)
			if err == nil {
				t.Fatal("Dial succeeded, want an error")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows the password: %v", err)
			}
			if !strings.Contains(err.Error(), "RabbitMQ is running") {
				t.Errorf("error %q should say what to check", err)
			}
		})
	}
}

func TestDialOptionsRejectBadValues(t *testing.T) {
	ctx := context.Background()
	for name, opt := range map[string]broker.Option{
		"heartbeat":     broker.WithHeartbeat(0),
		"dial timeout":  broker.WithDialTimeout(-time.Second),
		"tls":           broker.WithTLS(nil),
		"property key":  broker.WithClientProperty("", "x"),
		"own property":  broker.WithClientProperty("pid", "1"),
		"property type": broker.WithClientProperty("queues", []string{"a"}),
	} {
		if _, err := broker.Dial(ctx, []string{brokertest.URL(t)}, opt); err == nil {
			t.Errorf("%s: Dial accepted a bad value", name)
		}
	}
	if _, err := broker.Dial(ctx, nil); err == nil {
		t.Error("Dial without URLs succeeded")
	}
}

func TestClientProperties(t *testing.T) {
	props, err := broker.ClientPropertiesOf(broker.WithClientProperty("queues", "email,images"), broker.WithClientProperty("concurrency", 16))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	for k, want := range map[string]any{
		"product": "warren", "version": broker.Version(), "platform": "Go " + runtime.Version(),
		"host": host, "pid": int64(os.Getpid()), "queues": "email,images", "concurrency": int64(16),
	} {
		if got := props[k]; got != want {
			t.Errorf("client property %s = %v (%T), want %v (%T)", k, got, got, want, want)
		}
	}
	for _, bad := range []broker.Option{
		broker.WithClientProperty("product", "other"), broker.WithClientProperty("capabilities", "x"),
		broker.WithClientProperty("connection_name", "x"), broker.WithClientProperty("x", 1.5),
	} {
		if _, err := broker.ClientPropertiesOf(bad); err == nil {
			t.Error("a reserved key or a float was accepted as a client property")
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://guest:guest@127.0.0.1:5672/":    "amqp://guest:xxxxx@127.0.0.1:5672/",
		"amqps://u:p%40ss@host/vh":              "amqps://u:xxxxx@host/vh",
		"amqp://127.0.0.1/":                     "amqp://127.0.0.1/",
		"amqp://user@host/":                     "amqp://user@host/",
		"amqp://u:secret@bad host:notaport/x%z": "amqp://xxxxx@bad host:notaport/x%z",
		"amqp://u:p@ss@host/":                   "amqp://u:xxxxx@host/", // Go takes an "@" in a password
		"amqp://u:pass#word@host:5672/":         "amqp://xxxxx@host:5672/",
		"amqp://u:5672#word@host/":              "amqp://xxxxx@host/", // parses, with the password in the fragment
		"amqp://u:12/word@host/":                "amqp://xxxxx@host/", // parses, with the password in the path
	} {
		if got := broker.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDeclarerIsIdempotentAndReportsConflicts(t *testing.T) {
	conn := dial(t)
	ctx := brokertest.Context(t, 30*time.Second)
	d := broker.NewDeclarer(conn)
	defer d.Close(ctx)
	xname, qname := brokertest.Name(t, "x"), brokertest.Name(t, "q")
	brokertest.DeleteExchangesAtCleanup(t, xname)
	brokertest.DeleteQueuesAtCleanup(t, qname)

	x := topology.Exchange{Name: xname, Kind: topology.KindDirect, Durable: true}
	q := topology.Queue{Name: qname, Type: topology.Quorum, Durable: true, Args: topology.Table{"x-queue-type": "quorum", "x-delivery-limit": int64(5)}}
	b := topology.Binding{Exchange: xname, Queue: qname, RoutingKey: "k"}

	for _, name := range []string{xname} {
		if ok, err := d.ExchangeExists(ctx, name); err != nil || ok {
			t.Fatalf("ExchangeExists before declaring = %v, %v; want false, nil", ok, err)
		}
	}
	if ok, err := d.QueueExists(ctx, qname); err != nil || ok {
		t.Fatalf("QueueExists before declaring = %v, %v; want false, nil", ok, err)
	}
	for round := range 2 {
		if err := d.DeclareExchange(ctx, x); err != nil {
			t.Fatalf("round %d: DeclareExchange: %v", round, err)
		}
		if err := d.DeclareQueue(ctx, q); err != nil {
			t.Fatalf("round %d: DeclareQueue: %v", round, err)
		}
		if err := d.Bind(ctx, b); err != nil {
			t.Fatalf("round %d: Bind: %v", round, err)
		}
	}
	if ok, err := d.QueueExists(ctx, qname); err != nil || !ok {
		t.Fatalf("QueueExists after declaring = %v, %v; want true, nil", ok, err)
	}

	conflicts := []struct {
		name    string
		declare func() error
		kind    string
		arg     string
	}{
		{"queue type", func() error {
			c := q
			c.Type, c.Args = topology.Classic, topology.Table{"x-queue-type": "classic"}
			return d.DeclareQueue(ctx, c)
		}, "queue", "x-queue-type"},
		{"delivery limit", func() error {
			c := q
			c.Args = topology.Table{"x-queue-type": "quorum", "x-delivery-limit": int64(7)}
			return d.DeclareQueue(ctx, c)
		}, "queue", "x-delivery-limit"},
		{"exchange type", func() error {
			c := x
			c.Kind = topology.KindTopic
			return d.DeclareExchange(ctx, c)
		}, "exchange", "type"},
	}
	for _, c := range conflicts {
		t.Run(c.name, func(t *testing.T) {
			err := c.declare()
			var ce *topology.ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("conflicting declare = %v, want *topology.ConflictError", err)
			}
			if ce.Kind != c.kind || ce.Argument != c.arg {
				t.Fatalf("conflict names %s %q argument %q, want %s argument %q", ce.Kind, ce.Name, ce.Argument, c.kind, c.arg)
			}
		})
	}
	// The declarer recovers from the closed channel.
	if err := d.DeclareQueue(ctx, q); err != nil {
		t.Fatalf("DeclareQueue after conflicts: %v", err)
	}
}
