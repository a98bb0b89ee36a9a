// Added by warren's patch (WARREN-PATCH.md): Channel.PublishUnflushed and
// Channel.Flush.

package amqp091

import (
	"io"
	"sync/atomic"
	"testing"
)

// countingIO counts the writes that reach the socket.
type countingIO struct {
	io.ReadWriteCloser
	writes atomic.Int64
}

func (c *countingIO) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.ReadWriteCloser.Write(p)
}

// TestPublishUnflushed publishes three small messages unflushed: nothing
// reaches the socket until Flush, which writes all three at once.
func TestPublishUnflushed(t *testing.T) {
	rwc, srv := newSession(t)
	t.Cleanup(func() { rwc.Close() })
	counted := &countingIO{ReadWriteCloser: rwc}

	const n = 3
	received := make(chan string, n)
	go func() {
		srv.connectionOpen()
		srv.channelOpen(1)
		for i := 0; i < n; i++ {
			var p basicPublish
			srv.recv(1, &p)
			received <- string(p.Body)
		}
	}()

	c, err := Open(counted, defaultConfig())
	if err != nil {
		t.Fatalf("could not create connection: %v", err)
	}
	ch, err := c.Channel()
	if err != nil {
		t.Fatalf("could not open channel: %v", err)
	}
	before := counted.writes.Load()
	for i := 0; i < n; i++ {
		if _, err := ch.PublishUnflushed("", "q", false, false, Publishing{Body: []byte{'a' + byte(i)}}); err != nil {
			t.Fatalf("PublishUnflushed: %v", err)
		}
	}
	if w := counted.writes.Load() - before; w != 0 {
		t.Fatalf("%d write(s) reached the socket before Flush", w)
	}
	if err := ch.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if w := counted.writes.Load() - before; w != 1 {
		t.Errorf("Flush made %d writes, want 1", w)
	}
	for i := 0; i < n; i++ {
		if got, want := <-received, string([]byte{'a' + byte(i)}); got != want {
			t.Errorf("message %d: body %q, want %q", i, got, want)
		}
	}
}

// TestPublishFlushesUnflushed: an ordinary publish flushes what
// PublishUnflushed left in the buffer before it.
func TestPublishFlushesUnflushed(t *testing.T) {
	rwc, srv := newSession(t)
	t.Cleanup(func() { rwc.Close() })

	received := make(chan string, 2)
	go func() {
		srv.connectionOpen()
		srv.channelOpen(1)
		for i := 0; i < 2; i++ {
			var p basicPublish
			srv.recv(1, &p)
			received <- string(p.Body)
		}
	}()
	c, err := Open(rwc, defaultConfig())
	if err != nil {
		t.Fatalf("could not create connection: %v", err)
	}
	ch, err := c.Channel()
	if err != nil {
		t.Fatalf("could not open channel: %v", err)
	}
	if _, err := ch.PublishUnflushed("", "q", false, false, Publishing{Body: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("", "q", false, false, Publishing{Body: []byte("second")}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"first", "second"} {
		if got := <-received; got != want {
			t.Errorf("body %q, want %q", got, want)
		}
	}
}
