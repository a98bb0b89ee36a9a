package jsonwire

import (
	"encoding/json"
	"errors"
	"testing"
)

type table map[string]any // as broker.Table: a named map type

func TestPlain(t *testing.T) {
	in := table{
		"n":     int64(1),
		"inner": table{"k": []any{map[any]any{int64(7): "seven"}}},
	}
	got, err := json.Marshal(Plain(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"inner":{"k":[{"7":"seven"}]},"n":1}`; string(got) != want {
		t.Errorf("Plain: %s, want %s", got, want)
	}
	if _, ok := in["inner"].(table); !ok {
		t.Error("Plain changed its argument")
	}
}

func TestPayload(t *testing.T) {
	ok := Payload([]byte{0x81}, func(v any) error {
		*(v.(*any)) = map[any]any{"a": int64(1)}
		return nil
	})
	if b, _ := json.Marshal(ok); string(b) != `{"a":1}` {
		t.Errorf("Payload: %s", b)
	}
	bad := Payload([]byte{0xc1}, func(any) error { return errors.New("never used") })
	if b, _ := json.Marshal(bad); string(b) != `{"error":"never used","hex":"c1"}` {
		t.Errorf("Payload of a bad body: %s", b)
	}
}
