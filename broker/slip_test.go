package broker_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/warrenmq/warren/broker"
)

func TestSlipTableRoundTrip(t *testing.T) {
	s := &broker.Slip{
		ChainID: "chain-1",
		Step:    2,
		Next: []broker.SlipStep{
			{Type: "b", Payload: []byte{0xa1, 'x'}, Compensate: &broker.SlipStep{Type: "undo-b"}},
			{Type: "c", Exchange: "", RoutingKey: "q", Routed: true},
		},
		Compensate:   &broker.SlipStep{Type: "undo-a", Payload: []byte{0xc0}},
		Done:         []broker.SlipStep{{Type: "undo-0", Payload: []byte{1}}},
		Compensating: false,
		Failed:       &broker.SlipFailure{JobID: "j", Type: "t", Class: "error", Error: "boom"},
	}
	got, err := broker.ReadSlip(s.Table())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("ReadSlip(Table()) = %+v, want %+v", got, s)
	}
	// As a delivery holds it: nested tables are Tables, arrays []any.
	m := map[string]any(s.Table())
	if _, err := broker.ReadSlip(m); err != nil {
		t.Errorf("ReadSlip of a map[string]any: %v", err)
	}
}

func TestReadSlipRefuses(t *testing.T) {
	step := func(kv ...any) broker.Table {
		t := broker.Table{}
		for i := 0; i < len(kv); i += 2 {
			t[kv[i].(string)] = kv[i+1]
		}
		return t
	}
	many := make([]any, broker.MaxSlipSteps+1)
	for i := range many {
		many[i] = step("type", "x")
	}
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"not a table", "chain", "want a table"},
		{"no id", broker.Table{"step": int64(0)}, `no "id"`},
		{"id not a string", broker.Table{"id": int64(3)}, "want a string"},
		{"negative step", broker.Table{"id": "c", "step": int64(-1)}, "step"},
		{"next not an array", broker.Table{"id": "c", "next": "b"}, "want an array"},
		{"a step without a type", broker.Table{"id": "c", "next": []any{step("payload", []byte{1})}}, `no "type"`},
		{"a step not a table", broker.Table{"id": "c", "next": []any{"b"}}, "want a table"},
		{"a payload not bytes", broker.Table{"id": "c", "next": []any{step("type", "b", "payload", int64(1))}}, "byte array"},
		{"too many steps", broker.Table{"id": "c", "next": many}, "limit"},
		{"compensation of a compensation", broker.Table{"id": "c", "compensate": step("type", "u", "compensate", step("type", "v"))}, "compensation of its own"},
		{"compensating not a bool", broker.Table{"id": "c", "compensating": "yes"}, "boolean"},
		{"failed not a table", broker.Table{"id": "c", "failed": "boom"}, "want a table"},
		{"payloads over the limit", broker.Table{"id": "c", "next": []any{step("type", "b", "payload", make([]byte, broker.MaxSlipBytes+1))}}, "bytes of payloads"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := broker.ReadSlip(tc.v)
			if !errors.Is(err, broker.ErrInvalidSlip) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadSlip: %v, want ErrInvalidSlip saying %q", err, tc.want)
			}
		})
	}
}

// FuzzReadSlip: whatever a producer puts in the header, ReadSlip returns
// a slip that passes Check, or an error; it never panics.
func FuzzReadSlip(f *testing.F) {
	f.Add("c", int64(0), "b", []byte{0xc0}, true, "x", false)
	f.Add("", int64(-5), "", []byte(nil), false, "", true)
	f.Fuzz(func(t *testing.T, id string, step int64, typ string, payload []byte, routed bool, key string, comp bool) {
		st := broker.Table{"type": typ, "payload": payload}
		if routed {
			st["exchange"], st["routing_key"] = "", key
		}
		if comp {
			st["compensate"] = broker.Table{"type": typ, "compensate": broker.Table{"type": key}}
		}
		s, err := broker.ReadSlip(broker.Table{"id": id, "step": step, "next": []any{st, st}, "done": []any{st}, "compensating": comp})
		if err != nil {
			if !errors.Is(err, broker.ErrInvalidSlip) {
				t.Fatalf("error %v does not wrap ErrInvalidSlip", err)
			}
			return
		}
		if err := s.Check(); err != nil {
			t.Fatalf("ReadSlip returned a slip that fails Check: %v", err)
		}
	})
}
