package broker_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/rabbitnode"
	"github.com/warrenmq/warren/topology"
)

// The TLS tests run against private nodes with an amqps listener
// (internal/rabbitnode): the shared broker has none. Like every test of a
// private node, they fail, never skip, when rabbitmq-server is missing.

// dialTLS dials urls with opts, closing the Conn at cleanup when it opens.
func dialTLS(t *testing.T, urls []string, opts ...broker.Option) (*broker.Conn, error) {
	t.Helper()
	opts = append([]broker.Option{broker.WithDialTimeout(10 * time.Second)}, opts...)
	conn, err := broker.Dial(brokertest.Context(t, 30*time.Second), urls, opts...)
	if err == nil {
		t.Cleanup(func() {
			if err := conn.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	return conn, err
}

// TestTLS: warren's client against a node whose certificate a test CA
// signed, for localhost, 127.0.0.1 and ::1.
func TestTLS(t *testing.T) {
	t.Parallel()
	certs := rabbitnode.Certs(t)
	n := rabbitnode.Start(t, rabbitnode.WithTLS(certs.ServerConfig(false)))

	t.Run("trusted CA: a job goes through", func(t *testing.T) {
		cfg := certs.ClientConfig(t)
		conn, err := dialTLS(t, []string{n.TLSURL()}, broker.WithTLS(cfg))
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		if cfg.ServerName != "" || cfg.MinVersion != tls.VersionTLS12 {
			t.Errorf("Dial changed the caller's tls.Config: ServerName %q, MinVersion %s", cfg.ServerName, tls.VersionName(cfg.MinVersion))
		}
		ctx := brokertest.Context(t, 30*time.Second)
		queue := brokertest.Name(t, "q") // on the private node, gone with it
		d := broker.NewDeclarer(conn)
		defer d.Close(ctx)
		if err := d.DeclareQueue(ctx, topology.Queue{Name: queue, Type: topology.Classic, Durable: true, Args: topology.Table{"x-queue-type": topology.Classic}}); err != nil {
			t.Fatal(err)
		}
		id := brokertest.JobID(t)
		if err := newPublisher(t, conn).Publish(ctx, broker.Job{ID: id, Type: "tls.check", Payload: "over TLS"}, broker.ToQueue(queue)); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		dl, ok := consume(t, conn, queue).Next(ctx)
		if !ok {
			t.Fatal("no delivery")
		}
		var payload string
		if err := dl.Envelope.Decode(&payload); err != nil || dl.Envelope.ID != id || payload != "over TLS" {
			t.Fatalf("consumed job %s %q (%v), want %s %q", dl.Envelope.ID, payload, err, id, "over TLS")
		}
		if err := dl.Ack(); err != nil {
			t.Fatal(err)
		}
	})

	// Each case must fail to connect, with an error that says why and
	// keeps the x509 error reachable.
	type refusal struct {
		name    string
		urls    func(t *testing.T) []string
		opts    func(t *testing.T) []broker.Option
		check   func(error) bool
		message string // in the error's text
	}
	tlsURL := func(*testing.T) []string { return []string{n.TLSURL()} }
	with := func(change func(*tls.Config)) func(t *testing.T) []broker.Option {
		return func(t *testing.T) []broker.Option {
			cfg := certs.ClientConfig(t)
			change(cfg)
			return []broker.Option{broker.WithTLS(cfg)}
		}
	}
	unknownCA := func(err error) bool { return errors.As(err, new(x509.UnknownAuthorityError)) }
	wrongName := func(err error) bool { return errors.As(err, new(x509.HostnameError)) }
	for _, c := range []refusal{
		{
			name:    "unknown CA",
			urls:    tlsURL,
			opts:    with(func(c *tls.Config) { c.RootCAs = certs.WrongRootCAs(t) }),
			check:   unknownCA,
			message: "certificate is not trusted",
		},
		{
			// The default: the system roots, which do not hold the test CA.
			// Certificates are checked unless a tls.Config says otherwise.
			name:    "no WithTLS: system roots",
			urls:    tlsURL,
			opts:    func(*testing.T) []broker.Option { return nil },
			check:   unknownCA,
			message: "certificate is not trusted",
		},
		{
			name:    "ServerName not in the certificate",
			urls:    tlsURL,
			opts:    with(func(c *tls.Config) { c.ServerName = "warren.invalid" }),
			check:   wrongName,
			message: `not valid for "warren.invalid"`,
		},
		{
			name:    "URL host not in the certificate",
			urls:    func(t *testing.T) []string { return []string{uncoveredURL(t, n)} },
			opts:    with(func(*tls.Config) {}),
			check:   wrongName,
			message: `not valid for "127.0.0.2"`,
		},
		{
			// Refused by WithTLS itself: nothing is dialled.
			name:    "client limited to TLS 1.1",
			urls:    tlsURL,
			opts:    with(func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }),
			check:   func(err error) bool { return strings.HasPrefix(err.Error(), "broker: WithTLS:") },
			message: "below TLS 1.2",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := dialTLS(t, c.urls(t), c.opts(t)...)
			if err == nil {
				t.Fatal("Dial succeeded")
			}
			if !c.check(err) || !strings.Contains(err.Error(), c.message) {
				t.Errorf("Dial error %q: want one saying %q", err, c.message)
			}
		})
	}

	// amqp091-go writes the URL's host into an empty ServerName of the
	// tls.Config it is given. Were one shared by the URLs of a Conn, the
	// host of the first URL dialled would be checked on every later one,
	// and failing over to another node would fail.
	t.Run("each URL checked against its own host", func(t *testing.T) {
		good := n.TLSURL()
		conn, err := dialTLS(t, []string{uncoveredURL(t, n), good}, broker.WithTLS(certs.ClientConfig(t)))
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		if conn.URL() != broker.RedactURL(good) {
			t.Errorf("connected to %s, want %s", conn.URL(), broker.RedactURL(good))
		}
	})
}

// uncoveredURL returns an amqps URL of n whose host, 127.0.0.2, its
// certificate does not list: a relay on 127.0.0.2 forwards to n's TLS
// port. Linux routes all of 127.0.0.0/8 to the loopback interface; other
// systems may not.
func uncoveredURL(t *testing.T, n *rabbitnode.Node) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("127.0.0.2 is a loopback address on Linux, not always on %s", runtime.GOOS)
	}
	u, err := url.Parse(n.TLSURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Host = relay(t, "127.0.0.2:0", u.Host)
	return u.String()
}

