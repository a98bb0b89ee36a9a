package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// hookLog records what observers see, as lines such as
// "a start job x.1/k confirmed=true email.send" and "a done <nil>".
type hookLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *hookLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// await waits until at least n lines are recorded: an observer's done func
// runs after the publish, and may run after its effect is seen (a caller
// gets a direct reply as soon as it is written).
func (l *hookLog) await(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		got := len(l.lines)
		l.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// take returns the lines recorded since the last take.
func (l *hookLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	l.lines = nil
	return lines
}

type ctxMark struct{}

// observer returns an observer named name. Its Publish marks the ctx it
// returns with its name, and records the mark it was given, so the
// chaining shows.
func (l *hookLog) observer(name, exchange string) broker.Option {
	return broker.WithObserver(broker.ObserverFuncs{OnPublish: func(ctx context.Context, info broker.PublishInfo, env *broker.Envelope) (context.Context, func(error)) {
		from, _ := ctx.Value(ctxMark{}).(string)
		dest := strings.Replace(info.Exchange, exchange, "X", 1) + "/" + info.RoutingKey
		l.add("%s start %s %s confirmed=%t %s from=%q", name, info.Kind, dest, info.Confirmed, env.Type, from)
		return context.WithValue(ctx, ctxMark{}, name), func(err error) { l.add("%s done %s", name, outcome(err)) }
	}})
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, broker.ErrUnroutable):
		return "unroutable"
	case errors.Is(err, broker.ErrReplyTimeout):
		return "timeout"
	case errors.Is(err, broker.ErrNoExchange):
		return "no-exchange"
	}
	var re *broker.RemoteError
	if errors.As(err, &re) {
		return "remote"
	}
	return "error: " + err.Error()
}

// TestPublishObservers checks that every kind of publish calls the Conn's
// observers once before it is built and once with its outcome, in the
// documented order.
func TestPublishObservers(t *testing.T) {
	exchange, queue := setup(t, nil)
	var log hookLog
	conn := dial(t, log.observer("a", exchange), log.observer("b", exchange))
	p := newPublisher(t, conn)
	s := newSender(t, conn)
	ctx := brokertest.Context(t, 30*time.Second)
	to := broker.To(exchange, "k")

	tests := []struct {
		name    string
		publish func(t *testing.T) error
		want    []string
	}{
		{
			name:    "Publish",
			publish: func(t *testing.T) error { return p.Publish(ctx, broker.Job{Type: "email.send"}, to) },
			want: []string{
				`a start job X/k confirmed=true email.send from=""`,
				`b start job X/k confirmed=true email.send from="a"`,
				"b done ok",
				"a done ok",
			},
		},
		{
			name: "PublishBatch",
			publish: func(t *testing.T) error {
				return p.PublishBatch(ctx, []broker.Job{{Type: "one"}, {Type: "two"}}, to)
			},
			want: []string{
				`a start job X/k confirmed=true one from=""`,
				`b start job X/k confirmed=true one from="a"`,
				`a start job X/k confirmed=true two from=""`,
				`b start job X/k confirmed=true two from="a"`,
				"b done ok", "a done ok",
				"b done ok", "a done ok",
			},
		},
		{
			name: "Sender.Publish as a retry",
			publish: func(t *testing.T) error {
				env, err := broker.NewEnvelope(broker.Job{Type: "email.send"})
				if err != nil {
					t.Fatal(err)
				}
				return s.Publish(ctx, broker.KindRetry, env, exchange, "k")
			},
			want: []string{
				`a start retry X/k confirmed=true email.send from=""`,
				`b start retry X/k confirmed=true email.send from="a"`,
				"b done ok", "a done ok",
			},
		},
		{
			name: "Sender.Send reports at Wait",
			publish: func(t *testing.T) error {
				env, err := broker.NewEnvelope(broker.Job{Type: "email.send"})
				if err != nil {
					t.Fatal(err)
				}
				c, err := s.Send(ctx, broker.KindReplay, env, exchange, "k")
				if err != nil {
					return err
				}
				if got := log.take(); len(got) != 2 {
					t.Errorf("before Wait, the observers saw %q; want the two starts only", got)
				}
				return c.Wait(ctx)
			},
			want: []string{"b done ok", "a done ok"},
		},
		{
			name: "unroutable",
			publish: func(t *testing.T) error {
				if err := p.Publish(ctx, broker.Job{Type: "lost"}, broker.To(exchange, "nobody")); !errors.Is(err, broker.ErrUnroutable) {
					t.Errorf("Publish: %v, want ErrUnroutable", err)
				}
				return nil
			},
			want: []string{
				`a start job X/nobody confirmed=true lost from=""`,
				`b start job X/nobody confirmed=true lost from="a"`,
				"b done unroutable", "a done unroutable",
			},
		},
		{
			name: "missing exchange",
			publish: func(t *testing.T) error {
				if err := p.Publish(ctx, broker.Job{Type: "lost"}, broker.To(exchange+".missing", "k")); !errors.Is(err, broker.ErrNoExchange) {
					t.Errorf("Publish: %v, want ErrNoExchange", err)
				}
				return nil
			},
			want: []string{
				`a start job X.missing/k confirmed=true lost from=""`,
				`b start job X.missing/k confirmed=true lost from="a"`,
				"b done no-exchange", "a done no-exchange",
			},
		},
		{
			name: "no route: no observer",
			publish: func(t *testing.T) error {
				if err := p.Publish(ctx, broker.Job{Type: "unrouted"}); !errors.Is(err, broker.ErrNoRoute) {
					t.Errorf("Publish: %v, want ErrNoRoute", err)
				}
				return nil
			},
			want: nil,
		},
		{
			name: "Reply to a queue",
			publish: func(t *testing.T) error {
				request := &broker.Envelope{ID: "req-1", Type: "quote", ReplyTo: queue}
				return s.Reply(ctx, request, 42, nil)
			},
			want: []string{
				fmt.Sprintf(`a start reply /%s confirmed=true quote.reply from=""`, queue),
				fmt.Sprintf(`b start reply /%s confirmed=true quote.reply from="a"`, queue),
				"b done ok", "a done ok",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log.take()
			if err := tt.publish(t); err != nil {
				t.Fatalf("publish: %v", err)
			}
			if diff := cmp.Diff(tt.want, log.take()); diff != "" {
				t.Errorf("observer calls (-want +got):\n%s", diff)
			}
		})
	}
	if n := brokertest.Depth(t, queue); n != 6 {
		t.Errorf("queue holds %d messages, want 6 (the observers must not change what is published)", n)
	}
}

