// Package jsonwire holds the JSON pieces that warren's two typed-JSON
// forms share: broker's header tables (broker.Table's MarshalJSON) and
// deadletter's export records. Both write AMQP timestamps the same way,
// refuse unknown fields the same way, and quote a bad fragment the same
// way in their errors. It imports nothing of warren's.
package jsonwire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"
)

// Stamp is an AMQP timestamp, seconds since the Unix epoch, written in RFC
// 3339 in UTC ("2026-11-24T10:00:00Z"), or as a decimal string of the
// seconds when its year is outside 0000-9999, where RFC 3339 cannot go.
type Stamp int64

// Seconds since the epoch of 0000-01-01T00:00:00Z and of the first second
// after 9999-12-31T23:59:59Z.
const (
	minStamp = -62167219200
	endStamp = 253402300800
)

func (s Stamp) MarshalJSON() ([]byte, error) {
	if s < minStamp || s >= endStamp {
		return Quote(strconv.FormatInt(int64(s), 10)), nil
	}
	return Quote(time.Unix(int64(s), 0).UTC().Format(time.RFC3339)), nil
}

func (s *Stamp) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("want a timestamp string such as \"2026-11-24T10:00:00Z\", got %s", Short(b))
	}
	if n, err := strconv.ParseInt(str, 10, 64); err == nil {
		*s = Stamp(n)
		return nil
	}
	t, err := time.Parse(time.RFC3339, str)
	if err != nil {
		return fmt.Errorf("timestamp %.40q is not RFC 3339 such as \"2026-11-24T10:00:00Z\", nor a count of seconds", str)
	}
	if t.Nanosecond() != 0 {
		return fmt.Errorf("timestamp %.40q has a fraction of a second; AMQP timestamps are whole seconds", str)
	}
	*s = Stamp(t.Unix())
	return nil
}

// Time is s in UTC.
func (s Stamp) Time() time.Time { return time.Unix(int64(s), 0).UTC() }

// Marshal is json.Marshal without HTML escaping ("<" stays "<": the lines
// are read by people and tools, not embedded in HTML).
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Quote is s as a JSON string.
func Quote(s string) json.RawMessage {
	b, _ := Marshal(s) // a valid UTF-8 string always encodes
	return b
}

// StrictUnmarshal decodes one JSON value, refusing fields v does not have.
func StrictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// Short quotes the start of a JSON fragment for an error message.
func Short(b []byte) string {
	const n = 40
	if len(b) > n {
		return fmt.Sprintf("%q…", b[:n])
	}
	return fmt.Sprintf("%q", b)
}

// Plain returns v, a value decoded from MessagePack or a header table,
// as values encoding/json writes plainly: every map, whatever its type
// (a named map type such as broker.Table included), becomes a
// map[string]any with its keys formatted by fmt.Sprint, every slice of
// values a []any. v is not changed: what Plain returns is a copy down to
// the leaves.
func Plain(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int64, uint64, float64, []byte, time.Time:
		return v
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, el := range x {
			m[k] = Plain(el)
		}
		return m
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, el := range x {
			m[fmt.Sprint(k)] = Plain(el)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			out[i] = Plain(el)
		}
		return out
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Map {
		m := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			m[fmt.Sprint(it.Key().Interface())] = Plain(it.Value().Interface())
		}
		return m
	}
	return v
}

// Payload returns a job's payload, body, as plain JSON values (Plain):
// decode is the envelope's Decode. A payload that does not decode comes
// back as {"hex": the body in hex, "error": why}, so a listing still
// shows it.
func Payload(body []byte, decode func(v any) error) any {
	var v any
	if err := decode(&v); err != nil {
		return map[string]string{"hex": hex.EncodeToString(body), "error": err.Error()}
	}
	return Plain(v)
}
