package mgmt

import (
	"fmt"
	"net"
	"net/url"
)

// Ports of the management API.
const (
	Port    = "15672" // over http
	TLSPort = "15671" // over https
)

// URLFromAMQP derives the management API's base URL from a broker URL:
// same host and credentials (guest/guest when it has none, as for AMQP),
// port 15672 over http, or 15671 over https for amqps. The result holds the
// password: mask it (url.URL.Redacted) before showing it.
func URLFromAMQP(amqpURL string) (string, error) {
	u, err := parseURL(amqpURL)
	if err != nil {
		return "", fmt.Errorf("mgmt: invalid broker URL: %w", err)
	}
	scheme, port := "http", Port
	switch u.Scheme {
	case "amqp":
	case "amqps":
		scheme, port = "https", TLSPort
	default:
		return "", fmt.Errorf("mgmt: broker URL %s: want amqp:// or amqps://", u.Redacted())
	}
	host := u.Hostname()
	if host == "" {
		host = "localhost"
	}
	m := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port), User: u.User}
	if m.User == nil {
		m.User = url.UserPassword("guest", "guest")
	}
	return m.String(), nil
}

// VhostFromAMQP returns the virtual host a broker URL names, as amqp091-go
// reads it: the path without its leading slash, unescaped ("/prod" is
// "prod", "/%2F" is "/"), and "/" for an empty path or "/".
func VhostFromAMQP(amqpURL string) (string, error) {
	u, err := parseURL(amqpURL)
	if err != nil {
		return "", fmt.Errorf("mgmt: invalid broker URL: %w", err)
	}
	switch {
	case u.Path == "" || u.Path == "/":
		return "/", nil
	case u.Path[0] == '/':
		return u.Path[1:], nil
	default:
		return u.Path, nil
	}
}
