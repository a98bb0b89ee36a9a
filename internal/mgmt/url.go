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

// Standard AMQP ports, whose brokers have their management API on Port
// and TLSPort.
const (
	AMQPPort  = "5672" // amqp://
	AMQPSPort = "5671" // amqps://
)

// URLFromAMQP derives the management API's base URL from a broker URL on
// the standard port (5672 for amqp, 5671 for amqps, or none given): same
// host and credentials (guest/guest when it has none, as for AMQP), port
// 15672 over http, or 15671 over https for amqps. A broker URL on another
// port is another node, whose management port cannot be known from it:
// the error wraps ErrUnknownURL. The result holds the password: mask it
// (url.URL.Redacted) before showing it.
func URLFromAMQP(amqpURL string) (string, error) {
	u, err := parseURL(amqpURL)
	if err != nil {
		return "", fmt.Errorf("mgmt: invalid broker URL: %w", err)
	}
	scheme, port, amqpPort := "http", Port, AMQPPort
	switch u.Scheme {
	case "amqp":
	case "amqps":
		scheme, port, amqpPort = "https", TLSPort, AMQPSPort
	default:
		return "", fmt.Errorf("mgmt: broker URL %s: want amqp:// or amqps://", u.Redacted())
	}
	if p := u.Port(); p != "" && p != amqpPort {
		return "", fmt.Errorf("%w: %s is on port %s, not %s, so its management API is not the one on port %s of that host", ErrUnknownURL, u.Redacted(), p, amqpPort, port)
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
