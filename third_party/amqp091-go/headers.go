// Added by warren's patch (WARREN-PATCH.md): a message whose header table
// cannot be read is delivered, with the reason, instead of closing the
// connection.

package amqp091

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"
)

// HeadersError is in Delivery.HeadersErr and Return.HeadersErr when a
// message's header table could not be read: a field type this client does
// not know, or tables nested or sized beyond its limits (maxFieldDepth,
// maxContainerElements), which the broker does not have. The message is
// delivered all the same, without headers: a content header frame says
// where its table ends, so the properties after it are read, and the
// connection is not closed (which would make the broker deliver the
// message again, to the same end, for ever).
type HeadersError struct {
	// Key is the header that could not be read ("" when the table as a
	// whole is at fault, e.g. too many entries).
	Key string
	// Type is the field type octet at fault: unknown, or the table or
	// array nested too deep (0 when none is).
	Type byte
	// Raw is the table as it came, without its length prefix.
	Raw []byte
	// Err is ErrSyntax, the error the connection would have closed with.
	Err error

	reason string
}

func (e *HeadersError) Error() string {
	reason := e.reason
	if reason == "" && e.Err != nil {
		reason = e.Err.Error() // made outside readHeaders
	}
	if e.Key != "" {
		return fmt.Sprintf("amqp: header table skipped: header %q: %s", e.Key, reason)
	}
	return "amqp: header table skipped: " + reason
}

func (e *HeadersError) Unwrap() error { return e.Err }

// fieldTypes are the field type octets RabbitMQ reads, and readField.
const fieldTypes = "STbBsuIidflLtDFAxV"

// readHeaders reads a content header's table. One that cannot be parsed is
// returned as a *HeadersError, with the reader after it; only a table that
// runs past the frame fails the frame.
func readHeaders(r io.Reader) (Table, *HeadersError, error) {
	var size uint32
	if err := binary.Read(r, binary.BigEndian, &size); err != nil {
		return nil, nil, err
	}
	if size > math.MaxInt32 {
		return nil, nil, ErrSyntax
	}
	raw, err := tableBytes(r, size)
	if err != nil {
		return nil, nil, err
	}
	t, err := parseTable(raw, 0)
	if err == nil {
		return t, nil, nil
	}
	raw = bytes.Clone(raw) // it may be the frame's payload, which the next frame reuses
	e := &HeadersError{Raw: raw, Err: ErrSyntax}
	e.Key, e.Type, e.reason = unreadable(raw, false, 0)
	if e.reason == "" {
		e.reason = err.Error()
	}
	return nil, e, nil
}

// unreadable finds what readTable (or readArray, for an array) cannot read
// in b, the content of a table or array at depth: the top-level header, the
// type octet at fault, and why.
func unreadable(b []byte, array bool, depth int) (key string, typ byte, reason string) {
	if depth > maxFieldDepth {
		return "", 0, fmt.Sprintf("tables and arrays nested more than %d deep", maxFieldDepth)
	}
	r := bytes.NewReader(b)
	for n := 0; r.Len() > 0; n++ {
		if n >= maxContainerElements {
			return "", 0, fmt.Sprintf("more than %d entries in a table or array", maxContainerElements)
		}
		if !array {
			k, err := readShortstr(r)
			if err != nil {
				return "", 0, "a header name is cut short"
			}
			key = k
		}
		t, err := r.ReadByte()
		if err != nil {
			return key, 0, "its value is missing"
		}
		if t == 'F' || t == 'A' {
			var size uint32
			if binary.Read(r, binary.BigEndian, &size) != nil || int64(size) > int64(r.Len()) {
				return key, t, "its value is cut short"
			}
			inner := make([]byte, size)
			_, _ = io.ReadFull(r, inner)
			if _, it, why := unreadable(inner, t == 'A', depth+1); why != "" {
				if it == 0 {
					it = t
				}
				return key, it, why
			}
			continue
		}
		_ = r.UnreadByte()
		if _, err := readFieldDepth(r, depth); err != nil {
			switch {
			case strings.IndexByte(fieldTypes, t) < 0:
				return key, t, fmt.Sprintf("field type %q (0x%02x) is not an AMQP 0-9-1 field type RabbitMQ reads", t, t)
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				return key, t, "its value is cut short"
			}
			return key, t, fmt.Sprintf("its value cannot be read: %v", err)
		}
	}
	return "", 0, ""
}
