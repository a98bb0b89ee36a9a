package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/topology"
)

// The password of every URL of these tests. Its "#" must be
// percent-encoded in a URL; written as is, it cuts the URL in the middle
// of the password, and each half alone must not leak either.
const (
	secretHead = "Quokka7"
	secretTail = "Wombat9"
	secret     = secretHead + "#" + secretTail
)

// capture collects everything a Conn tells: its log lines at every level,
// its state changes, and the errors the test adds.
type capture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *capture) add(what string, v any) { fmt.Fprintf(c, "%s: %v\n", what, v) }

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func (c *capture) options() []broker.Option {
	return []broker.Option{
		broker.WithLogger(zerolog.New(c).Level(zerolog.TraceLevel)),
		broker.WithObserver(broker.ObserverFuncs{OnConnection: func(s broker.StateChange) { c.add("state", fmt.Sprintf("%s %s %v", s.State, s.URL, s.Err)) }}),
	}
}

// noSecret fails t if the password, or either half of it, is in text.
func noSecret(t *testing.T, text string) {
	t.Helper()
	for _, s := range []string{secretHead, secretTail} {
		if strings.Contains(text, s) {
			t.Errorf("the password (%q) is shown:\n%s", s, text)
		}
	}
}

// withSecret returns u with user and the password, percent-encoded.
func withSecret(u, user string) string {
	return strings.Replace(u, "://", "://"+url.UserPassword(user, secret).String()+"@", 1)
}

func TestDialFailuresNeverShowThePassword(t *testing.T) {
	shared, err := url.Parse(brokertest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	wrongPassword := brokertest.URLFor(t, "guest", secret, "") // harmless: the login fails
	cases := map[string][]string{
		"unreachable":                  {withSecret("amqp://127.0.0.1:1/", "guest")},
		"unreachable, amqps":           {withSecret("amqps://127.0.0.1:1/", "guest")},
		"amqps to a plain AMQP port":   {withSecret("amqps://"+shared.Host+"/", "guest")},
		"wrong password":               {wrongPassword},
		"malformed: # not encoded":     {"amqp://guest:" + secret + "@" + shared.Host + "/"},
		"malformed: / not encoded":     {"amqp://guest:" + secretHead + "/" + secretTail + "@" + shared.Host + "/"},
		"malformed: cut short":         {"amqp://guest:5672#" + secretTail + "@" + shared.Host + "/"},
		"malformed: bad escape":        {"amqp://guest:" + secretHead + "%zz" + secretTail + "@" + shared.Host + "/"},
		"malformed: space":             {"amqp://guest:" + secretHead + " " + secretTail + "@" + shared.Host + "/"},
		"malformed: port":              {withSecret("amqp://127.0.0.1:notaport/", "guest")},
		"malformed: scheme":            {withSecret("http://"+shared.Host+"/", "guest")},
		"several URLs, each one wrong": {withSecret("amqp://127.0.0.1:1/", "guest"), "amqp://guest:" + secret + "@" + shared.Host + "/", wrongPassword},
	}
	for name, urls := range cases {
		t.Run(name, func(t *testing.T) {
			var c capture
			_, err := broker.Dial(brokertest.Context(t, 30*time.Second), urls, c.options()...)
			if err == nil {
				t.Fatal("Dial succeeded")
			}
			c.add("error", err)
			if !strings.Contains(c.String(), "connection attempt failed") {
				t.Errorf("no attempt logged:\n%s", c.String())
			}
			noSecret(t, c.String())
		})
	}
}

// TestLostConnectionNeverShowsThePassword: a connection is made, the
// broker closes it, and the Conn tries two bad URLs before the good one
// again; the same password is in all three.
func TestLostConnectionNeverShowsThePassword(t *testing.T) {
	vhost := brokertest.Vhost(t)
	user := brokertest.User(t, secret, vhost, brokertest.Permissions{Configure: ".*", Write: ".*", Read: ".*"})
	good := brokertest.URLFor(t, user, secret, vhost)
	refused := withSecret("amqp://127.0.0.1:1/"+vhost, user)
	wrongUser := brokertest.URLFor(t, "guest", secret, vhost)

	t.Run("reconnecting", func(t *testing.T) {
		var c capture
		name := brokertest.ConnName(t, "lost")
		changes := make(chan broker.State, 16)
		opts := append(c.options(), broker.WithName(name), broker.WithReconnectBackoff(300*time.Millisecond, 300*time.Millisecond),
			broker.WithObserver(broker.ObserverFuncs{OnConnection: func(s broker.StateChange) { changes <- s.State }}))
		conn, err := broker.Dial(brokertest.Context(t, 30*time.Second), []string{good, refused, wrongUser}, opts...)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer conn.Close()
		ctx := brokertest.Context(t, 30*time.Second)
		queue := brokertest.Name(t, "q") // deleted with the vhost
		d := broker.NewDeclarer(conn)
		defer d.Close(ctx)
		if err := d.DeclareQueue(ctx, topology.Queue{Name: queue, Type: topology.Classic, Durable: true, Args: topology.Table{"x-queue-type": topology.Classic}}); err != nil {
			t.Fatal(err)
		}
		pub := newPublisher(t, conn)
		if err := pub.Publish(ctx, broker.Job{Type: "t"}, broker.ToQueue(queue)); err != nil {
			t.Fatal(err)
		}

		next := func() broker.State {
			t.Helper()
			select {
			case s := <-changes:
				return s
			case <-ctx.Done():
				t.Fatalf("no state change:\n%s", c.String())
				return 0
			}
		}
		brokertest.CloseConnections(t, name)
		if s := next(); s != broker.Disconnected {
			t.Fatalf("state %v after the broker closed the connection, want disconnected", s)
		}
		// While the bad URLs are tried: what callers are told.
		c.add("Err", conn.Err())
		c.add("URL", conn.URL())
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err = pub.Publish(short, broker.Job{Type: "t"}, broker.ToQueue(queue))
		cancel()
		c.add("publish while disconnected", err)
		if s := next(); s != broker.Connected {
			t.Fatalf("state %v, want connected", s)
		}
		if err := pub.Publish(ctx, broker.Job{Type: "t"}, broker.ToQueue(queue)); err != nil {
			t.Fatalf("publish once reconnected: %v", err)
		}
		c.add("close", conn.Close())

		out := c.String()
		if n := strings.Count(out, "reconnection attempt failed"); n < 2 || !strings.Contains(out, "connection lost") {
			t.Errorf("want the loss and both bad URLs logged, got %d failed attempts:\n%s", n, out)
		}
		noSecret(t, out)
	})

	t.Run("without reconnection", func(t *testing.T) {
		var c capture
		name := brokertest.ConnName(t, "final")
		conn, err := broker.Dial(brokertest.Context(t, 30*time.Second), []string{good}, append(c.options(), broker.WithName(name), broker.WithoutReconnect())...)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		brokertest.CloseConnections(t, name)
		select {
		case <-conn.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("the Conn did not close after losing its connection:\n%s", c.String())
		}
		if !errors.Is(conn.Err(), broker.ErrClosed) {
			t.Errorf("Err = %v, want ErrClosed", conn.Err())
		}
		c.add("Err", conn.Err())
		c.add("close", conn.Close())
		noSecret(t, c.String())
	})
}
