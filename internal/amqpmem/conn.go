package amqpmem

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// AMQP reply codes the emulation sends.
const (
	codeReplySuccess   = 200
	codeNoRoute        = 312
	codeAccessRefused  = 403
	codeNotFound       = 404
	codeResourceLocked = 405
	codePrecondition   = 406
	codeFrameError     = 501
	codeCommandInvalid = 503
	codeChannelError   = 504
	codeNotImplemented = 540
)

const (
	frameMax      = 131072
	channelMax    = 2047
	heartbeatSecs = 60
	classBasic    = 60
	replyTo       = "amq.rabbitmq.reply-to"
)

// conn is one client connection. Its reader goroutine handles frames
// under the broker's lock; its writer goroutine alone writes to the
// network, from an unbounded outbox, so the broker never blocks on a slow
// client while holding the lock.
type conn struct {
	b  *Broker
	nc net.Conn

	channels  map[uint16]*channel // under b.mu
	heartbeat time.Duration       // negotiated; set before the loop

	outMu   sync.Mutex
	out     bytes.Buffer
	wake    chan struct{} // cap 1: the writer has something to write
	done    chan struct{} // closed when the reader ends
	flushed chan struct{} // closed when the writer ends, its last frames written
	closing bool          // the broker sent connection.close; under outMu
}

func newConn(b *Broker, nc net.Conn) *conn {
	return &conn{b: b, nc: nc, channels: map[uint16]*channel{}, wake: make(chan struct{}, 1), done: make(chan struct{}), flushed: make(chan struct{})}
}

// send queues a frame for the writer.
func (c *conn) send(write func(w io.Writer) error) {
	c.outMu.Lock()
	err := write(&c.out)
	c.outMu.Unlock()
	if err != nil {
		// Only a value the codec cannot encode: a bug of the emulation.
		panic(fmt.Sprintf("amqpmem: encode frame: %v", err))
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) sendMethod(ch uint16, m amqp.WireMethod) {
	c.send(func(w io.Writer) error { return amqp.WriteWireMethod(w, ch, m) })
}

func (c *conn) sendContent(ch uint16, m amqp.WireMethod, props amqp.WireProperties, body []byte) {
	c.send(func(w io.Writer) error {
		if err := amqp.WriteWireMethod(w, ch, m); err != nil {
			return err
		}
		return amqp.WriteWireContent(w, ch, classBasic, props, body, frameMax)
	})
}

func (c *conn) writeLoop() {
	defer close(c.flushed)
	var tick <-chan time.Time
	for {
		select {
		case <-c.wake:
		case <-c.done:
			c.flush()
			return
		case <-tick:
			c.send(func(w io.Writer) error { return amqp.WriteWireHeartbeat(w) })
		}
		if tick == nil && c.heartbeatSet() > 0 {
			t := time.NewTicker(c.heartbeatSet() / 2)
			defer t.Stop()
			tick = t.C
		}
		if err := c.flush(); err != nil {
			c.nc.Close()
			<-c.done
			return
		}
	}
}

func (c *conn) heartbeatSet() time.Duration {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.heartbeat
}

func (c *conn) flush() error {
	c.outMu.Lock()
	buf := slices.Clone(c.out.Bytes())
	c.out.Reset()
	c.outMu.Unlock()
	if len(buf) == 0 {
		return nil
	}
	_, err := c.nc.Write(buf)
	return err
}

// readLoop runs the handshake, then handles frames until the client
// closes the connection or the network fails; then it releases what the
// connection held.
func (c *conn) readLoop() {
	defer func() {
		c.b.mu.Lock()
		c.releaseLocked()
		delete(c.b.conns, c)
		c.b.settleLocked()
		c.b.mu.Unlock()
		close(c.done)
		// Let the writer send what is queued (connection.close-ok) before
		// the network connection closes; a client that does not read is
		// given a second.
		select {
		case <-c.flushed:
		case <-time.After(time.Second):
		}
		c.nc.Close()
	}()
	r := bufio.NewReader(c.nc)
	if err := c.handshake(r); err != nil {
		return
	}
	fr := amqp.NewWireReader(r)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrClosedPipe) {
				c.connError(codeFrameError, "FRAME_ERROR - "+err.Error(), 0, 0)
			}
			return
		}
		if f.Heartbeat {
			continue
		}
		c.b.mu.Lock()
		end := c.handle(f)
		c.b.settleLocked()
		c.b.mu.Unlock()
		if end {
			return
		}
	}
}

