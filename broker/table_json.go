package broker

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/warrenmq/warren/internal/jsonwire"
)

// A Table's JSON form: each value with its AMQP field type, so that
// a table read back is the table written, type for type, and a message
// stored as JSON is published again exactly as it was delivered. It is
// the form of the headers in warren's dead-letter export files, which
// come from outside: reading refuses what it does not know rather than
// guess.
//
//	{"name": {"t": "int32", "v": 7}, "when": {"t": "timestamp", "v": "2026-11-24T10:00:00Z"}}
//
// The types are bool, int8, uint8, int16, uint16, int32, uint32, int64 (its
// value a decimal string, which JSON readers in every language keep
// exact; a number is read too), float32 and float64 (the shortest number
// that reads back the same; "NaN", "Infinity", "-Infinity" as strings),
// decimal ({"scale": 0-255, "value": a 32-bit integer}), string (UTF-8 as
// "v", other bytes in base64 as "b64" instead), bytes (base64), timestamp
// (RFC 3339 in UTC, whole seconds; the seconds as a decimal string outside
// the years 0000-9999), table (an object of typed values), array (an array
// of typed values) and void ({"t": "void"}, no "v").

// MarshalJSON writes t in its JSON form. It fails for what the form
// cannot hold exactly, which AMQP cannot carry either: a value of a type
// Table does not list, a name that is not UTF-8 or longer than 255 bytes,
// tables and arrays nested deeper than 32 levels, a timestamp with a
// fraction of a second. A nil Table is null.
func (t Table) MarshalJSON() ([]byte, error) {
	if t == nil {
		return []byte("null"), nil
	}
	m, err := encodeTable(t, 0)
	if err != nil {
		return nil, err
	}
	return jsonwire.Marshal(m)
}

// UnmarshalJSON reads a table in its JSON form into t, replacing what t
// held; null leaves t as it is. It refuses unknown value types, values
// out of their type's range, names longer than 255 bytes and nesting
// deeper than 32 levels. Values read back have the Go types Table lists:
// an empty array is a nil []any, times are in UTC.
func (t *Table) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("want a JSON object of typed values, got %s", jsonwire.Short(b))
	}
	out, err := decodeTable(m, 0)
	if err != nil {
		return err
	}
	*t = out
	return nil
}

// maxFieldDepth is how deeply tables and arrays may nest in the headers
// (the headers table itself at depth 0): amqp091-go reads no deeper.
const maxFieldDepth = 32

// wireValue is a header value with its AMQP type: {"t": type, "v": value},
// {"t": "string", "b64": …} for a string that is not UTF-8, {"t": "void"}.
type wireValue struct {
	T   string          `json:"t"`
	V   json.RawMessage `json:"v,omitempty"`
	B64 *string         `json:"b64,omitempty"`
}

// Type names of header values, one per AMQP field type (its letter in
// RabbitMQ's table encoding in the comment).
const (
	tBool      = "bool"      // t
	tInt8      = "int8"      // b
	tUint8     = "uint8"     // B
	tInt16     = "int16"     // s
	tUint16    = "uint16"    // u
	tInt32     = "int32"     // I
	tUint32    = "uint32"    // i
	tInt64     = "int64"     // l
	tFloat32   = "float32"   // f
	tFloat64   = "float64"   // d
	tDecimal   = "decimal"   // D
	tString    = "string"    // S
	tBytes     = "bytes"     // x
	tTimestamp = "timestamp" // T
	tTable     = "table"     // F
	tArray     = "array"     // A
	tVoid      = "void"      // V
)

func encodeTable(t Table, depth int) (map[string]json.RawMessage, error) {
	if depth > maxFieldDepth {
		return nil, fmt.Errorf("tables and arrays nest deeper than %d levels; amqp091-go reads no deeper", maxFieldDepth)
	}
	out := make(map[string]json.RawMessage, len(t))
	for k, v := range t {
		if !utf8.ValidString(k) {
			return nil, fmt.Errorf("header name %q is not UTF-8; the export format cannot hold it", k)
		}
		if len(k) > maxShortString {
			return nil, fmt.Errorf("header name %.40q… is %d bytes; AMQP allows at most %d", k, len(k), maxShortString)
		}
		b, err := encodeValue(v, depth)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		out[k] = b
	}
	return out, nil
}

