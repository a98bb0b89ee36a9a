// Passwords kept out of everything printed: URLs redacted, errors whose
// text may echo a URL or pieces of its password.

package broker

import (
	"errors"
	"net/url"
	"strings"
)

// secretOf is the password of the current connection's URL, for redaction.
func (c *Conn) secretOf() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != nil {
		return c.sess.secret
	}
	return passwordOf(c.urls[0])
}

// RedactURL returns u with its password replaced by "xxxxx". A URL that
// does not parse with its user information where it belongs (a password
// holding a reserved character such as "#" or "/" that is not
// percent-encoded, say) is redacted from its scheme to its last "@", since
// it may hold a password anyway.
func RedactURL(u string) string {
	parsed, ok := parseUserinfo(u)
	if !ok {
		rest, scheme := u, ""
		if i := strings.Index(u, "://"); i >= 0 {
			rest, scheme = u[i+3:], u[:i+3]
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			return scheme + "xxxxx" + rest[at:]
		}
		return u
	}
	if parsed.User == nil {
		return u
	}
	if _, has := parsed.User.Password(); has {
		parsed.User = url.UserPassword(parsed.User.Username(), "xxxxx")
	}
	return parsed.String()
}

// parseUserinfo parses u, reporting false when it does not parse, or when
// an "@" after the scheme did not end up ending its user information: then
// a reserved character of the password cut the URL short (a "#" starts the
// fragment, a "/" the path), and the password sits in another part.
func parseUserinfo(u string) (*url.URL, bool) {
	parsed, err := url.Parse(u)
	if err != nil {
		return nil, false
	}
	rest := u
	if i := strings.Index(u, "://"); i >= 0 {
		rest = u[i+3:]
	}
	if parsed.User == nil && strings.Contains(rest, "@") {
		return nil, false
	}
	return parsed, true
}

// passwordOf finds the password in a URL, even one url.Parse refuses or
// splits in the wrong place.
func passwordOf(u string) string {
	if parsed, ok := parseUserinfo(u); ok {
		if parsed.User == nil {
			return ""
		}
		p, _ := parsed.User.Password()
		return p
	}
	rest := u
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	if _, p, ok := strings.Cut(rest[:at], ":"); ok {
		return p
	}
	return ""
}

// errCutShort: an "@" of the URL is not the end of its user information,
// which is then likely cut short by a reserved character of the password.
var errCutShort = errors.New(`its last "@" does not end its user information: a reserved character of the password cut it short`)

// invalidURL is the error for a URL amqp091-go refuses. It does not wrap
// the parser's error, whose text quotes the URL, password included; the
// parser's own words are kept, redacted, as they can quote pieces of the
// password too (net/url names what it took for the port, which is the
// start of a password holding a "#" or a "/").
func invalidURL(raw string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	secret := passwordOf(raw)
	msg := "broker: invalid URL " + RedactURL(raw) + ": " + redact(err.Error(), secret)
	if strings.Contains(raw, "@") && (ue != nil || strings.ContainsAny(raw, " \t") || errors.Is(err, errCutShort)) {
		msg += "; percent-encode any reserved character (: / ? # @ % or a space) in the user name and password, as net/url.UserPassword does"
	}
	return errors.New(msg)
}

// redactedError keeps the wrapped error reachable by errors.Is/As while its
// text never shows the password. msg must hold none (URLs in it redacted
// with RedactURL): only err's text is redacted, so that a user name equal
// to the password stays readable in msg.
type redactedError struct {
	msg    string
	err    error
	secret string
}

func (e *redactedError) Error() string {
	return e.msg + ": " + redact(e.err.Error(), e.secret)
}

func (e *redactedError) Unwrap() error { return e.err }

// redact removes secret from s. amqp091-go and net errors may echo a URL
// with its password, and URL parsers pieces of it: each piece of secret
// between reserved characters of URLs, of three bytes or more, is removed
// too.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	s = strings.ReplaceAll(s, secret, "xxxxx")
	for _, piece := range strings.FieldsFunc(secret, func(r rune) bool { return strings.ContainsRune(":/?#[]@% \t", r) }) {
		if len(piece) >= 3 {
			s = strings.ReplaceAll(s, piece, "xxxxx")
		}
	}
	return s
}