// relay forwards each connection made to a new listener on addr to target,
// until the test ends, and returns the listener's address.
func relay(t *testing.T, addr, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return // closed at cleanup
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			track(in)
			track(out)
			for _, p := range [][2]net.Conn{{in, out}, {out, in}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = io.Copy(p[0], p[1])
					p[0].Close()
					p[1].Close()
				}()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestTLSMinimumVersion: warren never connects below TLS 1.2, whatever the
// tls.Config it is given says, even to a node that would accept TLS 1.1.
func TestTLSMinimumVersion(t *testing.T) {
	t.Parallel()
	t.Run("configuration", func(t *testing.T) {
		def, err := broker.TLSConfigOf()
		if err != nil {
			t.Fatal(err)
		}
		if def.MinVersion != tls.VersionTLS12 || def.InsecureSkipVerify || def.RootCAs != nil {
			t.Errorf("without WithTLS: MinVersion %s, InsecureSkipVerify %v, RootCAs %v; want TLS 1.2, false, nil (the system roots)",
				tls.VersionName(def.MinVersion), def.InsecureSkipVerify, def.RootCAs)
		}
		for _, v := range []uint16{0, tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13} {
			given := &tls.Config{MinVersion: v, ServerName: "broker.example"}
			got, err := broker.TLSConfigOf(broker.WithTLS(given))
			if err != nil {
				t.Fatal(err)
			}
			want := max(v, tls.VersionTLS12)
			if got.MinVersion != want || got.ServerName != "broker.example" {
				t.Errorf("WithTLS(MinVersion %s): MinVersion %s, ServerName %q; want %s, the ServerName given", tls.VersionName(v), tls.VersionName(got.MinVersion), got.ServerName, tls.VersionName(want))
			}
			if given.MinVersion != v {
				t.Errorf("WithTLS changed the caller's MinVersion to %s", tls.VersionName(given.MinVersion))
			}
		}
	})

	t.Run("against a node speaking TLS 1.1 only", func(t *testing.T) {
		certs := rabbitnode.Certs(t)
		server := certs.ServerConfig(false)
		server.Versions = []string{"tlsv1.1"}
		n := rabbitnode.Start(t, rabbitnode.WithTLS(server))
		weak := func() *tls.Config {
			c := certs.ClientConfig(t)
			c.MinVersion = tls.VersionTLS10
			return c
		}
		// The node does accept TLS 1.1 from amqp091-go itself, so the
		// refusal below is warren's.
		raw, err := amqp.DialTLS(n.TLSURL(), weak())
		if err != nil {
			t.Fatalf("amqp091-go with MinVersion TLS 1.0 could not connect: %v", err)
		}
		if v := raw.ConnectionState().Version; v != tls.VersionTLS11 {
			t.Errorf("amqp091-go connected with %s, want TLS 1.1", tls.VersionName(v))
		}
		_ = raw.Close()

		_, err = dialTLS(t, []string{n.TLSURL()}, broker.WithTLS(weak()))
		if err == nil {
			t.Fatal("warren connected with TLS 1.1")
		}
		if !strings.Contains(err.Error(), "accepts no TLS version warren offers") {
			t.Errorf("Dial error %q should say the node accepts no TLS version warren offers", err)
		}
	})
}

// TestTLSClientCertificate: mutual TLS, with a node that refuses clients
// without a certificate its CA signed (verify_peer, fail_if_no_peer_cert).
func TestTLSClientCertificate(t *testing.T) {
	t.Parallel()
	certs := rabbitnode.Certs(t)
	n := rabbitnode.Start(t, rabbitnode.WithTLS(certs.ServerConfig(true)))

	cfg := certs.ClientConfig(t)
	cfg.Certificates = []tls.Certificate{certs.ClientCertificate(t)}
	conn, err := dialTLS(t, []string{n.TLSURL()}, broker.WithTLS(cfg))
	if err != nil {
		t.Fatalf("Dial with a client certificate: %v", err)
	}
	d := broker.NewDeclarer(conn)
	defer d.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ok, err := d.QueueExists(ctx, brokertest.Name(t, "q")); err != nil || ok {
		t.Fatalf("a passive declare on the connection: %v, %v; want false, nil", ok, err)
	}

	// In TLS 1.2 the node refuses within the handshake (in TLS 1.3 after
	// it, as a reset or an alert, depending on timing).
	bare := certs.ClientConfig(t)
	bare.MaxVersion = tls.VersionTLS12
	if _, err := dialTLS(t, []string{n.TLSURL()}, broker.WithTLS(bare)); err == nil || !strings.Contains(err.Error(), "handshake failure") {
		t.Errorf("Dial without a client certificate: %v, want the node's handshake_failure alert", err)
	}
}