// encodeValue writes one header value with its AMQP type.
func encodeValue(v any, depth int) (json.RawMessage, error) {
	num := func(t string, n int64) (json.RawMessage, error) {
		return jsonwire.Marshal(wireValue{T: t, V: json.RawMessage(strconv.FormatInt(n, 10))})
	}
	switch x := v.(type) {
	case nil:
		return jsonwire.Marshal(wireValue{T: tVoid})
	case bool:
		return jsonwire.Marshal(wireValue{T: tBool, V: json.RawMessage(strconv.FormatBool(x))})
	case int8:
		return num(tInt8, int64(x))
	case uint8:
		return num(tUint8, int64(x))
	case int16:
		return num(tInt16, int64(x))
	case uint16:
		return num(tUint16, int64(x))
	case int32:
		return num(tInt32, int64(x))
	case int:
		// amqp091-go writes an int as a 32-bit signed integer.
		if x < math.MinInt32 || x > math.MaxInt32 {
			return nil, fmt.Errorf("int %d does not fit the 32 bits amqp091-go sends an int as; use an int64", x)
		}
		return num(tInt32, int64(x))
	case uint32:
		return num(tUint32, int64(x))
	case int64:
		// A string: JSON readers in some languages round integers above 2^53.
		return jsonwire.Marshal(wireValue{T: tInt64, V: jsonwire.Quote(strconv.FormatInt(x, 10))})
	case float32:
		return jsonwire.Marshal(wireValue{T: tFloat32, V: floatJSON(float64(x), 32)})
	case float64:
		return jsonwire.Marshal(wireValue{T: tFloat64, V: floatJSON(x, 64)})
	case Decimal:
		b, err := jsonwire.Marshal(wireDecimal{Scale: x.Scale, Value: x.Value})
		if err != nil {
			return nil, err
		}
		return jsonwire.Marshal(wireValue{T: tDecimal, V: b})
	case string:
		if utf8.ValidString(x) {
			return jsonwire.Marshal(wireValue{T: tString, V: jsonwire.Quote(x)})
		}
		s := base64.StdEncoding.EncodeToString([]byte(x))
		return jsonwire.Marshal(wireValue{T: tString, B64: &s})
	case []byte:
		return jsonwire.Marshal(wireValue{T: tBytes, V: jsonwire.Quote(base64.StdEncoding.EncodeToString(x))})
	case time.Time:
		if x.Nanosecond() != 0 {
			return nil, errors.New("timestamp has a fraction of a second; AMQP timestamps are whole seconds")
		}
		b, err := jsonwire.Marshal(jsonwire.Stamp(x.Unix()))
		if err != nil {
			return nil, err
		}
		return jsonwire.Marshal(wireValue{T: tTimestamp, V: b})
	case Table:
		t, err := encodeTable(x, depth+1)
		if err != nil {
			return nil, err
		}
		b, err := jsonwire.Marshal(t)
		if err != nil {
			return nil, err
		}
		return jsonwire.Marshal(wireValue{T: tTable, V: b})
	case []any:
		if depth+1 > maxFieldDepth {
			return nil, fmt.Errorf("tables and arrays nest deeper than %d levels; amqp091-go reads no deeper", maxFieldDepth)
		}
		a := make([]json.RawMessage, len(x))
		for i, el := range x {
			b, err := encodeValue(el, depth+1)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			a[i] = b
		}
		b, err := jsonwire.Marshal(a)
		if err != nil {
			return nil, err
		}
		return jsonwire.Marshal(wireValue{T: tArray, V: b})
	}
	return nil, fmt.Errorf("a %T is not an AMQP field value of a Table", v)
}

type wireDecimal struct {
	Scale uint8 `json:"scale"`
	Value int32 `json:"value"`
}

// floatJSON writes f as the shortest JSON number that reads back as the
// same float of its size, or as a string for what JSON numbers cannot be:
// "NaN", "Infinity", "-Infinity".
func floatJSON(f float64, bits int) json.RawMessage {
	switch {
	case math.IsNaN(f):
		return jsonwire.Quote("NaN")
	case math.IsInf(f, 1):
		return jsonwire.Quote("Infinity")
	case math.IsInf(f, -1):
		return jsonwire.Quote("-Infinity")
	}
	return json.RawMessage(strconv.FormatFloat(f, 'g', -1, bits))
}

func decodeTable(m map[string]json.RawMessage, depth int) (Table, error) {
	if depth > maxFieldDepth {
		return nil, fmt.Errorf("tables and arrays nest deeper than %d levels; amqp091-go reads no deeper", maxFieldDepth)
	}
	t := make(Table, len(m))
	for k, raw := range m {
		if len(k) > maxShortString {
			return nil, fmt.Errorf("header name %.40q… is %d bytes; AMQP allows at most %d", k, len(k), maxShortString)
		}
		v, err := decodeValue(raw, depth)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		t[k] = v
	}
	return t, nil
}