func (c *conn) handshake(r *bufio.Reader) error {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	if string(hdr[:]) != "AMQP\x00\x00\x09\x01" {
		c.send(func(w io.Writer) error { _, err := w.Write([]byte("AMQP\x00\x00\x09\x01")); return err })
		return errors.New("amqpmem: bad protocol header")
	}
	c.sendMethod(0, &amqp.WireConnectionStart{
		VersionMajor: 0, VersionMinor: 9,
		ServerProperties: amqp.Table{
			"product": "warren amqpmem", "version": "3.10.8", "platform": "Go",
			"capabilities": amqp.Table{
				"publisher_confirms": true, "exchange_exchange_bindings": true, "basic.nack": true,
				"consumer_cancel_notify": true, "connection.blocked": true, "authentication_failure_close": true,
				"per_consumer_qos": true, "direct_reply_to": true,
			},
		},
		Mechanisms: "PLAIN AMQPLAIN", Locales: "en_US",
	})
	fr := amqp.NewWireReader(r)
	next := func() (amqp.WireMethod, error) {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return nil, err
			}
			if f.Method != nil {
				return f.Method, nil
			}
		}
	}
	m, err := next()
	if err != nil {
		return err
	}
	if _, ok := m.(*amqp.WireConnectionStartOk); !ok {
		return fmt.Errorf("amqpmem: want connection.start-ok, got %T", m)
	}
	c.sendMethod(0, &amqp.WireConnectionTune{ChannelMax: channelMax, FrameMax: frameMax, Heartbeat: heartbeatSecs})
	if m, err = next(); err != nil {
		return err
	}
	tune, ok := m.(*amqp.WireConnectionTuneOk)
	if !ok {
		return fmt.Errorf("amqpmem: want connection.tune-ok, got %T", m)
	}
	c.outMu.Lock()
	c.heartbeat = time.Duration(tune.Heartbeat) * time.Second
	c.outMu.Unlock()
	if m, err = next(); err != nil {
		return err
	}
	open, ok := m.(*amqp.WireConnectionOpen)
	if !ok {
		return fmt.Errorf("amqpmem: want connection.open, got %T", m)
	}
	if open.VirtualHost != "/" && open.VirtualHost != "" {
		c.connError(530, fmt.Sprintf("NOT_ALLOWED - vhost %s not found (the emulation has only /)", open.VirtualHost), 10, 40)
		return errors.New("amqpmem: unknown vhost")
	}
	c.sendMethod(0, &amqp.WireConnectionOpenOk{})
	return nil
}

// connError closes the connection with an error.
func (c *conn) connError(code uint16, text string, class, method uint16) {
	c.outMu.Lock()
	c.closing = true
	c.outMu.Unlock()
	c.sendMethod(0, &amqp.WireConnectionClose{ReplyCode: code, ReplyText: text, ClassId: class, MethodId: method})
}

// releaseLocked returns every channel's unacked messages and drops the
// connection's consumers and exclusive queues.
func (c *conn) releaseLocked() {
	for _, ch := range c.channels {
		ch.releaseLocked()
	}
	c.channels = map[uint16]*channel{}
	for _, q := range c.b.sortedQueuesLocked() {
		if q.exclusive && q.owner == c {
			c.b.deleteQueueLocked(q)
		}
	}
}

// handle handles one frame; true ends the connection.
func (c *conn) handle(f amqp.WireFrame) bool {
	if f.Channel == 0 {
		switch m := f.Method.(type) {
		case *amqp.WireConnectionClose:
			c.sendMethod(0, &amqp.WireConnectionCloseOk{})
			return true
		case *amqp.WireConnectionCloseOk:
			return true
		case nil:
			c.connError(codeCommandInvalid, "COMMAND_INVALID - content frame on channel 0", 0, 0)
		default:
			class, method := amqp.WireMethodID(m)
			c.connError(codeNotImplemented, fmt.Sprintf("NOT_IMPLEMENTED - method %d.%d on channel 0 is not emulated", class, method), class, method)
		}
		return false
	}
	ch, open := c.channels[f.Channel]
	if !open {
		switch f.Method.(type) {
		case *amqp.WireChannelOpen:
			ch = &channel{id: f.Channel, c: c, unacked: map[uint64]*pending{}, consumers: map[string]*consumer{}}
			c.channels[f.Channel] = ch
			c.sendMethod(f.Channel, &amqp.WireChannelOpenOk{})
		case *amqp.WireChannelCloseOk:
		default:
			c.connError(codeChannelError, fmt.Sprintf("CHANNEL_ERROR - expected 'channel.open' on channel %d", f.Channel), 20, 10)
		}
		return false
	}
	if ch.closing {
		switch f.Method.(type) {
		case *amqp.WireChannelCloseOk:
			delete(c.channels, ch.id)
		case *amqp.WireChannelClose:
			c.sendMethod(ch.id, &amqp.WireChannelCloseOk{})
		}
		return false
	}
	if err := ch.handle(f); err != nil {
		var ae *amqpError
		if errors.As(err, &ae) && ae.conn {
			c.connError(ae.code, ae.text, ae.class, ae.method)
			return false
		}
		ch.fail(err)
	}
	return false
}

// amqpError is a channel (or connection) exception.
type amqpError struct {
	code          uint16
	text          string
	class, method uint16
	conn          bool
}

func (e *amqpError) Error() string { return e.text }

func chanErr(code uint16, m amqp.WireMethod, format string, args ...any) error {
	class, method := uint16(0), uint16(0)
	if m != nil {
		class, method = amqp.WireMethodID(m)
	}
	prefix := map[uint16]string{codeNotFound: "NOT_FOUND", codePrecondition: "PRECONDITION_FAILED",
		codeAccessRefused: "ACCESS_REFUSED", codeResourceLocked: "RESOURCE_LOCKED", codeNotImplemented: "NOT_IMPLEMENTED",
		codeCommandInvalid: "COMMAND_INVALID"}[code]
	return &amqpError{code: code, text: prefix + " - " + fmt.Sprintf(format, args...), class: class, method: method,
		conn: code == codeCommandInvalid}
}

func isReplyTo(name string) bool { return strings.HasPrefix(name, replyTo) }
