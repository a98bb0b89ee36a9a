package rabbitnode

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// tlsCase is one client of an amqps listener: how it is configured and
// how its dial must end.
type tlsCase struct {
	name    string
	config  func(*tls.Config)
	check   func(error) bool // nil: the dial must succeed
	wantErr string
}

func runTLSCases(t *testing.T, n *Node, certs *CertSet, cases []tlsCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := certs.ClientConfig(t)
			if tc.config != nil {
				tc.config(cfg)
			}
			c, err := amqp.DialTLS(n.TLSURL(), cfg)
			if tc.check == nil {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer c.Close()
				if st := c.ConnectionState(); !st.HandshakeComplete || st.Version < tls.VersionTLS12 {
					t.Errorf("connection state: %+v", st)
				}
				return
			}
			if err == nil {
				_ = c.Close()
				t.Fatalf("dial succeeded, want %s", tc.wantErr)
			}
			if !tc.check(err) {
				t.Errorf("dial failed with %v, want %s", err, tc.wantErr)
			}
		})
	}
}

func errorSays(s string) func(error) bool {
	return func(err error) bool { return strings.Contains(err.Error(), s) }
}

func TestTLS(t *testing.T) {
	t.Parallel()
	certs := Certs(t)
	n := Start(t, WithTLS(certs.ServerConfig(false)))
	if !strings.HasPrefix(n.TLSURL(), "amqps://") {
		t.Fatalf("TLSURL = %q", n.TLSURL())
	}
	runTLSCases(t, n, certs, []tlsCase{
		{name: "trusted CA"},
		{name: "TLS 1.3", config: func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 }},
		{name: "TLS 1.2", config: func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }},
		{
			name:    "unknown CA",
			config:  func(c *tls.Config) { c.RootCAs = certs.WrongRootCAs(t) },
			check:   func(err error) bool { return errors.As(err, new(x509.UnknownAuthorityError)) },
			wantErr: "x509.UnknownAuthorityError",
		},
		{
			name:    "wrong server name",
			config:  func(c *tls.Config) { c.ServerName = "warren.invalid" },
			check:   func(err error) bool { return errors.As(err, new(x509.HostnameError)) },
			wantErr: "x509.HostnameError",
		},
		{
			// The client offers TLS 1.0 and 1.1 only; the node must refuse
			// (an alert from the server, not a client-side configuration
			// error).
			name:    "TLS 1.1",
			config:  func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 },
			check:   errorSays("remote error: tls: protocol version not supported"),
			wantErr: "the server's protocol_version alert",
		},
	})
}

func TestTLSClientCertificates(t *testing.T) {
	t.Parallel()
	certs := Certs(t)
	n := Start(t, WithTLS(certs.ServerConfig(true)))
	runTLSCases(t, n, certs, []tlsCase{
		{name: "with a client certificate", config: func(c *tls.Config) { c.Certificates = []tls.Certificate{certs.ClientCertificate(t)} }},
		{
			// In TLS 1.2 the node refuses within the handshake.
			name:    "TLS 1.2 without a client certificate",
			config:  func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 },
			check:   errorSays("remote error: tls: handshake failure"),
			wantErr: "the server's handshake_failure alert",
		},
		{
			// In TLS 1.3 the client's handshake is over before the node
			// checks its certificate: the refusal reaches the client as an
			// alert or a reset, depending on timing.
			name:    "TLS 1.3 without a client certificate",
			config:  func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 },
			check:   func(error) bool { return true },
			wantErr: "a refusal",
		},
	})
}
