package rabbitnode

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dial connects to url for the test, closing the connection at cleanup.
func dial(t *testing.T, url string) *amqp.Connection {
	t.Helper()
	c, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func channel(t *testing.T, c *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := c.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return ch
}

// publish publishes bodies to queue through the default exchange and
// waits for the broker's confirms.
func publish(t *testing.T, ch *amqp.Channel, queue string, mode uint8, bodies ...string) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm mode: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, b := range bodies {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false,
			amqp.Publishing{DeliveryMode: mode, Body: []byte(b)})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			t.Fatalf("confirm of %q: acked %v, %v", b, ok, err)
		}
	}
}

// drain gets every message of queue, acking them, in order.
func drain(t *testing.T, ch *amqp.Channel, queue string) []string {
	t.Helper()
	var got []string
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("get from %s: %v", queue, err)
		}
		if !ok {
			return got
		}
		got = append(got, string(d.Body))
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// closed waits for the connection's close notification.
func closed(t *testing.T, c chan *amqp.Error) *amqp.Error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the connection was not closed within 30s")
		return nil
	}
}

// closeOkWriteFailed reports whether err is amqp091-go's report of a write
// to a socket the broker had already closed.
func closeOkWriteFailed(err *amqp.Error) bool {
	return err.Code == amqp.FrameError && strings.HasPrefix(err.Reason, "write ") &&
		(strings.Contains(err.Reason, "connection reset by peer") || strings.Contains(err.Reason, "broken pipe"))
}

