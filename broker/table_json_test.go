package broker_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/warrenmq/warren/broker"
)

// everyType is a table with a value of every AMQP field type, at the
// edges of their ranges.
func everyType() broker.Table {
	return broker.Table{
		"b": true, "i8": int8(math.MinInt8), "u8": uint8(math.MaxUint8), "i16": int16(-2), "u16": uint16(2),
		"i32": int32(math.MinInt32), "u32": uint32(math.MaxUint32), "i64": int64(math.MinInt64), "big": int64(math.MaxInt64),
		"f32": float32(1.5), "f64": 0.1, "inf": math.Inf(-1), "nan": math.NaN(),
		"d": broker.Decimal{Scale: 2, Value: -995}, "s": "ü", "raw": "x\xfe", "x": []byte{0, 0xff},
		"t": time.Unix(1795514400, 0).UTC(), "old": time.Unix(-99999999999, 0).UTC(), "v": nil,
		"a":   []any{"a", int64(1), broker.Table{"k": []byte{1}}},
		"tbl": broker.Table{"nested": broker.Table{}, "empty": []any(nil)},
	}
}

func TestTableJSON(t *testing.T) {
	b, err := json.Marshal(everyType())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"i64":{"t":"int64","v":"-9223372036854775808"}`,
		`"d":{"t":"decimal","v":{"scale":2,"value":-995}}`,
		`"raw":{"t":"string","b64":"eP4="}`,
		`"t":{"t":"timestamp","v":"2026-11-24T10:00:00Z"}`,
		`"old":{"t":"timestamp","v":"-99999999999"}`,
		`"nan":{"t":"float64","v":"NaN"}`,
		`"v":{"t":"void"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON form lacks %s:\n%s", want, b)
		}
	}
	var got broker.Table
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(everyType(), got, cmpopts.EquateNaNs()); diff != "" {
		t.Errorf("table read back differs (-written +read):\n%s", diff)
	}

	for _, c := range []struct {
		name string
		t    broker.Table
		want string
	}{
		{"a type AMQP lacks", broker.Table{"u": uint64(1)}, "uint64"},
		{"a fraction of a second", broker.Table{"t": time.Unix(1, 5)}, "fraction of a second"},
		{"a name that is not UTF-8", broker.Table{"\xff": true}, "not UTF-8"},
		{"a plain map", broker.Table{"m": map[string]any{}}, "map[string]interface {}"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.t.MarshalJSON(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("MarshalJSON: %v, want an error naming %q", err, c.want)
			}
		})
	}
}

// FuzzTableJSON feeds the table reader what a file from outside may hold:
// it must never panic, and a table it reads must write and read back the
// same.
func FuzzTableJSON(f *testing.F) {
	seed, err := json.Marshal(everyType())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, s := range []string{
		`null`, `{}`, `[]`, `{"h":"text"}`,
		`{"h":{"t":"timestamp","v":"9999-12-31T23:59:59-05:00"}}`,
		`{"h":{"t":"array","v":[{"t":"array","v":[{"t":"array","v":[]}]}]}}`,
		`{"h":{"t":"float32","v":3.4028235e+38}}`,
		`{"h":{"t":"int64","v":-1099511627776},"s":{"t":"string","b64":"/w=="}}`,
		`{"h":{"t":"table","v":{"":{"t":"decimal","v":{"scale":255,"value":-2147483648}}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var tb broker.Table
		if err := json.Unmarshal(b, &tb); err != nil {
			return
		}
		out, err := json.Marshal(tb)
		if err != nil {
			t.Fatalf("a table that was read cannot be written: %v\n%#v", err, tb)
		}
		var again broker.Table
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("a table written cannot be read: %v\n%s", err, out)
		}
		if diff := cmp.Diff(tb, again, cmpopts.EquateNaNs()); diff != "" {
			t.Fatalf("a table read, written and read again differs (-first +second):\n%s\n%s", diff, out)
		}
		if out2, err := json.Marshal(again); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("writing is not stable: %v\n%s\n%s", err, out, out2)
		}
	})
}
