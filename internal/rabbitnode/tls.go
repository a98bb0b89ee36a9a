package rabbitnode

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// CertSet is what scripts/tls-ca.sh makes: paths of PEM files.
type CertSet struct {
	Dir                 string
	CA, CAKey           string // the test certificate authority
	Server, ServerKey   string // for localhost, 127.0.0.1 and ::1, signed by CA
	Client, ClientKey   string // CN warren-test-client, signed by CA
	WrongCA, WrongCAKey string // an authority that signed nothing here
}

// Certs makes a new set of test certificates with scripts/tls-ca.sh, in a
// directory removed when the test ends. It fails the test when the script
// or openssl is missing.
func Certs(t testing.TB) *CertSet {
	t.Helper()
	script, err := findScript("tls-ca.sh")
	if err != nil {
		t.Fatalf("rabbitnode: %v", err)
	}
	dir := t.TempDir()
	if out, err := exec.Command("bash", script, dir).CombinedOutput(); err != nil {
		t.Fatalf("rabbitnode: %s: %v\n%s", script, err, out)
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	return &CertSet{
		Dir: dir,
		CA:  p("ca.pem"), CAKey: p("ca.key"),
		Server: p("server.pem"), ServerKey: p("server.key"),
		Client: p("client.pem"), ClientKey: p("client.key"),
		WrongCA: p("wrong-ca.pem"), WrongCAKey: p("wrong-ca.key"),
	}
}

// findScript finds scripts/name at the root of the module, above the
// package directory the test runs in.
func findScript(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			s := filepath.Join(dir, "scripts", name)
			if _, err := os.Stat(s); err != nil {
				return "", fmt.Errorf("%s: %w", name, err)
			}
			return s, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scripts/" + name + ": no go.mod above the test's directory")
		}
		dir = parent
	}
}

// ServerConfig returns the node side of the set for WithTLS: the server
// certificate, and the CA that client certificates must chain to when
// verifyPeer is set.
func (c *CertSet) ServerConfig(verifyPeer bool) TLSConfig {
	return TLSConfig{CACertFile: c.CA, CertFile: c.Server, KeyFile: c.ServerKey, VerifyPeer: verifyPeer}
}

// ClientConfig returns a client configuration that trusts the set's CA
// and presents no certificate. amqp091-go fills in ServerName from the
// URL's host when it is empty.
func (c *CertSet) ClientConfig(t testing.TB) *tls.Config {
	t.Helper()
	return &tls.Config{RootCAs: pool(t, c.CA), MinVersion: tls.VersionTLS12}
}

// WrongRootCAs returns a pool holding only the authority that signed
// nothing here: a client using it must refuse the node.
func (c *CertSet) WrongRootCAs(t testing.TB) *x509.CertPool {
	t.Helper()
	return pool(t, c.WrongCA)
}

// ClientCertificate returns the client certificate and its key.
func (c *CertSet) ClientCertificate(t testing.TB) tls.Certificate {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(c.Client, c.ClientKey)
	if err != nil {
		t.Fatalf("rabbitnode: client certificate: %v", err)
	}
	return cert
}

func pool(t testing.TB, file string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("rabbitnode: %v", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("rabbitnode: no certificate in %s", file)
	}
	return p
}
