package amqp091

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// quietSession opens a connection with QuietHeartbeats over loopback TCP
// (a net.Conn, so the read deadline applies), tuned to a heartbeat of 2s:
// the heartbeater's interval is 1s and the read timeout 3s. The server
// side is returned after the handshake.
func quietSession(t *testing.T) (*Connection, *server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	sc, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { sc.Close() })
	srv := newServer(t, sc, client)
	handshake := make(chan struct{})
	go func() {
		defer close(handshake)
		srv.expectAMQP()
		srv.connectionStart()
		srv.send(0, &connectionTune{ChannelMax: 11, FrameMax: 20000, Heartbeat: 2})
		srv.recv(0, &srv.tune)
		srv.recv(0, &connectionOpen{})
		srv.send(0, &connectionOpenOk{})
	}()
	cfg := defaultConfig()
	cfg.QuietHeartbeats = true
	c, err := Open(client, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	<-handshake
	t.Cleanup(func() { _ = c.conn.Close() })
	return c, srv
}

// TestQuietHeartbeatsSendWhenIdle: an idle client sends heartbeats, as
// the default heartbeater does.
func TestQuietHeartbeatsSendWhenIdle(t *testing.T) {
	_, srv := quietSession(t)
	heartbeats := make(chan struct{}, 16)
	go func() {
		for {
			f, err := srv.r.ReadFrame()
			if err != nil {
				return
			}
			if _, ok := f.(*heartbeatFrame); ok {
				heartbeats <- struct{}{}
			}
		}
	}()
	for i := 0; i < 2; i++ {
		select {
		case <-heartbeats:
		case <-time.After(5 * time.Second):
			t.Fatalf("no heartbeat %d from an idle client within 5s (interval 1s)", i+1)
		}
	}
}

// TestQuietHeartbeatsTimeOutASilentServer: a server that sends nothing
// for the read timeout (three intervals) is given up: the reader's read
// fails on the deadline the heartbeater set (3s and a tick of 1s after
// the last frame), and the connection closes.
func TestQuietHeartbeatsTimeOutASilentServer(t *testing.T) {
	c, srv := quietSession(t)
	go func() { // drain the client's heartbeats, answer nothing
		for {
			if _, err := srv.r.ReadFrame(); err != nil {
				return
			}
		}
	}()
	closed := c.NotifyClose(make(chan *Error, 1))
	start := time.Now()
	select {
	case err := <-closed:
		if err == nil {
			t.Fatal("the connection closed without an error, want a read timeout")
		}
		if waited := time.Since(start); waited < 3*time.Second {
			t.Errorf("gave up after %s, before the read timeout (3s and a tick)", waited)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection is still open 10s after the server went silent (read timeout 3s)")
	}
}

// TestQuietHeartbeatsKeepAHealthyConnection: a server that sends only its
// heartbeats, one per heartbeat (2s, under the 3s read timeout), keeps the
// connection open: frames read between two ticks of the heartbeater move
// the deadline on its next tick.
func TestQuietHeartbeatsKeepAHealthyConnection(t *testing.T) {
	c, srv := quietSession(t)
	var stop atomic.Bool
	go func() {
		for {
			if _, err := srv.r.ReadFrame(); err != nil {
				return
			}
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			time.Sleep(2 * time.Second)
			if err := srv.w.WriteFrame(&heartbeatFrame{}); err != nil {
				return
			}
		}
	}()
	closed := c.NotifyClose(make(chan *Error, 1))
	select {
	case err := <-closed:
		t.Fatalf("a connection whose server sends a heartbeat every 2s closed: %v", err)
	case <-time.After(9 * time.Second):
	}
	stop.Store(true)
	<-done
	if c.IsClosed() {
		t.Fatal("the connection closed")
	}
}
