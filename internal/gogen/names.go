package gogen

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// initialisms are the words written in capitals in Go names (as golint
// and the standard library write them), plus ETA.
var initialisms = map[string]string{
	"acl": "ACL", "api": "API", "ascii": "ASCII", "cpu": "CPU", "css": "CSS", "dns": "DNS",
	"eof": "EOF", "eta": "ETA", "guid": "GUID", "html": "HTML", "http": "HTTP", "https": "HTTPS",
	"id": "ID", "ip": "IP", "json": "JSON", "qps": "QPS", "ram": "RAM", "rpc": "RPC", "sla": "SLA",
	"smtp": "SMTP", "sql": "SQL", "ssh": "SSH", "tcp": "TCP", "tls": "TLS", "ttl": "TTL", "udp": "UDP",
	"ui": "UI", "uid": "UID", "uri": "URI", "url": "URL", "utc": "UTC", "utf8": "UTF8", "uuid": "UUID",
	"vm": "VM", "xml": "XML", "xmpp": "XMPP", "xsrf": "XSRF", "xss": "XSS",
}

// GoName returns the exported Go name made of s: s is split into words at
// every character that is not a letter or a digit, each word is
// title-cased (its first letter upper-cased, the rest kept as written) or,
// when it is a common initialism such as id, url or eta, written in
// capitals (ID, URL, ETA). A name that would not start with an upper-case
// letter (it starts with a digit, or with a letter without case) is
// prefixed with X. The empty string is returned when s has no letters or
// digits.
//
// So "trip.book" is TripBook, "driver_eta" DriverETA, "trip-id" TripID,
// "tripId" TripId and "2fa" X2fa.
func GoName(s string) string {
	words := strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	var b strings.Builder
	for _, w := range words {
		if up, ok := initialisms[strings.ToLower(w)]; ok {
			b.WriteString(up)
			continue
		}
		r, size := utf8.DecodeRuneInString(w)
		b.WriteRune(unicode.ToUpper(r))
		b.WriteString(w[size:])
	}
	name := b.String()
	if name == "" {
		return ""
	}
	if r, _ := utf8.DecodeRuneInString(name); !unicode.IsUpper(r) {
		name = "X" + name
	}
	return name
}