// TestNode runs each fault on one node, in turn: a node takes seconds to
// start, and each step leaves it running for the next.
func TestNode(t *testing.T) {
	t.Parallel()
	n := Start(t, WithConfig("consumer_timeout = 5000"),
		WithAdvancedConfig("{rabbit, [{dead_letter_worker_publisher_confirm_timeout, 7000}]}"))

	t.Run("config", func(t *testing.T) {
		for _, tc := range []struct{ key, want string }{
			// RabbitMQ's own defaults are 1800000 (30 minutes) and
			// 180000 (3 minutes).
			{"consumer_timeout", "{ok,5000}"},                             // rabbitmq.conf
			{"dead_letter_worker_publisher_confirm_timeout", "{ok,7000}"}, // advanced.config
		} {
			if got := n.Eval(t, "application:get_env(rabbit, "+tc.key+")."); got != tc.want {
				t.Errorf("%s = %s, want %s", tc.key, got, tc.want)
			}
		}
	})

	t.Run("close all connections", func(t *testing.T) {
		conns := []*amqp.Connection{dial(t, n.URL()), dial(t, n.URL())}
		var notes []chan *amqp.Error
		for _, c := range conns {
			notes = append(notes, c.NotifyClose(make(chan *amqp.Error, 1)))
		}
		n.CloseAllConnections(t, "closed by TestNode")
		for i, note := range notes {
			err := closed(t, note)
			if err == nil || err.Code != amqp.ConnectionForced || !err.Server || !strings.Contains(err.Reason, "closed by TestNode") {
				t.Errorf("connection %d closed with %v, want 320 CONNECTION_FORCED from the server with the reason", i, err)
			}
		}
		dial(t, n.URL()) // the node still takes new connections
	})

	for _, alarm := range []struct {
		resource string
		set      func(testing.TB, bool)
	}{
		{"memory", n.SetMemoryAlarm},
		{"disk", n.SetDiskAlarm},
	} {
		t.Run(alarm.resource+" alarm", func(t *testing.T) {
			c := dial(t, n.URL())
			blocked := c.NotifyBlocked(make(chan amqp.Blocking, 2)) // one block and one unblock
			ch := channel(t, c)
			q, err := ch.QueueDeclare("", false, true, true, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			next := func() amqp.Blocking {
				t.Helper()
				select {
				case b := <-blocked:
					return b
				case <-time.After(30 * time.Second):
					t.Fatal("no connection.blocked/unblocked within 30s")
					return amqp.Blocking{}
				}
			}

			alarm.set(t, true)
			if got := n.Alarms(t); !strings.Contains(got, "resource_limit,"+alarm.resource) {
				t.Errorf("alarms = %s, want the %s alarm", got, alarm.resource)
			}
			// RabbitMQ blocks a connection when it next publishes.
			if err := ch.PublishWithContext(context.Background(), "", q.Name, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			if b := next(); !b.Active || !strings.Contains(b.Reason, alarm.resource) {
				t.Errorf("got %+v, want an active block naming %s", b, alarm.resource)
			}

			alarm.set(t, false)
			if b := next(); b.Active {
				t.Errorf("got %+v after the alarm cleared, want the block lifted", b)
			}
			if got := n.Alarms(t); got != "[]" {
				t.Errorf("alarms = %s after clearing, want none", got)
			}
		})
	}

	t.Run("stop_app and start_app", func(t *testing.T) {
		note := dial(t, n.URL()).NotifyClose(make(chan *amqp.Error, 1))
		n.StopApp(t)
		// The broker sends connection.close (320) and shuts the socket at
		// once; amqp091-go answers close-ok first, and when that write
		// fails it may report the write error rather than the 320.
		if err := closed(t, note); err == nil || (err.Code != amqp.ConnectionForced && !closeOkWriteFailed(err)) {
			t.Errorf("connection closed with %v, want 320 CONNECTION_FORCED", err)
		}
		if c, err := amqp.Dial(n.URL()); err == nil {
			_ = c.Close()
			t.Error("dial succeeded while the application was stopped")
		}
		if !n.Running() {
			t.Error("the VM stopped with the application")
		}
		n.StartApp(t)
		dial(t, n.URL())
	})

	// Both lose what was not persisted and keep what was. A kill gives
	// the broker no chance to say anything: the client sees the
	// connection drop. A stop is the broker's own shutdown, which its log
	// tells. (Whether a client then reads the broker's connection.close
	// or a reset depends on timing.)
	const shutdownLogged = "SIGTERM received - shutting down"
	for _, fault := range []struct {
		name     string
		do       func(testing.TB)
		graceful bool
	}{
		{"kill and restart", n.Kill, false},
		{"stop and restart", n.Stop, true},
	} {
		t.Run(fault.name, func(t *testing.T) {
			c := dial(t, n.URL())
			note := c.NotifyClose(make(chan *amqp.Error, 1))
			ch := channel(t, c)
			q, err := ch.QueueDeclare("", true, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			publish(t, ch, q.Name, amqp.Persistent, "kept 1", "kept 2")
			publish(t, ch, q.Name, amqp.Transient, "lost")
			n.SyncMetadata(t) // or the kill may take the queue's declaration with it
			shutdowns := strings.Count(readFile(t, n.logFile()), shutdownLogged)

			fault.do(t)
			if n.Running() {
				t.Fatal("the node still runs")
			}
			if err := closed(t, note); !fault.graceful && (err == nil || err.Server) {
				t.Errorf("connection closed with %+v, want a drop the server did not announce", err)
			}
			if got := strings.Count(readFile(t, n.logFile()), shutdownLogged) - shutdowns; got != map[bool]int{true: 1}[fault.graceful] {
				t.Errorf("the node logged %d shutdowns, want graceful: %v", got, fault.graceful)
			}
			if c, err := amqp.Dial(n.URL()); err == nil {
				_ = c.Close()
				t.Fatal("dial succeeded while the node was down")
			}

			n.Restart(t)
			ch = channel(t, dial(t, n.URL()))
			got := drain(t, ch, q.Name)
			if strings.Join(got, ",") != "kept 1,kept 2" {
				t.Errorf("after the restart the queue holds %q, want the two persistent messages", got)
			}
		})
	}
}

// TestManagement: the management API answers on the node's own port, for
// that node.
func TestManagement(t *testing.T) {
	t.Parallel()
	n := Start(t, WithManagement())
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections() // for goleak
	resp, err := client.Get(n.ManagementURL() + "/api/overview")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var overview struct {
		Node string `json:"node"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&overview); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/overview: %s, %v", resp.Status, err)
	}
	if overview.Node != n.Name() {
		t.Errorf("the management API is that of node %q, want %q", overview.Node, n.Name())
	}
}

// TestStartFailure: a node that cannot start fails the test with the
// reason from its log, and leaves nothing behind.
func TestStartFailure(t *testing.T) {
	t.Parallel()
	n, err := newNode(t.Name(), WithConfig("warren_no_such_setting = 1"), WithStartTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.destroy(t) })
	err = n.firstBoot()
	if err == nil {
		t.Fatal("a node with an unknown setting started")
	}
	t.Logf("the failure reads:\n%v", err)
	if !strings.Contains(err.Error(), "warren_no_such_setting") {
		t.Errorf("the error does not name the bad setting:\n%v", err)
	}
	if n.Running() {
		t.Error("the failed node runs")
	}
}

func TestOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
		want []string
	}{
		{"config line without =", []Option{WithConfig("consumer_timeout 5000")}, []string{`"consumer_timeout 5000"`}},
		{"two settings in a line", []Option{WithConfig("a = 1\nb = 2")}, []string{"one setting per line"}},
		{"advanced.config term", []Option{WithAdvancedConfig("rabbit, [{x, 1}]")}, []string{`"rabbit, [{x, 1}]"`}},
		{"every problem at once", []Option{WithConfig("x", "= 1"), WithStartTimeout(0)},
			[]string{`"x"`, `"= 1"`, "start timeout"}},
		{"TLS files", []Option{WithTLS(TLSConfig{CertFile: "/nonexistent/server.pem", Versions: []string{"sslv3"}})},
			[]string{"CACertFile is empty", "/nonexistent/server.pem", "KeyFile is empty", `"sslv3"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newNode(t.Name(), tc.opts...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %s:\n%v", w, err)
				}
			}
		})
	}
}

func TestMissingRabbitMQ(t *testing.T) {
	t.Setenv("WARREN_RABBITMQ_SBIN", t.TempDir())
	_, err := findBinaries()
	if err == nil {
		t.Fatal("found RabbitMQ in an empty directory")
	}
	for _, w := range []string{"WARREN_RABBITMQ_SBIN", "apt-get install rabbitmq-server"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q:\n%v", w, err)
		}
	}
}

// TestSweep removes the directory of a test binary that died, and only
// that.
func TestSweep(t *testing.T) {
	base := t.TempDir()
	for name, owner := range map[string]string{"dead": "2147483646", "alive": "1", "not-a-node": ""} {
		if err := os.Mkdir(base+"/"+name, 0o755); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(base+"/"+name+"/owner.pid", []byte(owner+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	sweep(base)
	for name, want := range map[string]bool{"dead": false, "alive": true, "not-a-node": true} {
		_, err := os.Stat(base + "/" + name)
		if got := err == nil; got != want {
			t.Errorf("%s: exists %v, want %v (%v)", name, got, want, err)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Error(err)
		}
	}
}
