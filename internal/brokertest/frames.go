package brokertest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A minimal AMQP 0-9-1 publisher that writes frames itself, so that tests
// can send what other clients send and amqp091-go cannot write: header
// field types such as py-amqp's 'L', tables nested or sized beyond what
// amqp091-go reads back. It speaks just enough of the protocol to log in,
// open a channel, enable confirms, publish and close.

// RawMessage is a message PublishFrames sends: the properties tests need,
// the header table as the bytes that go on the wire, and the body.
type RawMessage struct {
	ContentType  string
	MessageID    string
	Type         string
	AppID        string
	Timestamp    time.Time // whole seconds; zero: not set
	DeliveryMode uint8     // 0: not set
	// Table is the header table's content (its entries, without the
	// length prefix), as Field builds it; nil: no headers property.
	Table []byte
	Body  []byte
}

// Field encodes one header table entry: the name as a short string, the
// field type octet, then value, which must be that type's encoding.
func Field(name string, typ byte, value []byte) []byte {
	b := append([]byte{byte(len(name))}, name...)
	b = append(b, typ)
	return append(b, value...)
}

// FieldTable encodes the value of a nested table (field type 'F'): its
// length, then entries made by Field.
func FieldTable(entries ...[]byte) []byte {
	var inner []byte
	for _, e := range entries {
		inner = append(inner, e...)
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(inner))), inner...)
}

// PublishFrames publishes msgs, in order, to exchange with routingKey as
// mandatory messages, on a connection of its own with publisher confirms,
// and fails t unless the broker confirms every one without returning it.
func PublishFrames(t testing.TB, exchange, routingKey string, msgs ...RawMessage) {
	t.Helper()
	if err := publishFrames(URL(t), exchange, routingKey, msgs); err != nil {
		t.Fatalf("brokertest: publish raw frames: %v", err)
	}
}

// AMQP frame types and the frame end octet.
const (
	frameMethod    = 1
	frameHeader    = 2
	frameBody      = 3
	frameHeartbeat = 8
	frameEnd       = 0xce
)

type rawConn struct {
	c        net.Conn
	r        *bufio.Reader
	frameMax int
}

func publishFrames(rawURL, exchange, routingKey string, msgs []RawMessage) (err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	if u.Scheme != "amqp" {
		return fmt.Errorf("only amqp:// URLs are spoken here, not %s://", u.Scheme)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	vhost := strings.TrimPrefix(u.Path, "/")
	if vhost == "" {
		vhost = "/"
	}
	user, pass := "guest", "guest"
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	nc, err := net.DialTimeout("tcp", host, 10*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := nc.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		return err
	}
	c := &rawConn{c: nc, r: bufio.NewReader(nc), frameMax: 4096}

	if _, err := nc.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		return err
	}
	if _, err := c.expect(0, 10, 10); err != nil { // connection.start
		return err
	}
	startOK := binary.BigEndian.AppendUint32(nil, 0) // client properties: an empty table
	startOK = shortstr(startOK, "PLAIN")
	startOK = longstr(startOK, "\x00"+user+"\x00"+pass)
	startOK = shortstr(startOK, "en_US")
	if err := c.method(0, 10, 11, startOK); err != nil {
		return err
	}
	tune, err := c.expect(0, 10, 30) // connection.tune: channel-max, frame-max, heartbeat
	if err != nil {
		return err
	}
	if len(tune) < 8 {
		return errors.New("short connection.tune")
	}
	if fm := int(binary.BigEndian.Uint32(tune[2:6])); fm >= 4096 {
		c.frameMax = fm
	}
	tuneOK := binary.BigEndian.AppendUint16(nil, binary.BigEndian.Uint16(tune[0:2]))
	tuneOK = binary.BigEndian.AppendUint32(tuneOK, uint32(c.frameMax))
	tuneOK = binary.BigEndian.AppendUint16(tuneOK, 0) // no heartbeats: the connection lives seconds
	if err := c.method(0, 10, 31, tuneOK); err != nil {
		return err
	}
	if err := c.method(0, 10, 40, append(shortstr(shortstr(nil, vhost), ""), 0)); err != nil { // connection.open
		return err
	}
	if _, err := c.expect(0, 10, 41); err != nil {
		return err
	}
	defer func() {
		// connection.close (reply code 200, no text, no failing method),
		// then its close-ok.
		if cerr := c.method(0, 10, 50, []byte{0, 200, 0, 0, 0, 0, 0}); cerr == nil {
			_, cerr = c.expect(0, 10, 51)
			if err == nil {
				err = cerr
			}
		}
	}()
	if err := c.method(1, 20, 10, shortstr(nil, "")); err != nil { // channel.open
		return err
	}
	if _, err := c.expect(1, 20, 11); err != nil {
		return err
	}
	if err := c.method(1, 85, 10, []byte{0}); err != nil { // confirm.select
		return err
	}
	if _, err := c.expect(1, 85, 11); err != nil {
		return err
	}
	for i, m := range msgs {
		if err := c.publish(exchange, routingKey, m); err != nil {
			return fmt.Errorf("message %d (%q): %w", i, m.MessageID, err)
		}
	}
	return nil
}

