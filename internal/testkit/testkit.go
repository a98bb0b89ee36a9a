package testkit

import (
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// Poll is how often WaitFor and WaitDepth check again.
const Poll = 10 * time.Millisecond

// WaitFor polls cond until it holds, failing t after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(Poll)
	}
}

// Recv waits for a value from ch, failing t after timeout.
func Recv[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
		panic("unreachable")
	}
}

// WaitDone waits for wg like Recv.
func WaitDone(t testing.TB, wg *sync.WaitGroup, timeout time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	Recv(t, done, timeout, what)
}

// WaitDepth waits until queue holds at least n ready messages, failing t
// after within.
func WaitDepth(t testing.TB, queue string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for brokertest.Depth(t, queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d messages after %s, want %d", queue, brokertest.Depth(t, queue), within, n)
		}
		time.Sleep(Poll)
	}
}

// Dial connects to the test broker with broker.Dial under the connection
// name given (what the management UI shows), closing the connection at
// cleanup.
func Dial(t testing.TB, name string, opts ...broker.Option) *broker.Conn {
	t.Helper()
	opts = append([]broker.Option{broker.WithName(name)}, opts...)
	conn, err := broker.Dial(brokertest.Context(t, 30*time.Second), []string{brokertest.URL(t)}, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