// decodeValue reads one header value into the Go type Table gives its AMQP
// type.
func decodeValue(raw json.RawMessage, depth int) (any, error) {
	var w wireValue
	if err := jsonwire.StrictUnmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf(`want {"t": type, "v": value}: %w`, err)
	}
	if w.T == tVoid {
		if w.V != nil || w.B64 != nil {
			return nil, errors.New(`a void value has no "v"`)
		}
		return nil, nil
	}
	if w.B64 != nil {
		if w.T != tString || w.V != nil {
			return nil, errors.New(`"b64" is only for a string (that is not UTF-8), instead of "v"`)
		}
		b, err := base64.StdEncoding.DecodeString(*w.B64)
		if err != nil {
			return nil, fmt.Errorf(`"b64" is not base64: %w`, err)
		}
		return string(b), nil
	}
	if w.V == nil || string(w.V) == "null" {
		return nil, fmt.Errorf(`a %q value needs "v" (a value without one is {"t": "void"})`, w.T)
	}
	switch w.T {
	case tBool:
		var b bool
		if err := json.Unmarshal(w.V, &b); err != nil {
			return nil, fmt.Errorf("want true or false, got %s", jsonwire.Short(w.V))
		}
		return b, nil
	case tInt8:
		n, err := intJSON(w.V, math.MinInt8, math.MaxInt8)
		return int8(n), err
	case tUint8:
		n, err := intJSON(w.V, 0, math.MaxUint8)
		return uint8(n), err
	case tInt16:
		n, err := intJSON(w.V, math.MinInt16, math.MaxInt16)
		return int16(n), err
	case tUint16:
		n, err := intJSON(w.V, 0, math.MaxUint16)
		return uint16(n), err
	case tInt32:
		n, err := intJSON(w.V, math.MinInt32, math.MaxInt32)
		return int32(n), err
	case tUint32:
		n, err := intJSON(w.V, 0, math.MaxUint32)
		return uint32(n), err
	case tInt64:
		v := w.V
		var s string
		if json.Unmarshal(v, &s) == nil {
			v = json.RawMessage(s) // written as a string; a number is read too
		}
		return intJSON(v, math.MinInt64, math.MaxInt64)
	case tFloat32:
		f, err := floatOf(w.V, 32)
		return float32(f), err
	case tFloat64:
		return floatOf(w.V, 64)
	case tDecimal:
		var d wireDecimal
		if err := jsonwire.StrictUnmarshal(w.V, &d); err != nil {
			return nil, fmt.Errorf(`want {"scale": 0-255, "value": a 32-bit integer}: %w`, err)
		}
		return Decimal{Scale: d.Scale, Value: d.Value}, nil
	case tString:
		var s string
		if err := json.Unmarshal(w.V, &s); err != nil {
			return nil, fmt.Errorf("want a JSON string, got %s", jsonwire.Short(w.V))
		}
		return s, nil
	case tBytes:
		var s string
		if err := json.Unmarshal(w.V, &s); err != nil {
			return nil, fmt.Errorf("want a base64 string, got %s", jsonwire.Short(w.V))
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("not base64: %w", err)
		}
		return b, nil
	case tTimestamp:
		var s jsonwire.Stamp
		if err := json.Unmarshal(w.V, &s); err != nil {
			return nil, err
		}
		return s.Time(), nil
	case tTable:
		var m map[string]json.RawMessage
		if err := json.Unmarshal(w.V, &m); err != nil || m == nil {
			return nil, fmt.Errorf("want a JSON object of typed values, got %s", jsonwire.Short(w.V))
		}
		return decodeTable(m, depth+1)
	case tArray:
		if depth+1 > maxFieldDepth {
			return nil, fmt.Errorf("tables and arrays nest deeper than %d levels; amqp091-go reads no deeper", maxFieldDepth)
		}
		var a []json.RawMessage
		if err := json.Unmarshal(w.V, &a); err != nil || a == nil {
			return nil, fmt.Errorf("want a JSON array of typed values, got %s", jsonwire.Short(w.V))
		}
		if len(a) == 0 {
			return []any(nil), nil // as amqp091-go reads an empty array
		}
		out := make([]any, len(a))
		for i, el := range a {
			v, err := decodeValue(el, depth+1)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			out[i] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown type %q; the types are bool, int8, uint8, int16, uint16, int32, uint32, int64, float32, float64, decimal, string, bytes, timestamp, table, array, void", w.T)
}

// intJSON reads a JSON integer (no fraction, no exponent) in [lo, hi].
func intJSON(v json.RawMessage, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("want an integer from %d to %d, got %s", lo, hi, jsonwire.Short(v))
	}
	return n, nil
}

// floatOf reads what floatJSON writes.
func floatOf(v json.RawMessage, bits int) (float64, error) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		switch s {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf(`want a JSON number, "NaN", "Infinity" or "-Infinity", got %s`, jsonwire.Short(v))
	}
	f, err := strconv.ParseFloat(string(v), bits)
	if err != nil || !json.Valid(v) {
		return 0, fmt.Errorf("want a %d-bit float, got %s", bits, jsonwire.Short(v))
	}
	return f, nil
}