// publish sends m and waits for its confirm.
func (c *rawConn) publish(exchange, routingKey string, m RawMessage) error {
	args := binary.BigEndian.AppendUint16(nil, 0)
	args = shortstr(args, exchange)
	args = shortstr(args, routingKey)
	args = append(args, 1) // mandatory
	if err := c.method(1, 60, 40, args); err != nil {
		return err
	}
	var flags uint16
	var props []byte
	if m.ContentType != "" {
		flags |= 0x8000
		props = shortstr(props, m.ContentType)
	}
	if m.Table != nil {
		flags |= 0x2000
		props = binary.BigEndian.AppendUint32(props, uint32(len(m.Table)))
		props = append(props, m.Table...)
	}
	if m.DeliveryMode != 0 {
		flags |= 0x1000
		props = append(props, m.DeliveryMode)
	}
	if m.MessageID != "" {
		flags |= 0x0080
		props = shortstr(props, m.MessageID)
	}
	if !m.Timestamp.IsZero() {
		flags |= 0x0040
		props = binary.BigEndian.AppendUint64(props, uint64(m.Timestamp.Unix()))
	}
	if m.Type != "" {
		flags |= 0x0020
		props = shortstr(props, m.Type)
	}
	if m.AppID != "" {
		flags |= 0x0008
		props = shortstr(props, m.AppID)
	}
	header := binary.BigEndian.AppendUint16(nil, 60)
	header = binary.BigEndian.AppendUint16(header, 0)
	header = binary.BigEndian.AppendUint64(header, uint64(len(m.Body)))
	header = binary.BigEndian.AppendUint16(header, flags)
	if err := c.frame(frameHeader, 1, append(header, props...)); err != nil {
		return err
	}
	for body := m.Body; len(body) > 0; {
		n := min(len(body), c.frameMax-8)
		if err := c.frame(frameBody, 1, body[:n]); err != nil {
			return err
		}
		body = body[n:]
	}
	returned := false
	for {
		typ, _, payload, err := c.read()
		if err != nil {
			return err
		}
		if typ != frameMethod {
			continue // a returned message's content
		}
		class, method := binary.BigEndian.Uint16(payload[0:2]), binary.BigEndian.Uint16(payload[2:4])
		switch {
		case class == 60 && method == 50: // basic.return
			returned = true
		case class == 60 && method == 80: // basic.ack
			if returned {
				return errors.New("the broker returned it: no queue is bound for its routing key")
			}
			return nil
		case class == 60 && method == 120: // basic.nack
			return errors.New("the broker nacked it")
		default:
			return closeError(class, method, payload)
		}
	}
}

// method sends a method frame.
func (c *rawConn) method(channel, class, method uint16, args []byte) error {
	p := binary.BigEndian.AppendUint16(nil, class)
	p = binary.BigEndian.AppendUint16(p, method)
	return c.frame(frameMethod, channel, append(p, args...))
}

func (c *rawConn) frame(typ byte, channel uint16, payload []byte) error {
	if len(payload)+8 > c.frameMax {
		return fmt.Errorf("a frame of %d bytes exceeds the connection's frame_max %d", len(payload)+8, c.frameMax)
	}
	b := append([]byte{typ}, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(b[1:3], channel)
	binary.BigEndian.PutUint32(b[3:7], uint32(len(payload)))
	b = append(append(b, payload...), frameEnd)
	_, err := c.c.Write(b)
	return err
}

// read returns the next frame that is not a heartbeat.
func (c *rawConn) read() (typ byte, channel uint16, payload []byte, err error) {
	for {
		var h [7]byte
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			return 0, 0, nil, err
		}
		payload = make([]byte, binary.BigEndian.Uint32(h[3:7])+1)
		if _, err := io.ReadFull(c.r, payload); err != nil {
			return 0, 0, nil, err
		}
		if payload[len(payload)-1] != frameEnd {
			return 0, 0, nil, errors.New("a frame without its end octet")
		}
		if h[0] == frameHeartbeat {
			continue
		}
		if h[0] == frameMethod && len(payload) < 5 {
			return 0, 0, nil, errors.New("a method frame too short for its class and method")
		}
		return h[0], binary.BigEndian.Uint16(h[1:3]), payload[:len(payload)-1], nil
	}
}

// expect reads the next frame and returns its arguments when it is the
// method class.method on channel.
func (c *rawConn) expect(channel, class, method uint16) ([]byte, error) {
	typ, ch, p, err := c.read()
	if err != nil {
		return nil, err
	}
	if typ != frameMethod {
		return nil, fmt.Errorf("frame type %d, want a method", typ)
	}
	gc, gm := binary.BigEndian.Uint16(p[0:2]), binary.BigEndian.Uint16(p[2:4])
	if ch != channel || gc != class || gm != method {
		return nil, closeError(gc, gm, p)
	}
	return p[4:], nil
}

// closeError describes an unexpected method: the broker's reason when it
// is a connection.close or channel.close.
func closeError(class, method uint16, payload []byte) error {
	if (class == 10 && method == 50) || (class == 20 && method == 40) {
		if len(payload) >= 7 {
			code := binary.BigEndian.Uint16(payload[4:6])
			n := int(payload[6])
			if len(payload) >= 7+n {
				return fmt.Errorf("the broker closed the %s: %d %s", map[uint16]string{10: "connection", 20: "channel"}[class], code, payload[7:7+n])
			}
		}
	}
	return fmt.Errorf("unexpected method %d.%d", class, method)
}

func shortstr(b []byte, s string) []byte {
	return append(append(b, byte(len(s))), s...)
}

func longstr(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
}