// TestPublishObserverWritesTraceContext checks that what an observer
// writes into the envelope is on the wire: Publish runs before the message
// is built.
func TestPublishObserverWritesTraceContext(t *testing.T) {
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	conn := dial(t, broker.WithObserver(broker.ObserverFuncs{OnPublish: func(ctx context.Context, _ broker.PublishInfo, env *broker.Envelope) (context.Context, func(error)) {
		env.Traceparent, env.Tracestate = traceparent, "vendor=1"
		return nil, nil // both may be nil
	}}))
	exchange, queue := setup(t, nil)
	p := newPublisher(t, conn)
	if err := p.Publish(brokertest.Context(t, 10*time.Second), broker.Job{Type: "traced"}, broker.To(exchange, "k")); err != nil {
		t.Fatal(err)
	}
	d := brokertest.Get(t, queue, 5*time.Second)
	if d.Headers["traceparent"] != traceparent || d.Headers["tracestate"] != "vendor=1" {
		t.Errorf("headers %v: want the observer's trace context", d.Headers)
	}
}

// TestCallAndReplyObservers checks an observer around Call (a result, a
// remote error, a timeout) and on the replies, written to direct reply-to
// without a confirm.
func TestCallAndReplyObservers(t *testing.T) {
	exchange, queue := setup(t, nil)
	var calls, replies hookLog
	conn := dial(t, replies.observer("pub", exchange))
	pub := newSender(t, conn)
	caller, err := broker.NewCaller(dial(t, calls.observer("call", exchange)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caller.Close(context.Background()) })
	ctx := brokertest.Context(t, 30*time.Second)

	// A responder: "fail" jobs get an error reply, others a result.
	c := consume(t, conn, queue)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			d, ok := c.Next(ctx)
			if !ok {
				return
			}
			var failure *broker.Failure
			if d.Envelope.Type == "fail" {
				failure = &broker.Failure{Error: "no", Class: "permanent"}
			}
			if err := pub.Reply(ctx, d.Envelope, "pong", failure); err != nil {
				t.Errorf("Reply: %v", err)
			}
			if err := d.Ack(); err != nil {
				t.Errorf("Ack: %v", err)
			}
		}
	}()
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { _ = c.Cancel(context.Background()) })

	if _, err := caller.Call(ctx, broker.Job{Type: "ping"}, broker.To(exchange, "k")); err != nil {
		t.Fatalf("Call: %v", err)
	}
	var re *broker.RemoteError
	if _, err := caller.Call(ctx, broker.Job{Type: "fail"}, broker.To(exchange, "k")); !errors.As(err, &re) {
		t.Fatalf("Call: %v, want a *RemoteError", err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := caller.Call(short, broker.Job{Type: "nobody"}, broker.To(exchange, "unconsumed")); !errors.Is(err, broker.ErrUnroutable) {
		t.Fatalf("Call to no queue: %v, want ErrUnroutable", err)
	}
	wantCalls := []string{
		`call start request X/k confirmed=false ping from=""`, "call done ok",
		`call start request X/k confirmed=false fail from=""`, "call done remote",
		`call start request X/unconsumed confirmed=false nobody from=""`, "call done unroutable",
	}
	if diff := cmp.Diff(wantCalls, calls.take()); diff != "" {
		t.Errorf("call observer (-want +got):\n%s", diff)
	}
	replies.await(t, 4)
	got := replies.take()
	for i := range got {
		// The caller's reply queue is server-named.
		if f := strings.Fields(got[i]); len(f) > 3 && strings.HasPrefix(f[3], "/"+broker.ServerNamedPrefix) {
			f[3] = "/replies"
			got[i] = strings.Join(f, " ")
		}
	}
	wantReplies := []string{
		`pub start reply /replies confirmed=false ping.reply from=""`, "pub done ok",
		`pub start reply /replies confirmed=false fail.reply from=""`, "pub done ok",
	}
	if diff := cmp.Diff(wantReplies, got); diff != "" {
		t.Errorf("observer of replies (-want +got):\n%s", diff)
	}
}

// TestCallObserverTimeout checks that a call nobody answers reports its
// timeout to the observer.
func TestCallObserverTimeout(t *testing.T) {
	exchange, _ := setup(t, nil)
	var calls hookLog
	caller, err := broker.NewCaller(dial(t, calls.observer("call", exchange)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caller.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(brokertest.Context(t, 10*time.Second), 500*time.Millisecond)
	defer cancel()
	if _, err := caller.Call(ctx, broker.Job{Type: "slow"}, broker.To(exchange, "k")); !errors.Is(err, broker.ErrReplyTimeout) {
		t.Fatalf("Call: %v, want ErrReplyTimeout", err)
	}
	want := []string{`call start request X/k confirmed=false slow from=""`, "call done timeout"}
	if diff := cmp.Diff(want, calls.take()); diff != "" {
		t.Errorf("call observer (-want +got):\n%s", diff)
	}
}

func TestWithObserverRefusesNil(t *testing.T) {
	if _, err := broker.Dial(brokertest.Context(t, 10*time.Second), []string{brokertest.URL(t)}, broker.WithObserver(nil)); err == nil {
		t.Error("Dial accepted a nil observer")
	}
}

func TestPublishKind(t *testing.T) {
	tests := []struct {
		kind broker.PublishKind
		name string
	}{
		{broker.KindJob, "job"},
		{broker.KindRetry, "retry"},
		{broker.KindDeadLetter, "dead_letter"},
		{broker.KindReply, "reply"},
		{broker.KindReplay, "replay"},
		{broker.KindRequest, "request"},
		{broker.KindQuarantine, "quarantine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.kind.String(); got != tt.name {
				t.Errorf("PublishKind(%d).String() = %q, want %q", int(tt.kind), got, tt.name)
			}
		})
	}
}

// TestObserverConnection checks that the observers, in order, are told of
// the Conn's state changes under its name.
func TestObserverConnection(t *testing.T) {
	var log hookLog
	watch := func(name string) broker.Option {
		return broker.WithObserver(broker.ObserverFuncs{OnConnection: func(c broker.StateChange) {
			log.add("%s %s %s", name, c.Name, c.State)
		}})
	}
	name := brokertest.ConnName(t, "observed")
	conn, err := broker.Dial(brokertest.Context(t, 30*time.Second), []string{brokertest.URL(t)}, broker.WithName(name), watch("a"), watch("b"))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(conn.Observers()); got != 2 {
		t.Errorf("Observers() has %d, want 2", got)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"a " + name + " closed", "b " + name + " closed"}
	if diff := cmp.Diff(want, log.take()); diff != "" {
		t.Errorf("state changes (-want +got):\n%s", diff)
	}
}
