package broker

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// nested returns depth nested one-element arrays around a nil.
func nested(depth int) []byte {
	return append(bytes.Repeat([]byte{0x91}, depth), 0xc0)
}

func TestBodyCheckAccepts(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		lim  Limits
	}{
		{"nil", "c0", Limits{}},
		{"false true in array", "92 c2 c3", Limits{}},
		{"positive fixint", "7f", Limits{}},
		{"negative fixint", "e0", Limits{}},
		{"uint8 uint16 uint32 uint64", "94 cc ff cd ffff ce ffffffff cf ffffffffffffffff", Limits{}},
		{"int8 int16 int32 int64", "94 d0 80 d1 8000 d2 80000000 d3 8000000000000000", Limits{}},
		{"float32 float64", "92 ca 3f800000 cb 3ff0000000000000", Limits{}},
		{"fixstr empty and full", "92 a0 bf" + strings.Repeat("61", 31), Limits{}},
		{"str8 str16 str32", "93 d9 01 61 da 0001 61 db 00000001 61", Limits{}},
		{"bin8 bin16 bin32", "93 c4 00 c5 0001 ff c6 00000002 ffff", Limits{}},
		{"timestamp in ext8 ext16 ext32", "93 c7 04 ff 00000000 c8 0004 ff 00000000 c9 00000004 ff 00000000", Limits{}},
		{"timestamp 32 64 96", "93 d6 ff 6b055918 d7 ff 0000000000000000 c7 0c ff 3b9ac9ff 0000000000000000", Limits{}},
		{"fixmap", "82 a1 61 01 a1 62 90", Limits{}},
		{"map16 array16", "de 0001 a1 61 dc 0002 01 02", Limits{}},
		{"map32 array32", "df 00000001 a1 61 dd 00000001 c0", Limits{}},
		{"empty containers", "92 80 90", Limits{}},
		{"depth 64 at default", hex.EncodeToString(nested(64)), Limits{}},
		{"depth 64 empty innermost", strings.Repeat("91", 63) + "90", Limits{}},
		{"depth 3 at limit 3", "91 91 91 c0", Limits{MaxDepth: 3}},
		{"exactly MaxBytes", "a3 616263", Limits{MaxBytes: 4}},
		{"depth 100 with MaxDepth 100", hex.EncodeToString(nested(100)), Limits{MaxDepth: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(t, tt.hex)
			if err := CheckBody(b, tt.lim); err != nil {
				t.Fatalf("CheckBody(%x) = %v, want nil", b, err)
			}
		})
	}
}

func TestBodyCheckRejects(t *testing.T) {
	tests := []struct {
		name    string
		body    []byte
		lim     Limits
		wantErr error
		wantMsg string // substring of the error
	}{
		{"empty", nil, Limits{}, ErrBadBody, "the body is empty"},
		{"c1", []byte{0xc1}, Limits{}, ErrBadBody, "offset 0: byte c1"},
		{"c1 inside", unhex(t, "92 01 c1"), Limits{}, ErrBadBody, "offset 2: byte c1"},
		{"truncated uint16", unhex(t, "cd 01"), Limits{}, ErrBadBody, "offset 0: uint16 (cd) declares 2 byte(s) but only 1 remain"},
		{"truncated fixstr", unhex(t, "a3 6162"), Limits{}, ErrBadBody, "fixstr (a3) declares 3 byte(s) but only 2 remain"},
		{"str8 without length", unhex(t, "d9"), Limits{}, ErrBadBody, "str8 (d9) needs 1 header byte(s) but only 0 remain"},
		{"str32 of 4 GiB", unhex(t, "db ffffffff"), Limits{}, ErrBadBody, "str32 (db) declares 4294967295 byte(s) but only 0 remain"},
		{"bin32 of 4 GiB", unhex(t, "c6 ffffffff 00"), Limits{}, ErrBadBody, "bin32 (c6) declares 4294967295 byte(s) but only 1 remain"},
		{"ext32 of 4 GiB", unhex(t, "c9 ffffffff 01"), Limits{}, ErrBadBody, "ext32 (c9) declares 4294967295 byte(s)"},
		{"ext8 without type", unhex(t, "c7 00"), Limits{}, ErrBadBody, "ext8 (c7) needs 2 header byte(s) but only 1 remain"},
		{"fixext16 short", unhex(t, "d8 01 00"), Limits{}, ErrBadBody, "fixext16 (d8) declares 16 byte(s) but only 1 remain"},
		{"array32 of 4G elements", unhex(t, "dd ffffffff"), Limits{}, ErrBadBody, "array32 (dd) declares 4294967295 element(s) but only 0 byte(s) remain"},
		{"map32 of 4G entries", unhex(t, "df ffffffff c0"), Limits{}, ErrBadBody, "map32 (df) declares 8589934590 element(s) but only 1 byte(s) remain"},
		{"fixmap missing value", unhex(t, "81 a1 61"), Limits{}, ErrBadBody, "offset 3: the body ends inside an array or map (1 more element(s) declared at depth 1)"},
		{"fixmap too long", unhex(t, "82 01"), Limits{}, ErrBadBody, "fixmap (82) declares 4 element(s) but only 1 byte(s) remain"},
		{"array ends early", unhex(t, "93 01 cd 0001"), Limits{}, ErrBadBody, "offset 5: the body ends inside an array or map"},
		{"trailing byte", unhex(t, "c0 c0"), Limits{}, ErrBadBody, "offset 1: 1 byte(s) follow the body's value"},
		{"two maps", unhex(t, "80 80"), Limits{}, ErrBadBody, "follow the body's value"},
		{"depth 65 at default", nested(65), Limits{}, ErrBadBody, "offset 64: arrays and maps nest deeper than 64"},
		{"empty array at depth 65", append(bytes.Repeat([]byte{0x91}, 64), 0x90), Limits{}, ErrBadBody, "nest deeper than 64"},
		{"depth 4 at limit 3", nested(4), Limits{MaxDepth: 3}, ErrBadBody, "offset 3: arrays and maps nest deeper than 3"},
		{"maps nest too", bytes.Repeat([]byte{0x81, 0xa0}, 70), Limits{}, ErrBadBody, "nest deeper than 64"},
		{"MaxDepth capped", nested(MaxDepthLimit + 1), Limits{MaxDepth: math.MaxInt}, ErrBadBody, "nest deeper than 10000"},
		{"over MaxBytes", unhex(t, "a4 61626364"), Limits{MaxBytes: 4}, ErrBodyTooLarge, "5 bytes, the limit is 4"},
		{"over default MaxBytes", append([]byte{0xc6, 0x00, 0x10, 0x00, 0x00}, make([]byte, 1<<20)...), Limits{}, ErrBodyTooLarge, "the limit is 1048576"},
		{"fixext1 type 1", unhex(t, "d4 01 00"), Limits{}, ErrBadBody, "offset 0: extension type 1; the only extension allowed is the timestamp (-1)"},
		{"fixext16 type -2", unhex(t, "d8 fe"+strings.Repeat("00", 16)), Limits{}, ErrBadBody, "extension type -2"},
		{"ext8 type 5 inside", unhex(t, "92 c0 c7 01 05 00"), Limits{}, ErrBadBody, "offset 2: extension type 5"},
		{"ext8 empty timestamp", unhex(t, "c7 00 ff"), Limits{}, ErrBadBody, "timestamp extension (-1) with 0 data bytes"},
		{"timestamp of 2 bytes", unhex(t, "d5 ff 0000"), Limits{}, ErrBadBody, "timestamp extension (-1) with 2 data bytes"},
		{"timestamp nanoseconds", unhex(t, "c7 0c ff 3b9aca00 0000000000000000"), Limits{}, ErrBadBody, "1000000000 nanoseconds"},
		{"timestamp64 nanoseconds", unhex(t, "d7 ff ffffffff 00000000"), Limits{}, ErrBadBody, "nanoseconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckBody(tt.body, tt.lim)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CheckBody = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("CheckBody = %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

// TestBodyCheckEncoded checks CheckBody against what the encoder writes:
// every encoding is accepted, every proper prefix of it is rejected
// (MessagePack values are self-delimiting), and so is any extra byte.
func TestBodyCheckEncoded(t *testing.T) {
	type item struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty"`
	}
	values := map[string]any{
		"struct": struct {
			ID    int64             `json:"id"`
			Name  string            `json:"name"`
			Tags  []string          `json:"tags"`
			Items []item            `json:"items"`
			Meta  map[string]any    `json:"meta"`
			When  time.Time         `json:"when"`
			Blob  []byte            `json:"blob"`
			Ratio float64           `json:"ratio"`
			Small float32           `json:"small"`
			Neg   int               `json:"neg"`
			Big   uint64            `json:"big"`
			Nil   *int              `json:"nil"`
			Str   map[string]string `json:"str"`
		}{
			ID: 1 << 40, Name: strings.Repeat("n", 300), Tags: []string{"a", "b"},
			Items: []item{{"A-1", 2}, {"B-7", 70000}},
			Meta:  map[string]any{"k": []any{1, "x", nil, true, 2.5}},
			When:  time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.UTC),
			Blob:  bytes.Repeat([]byte{7}, 70000), Ratio: math.Pi, Small: 1.5,
			Neg: -1 << 33, Big: math.MaxUint64, Str: map[string]string{"a": "b"},
		},
		"long array": make([]int, 70000),
		"long map": func() map[string]int {
			m := map[string]int{}
			for i := range 20 {
				m[strings.Repeat("k", i+1)] = i
			}
			return m
		}(),
		"old time":    time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC),
		"second time": time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			b, err := encodePayload(v)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckBody(b, Limits{}); err != nil {
				t.Fatalf("CheckBody(encoding) = %v", err)
			}
			for i := range len(b) {
				if err := CheckBody(b[:i], Limits{}); !errors.Is(err, ErrBadBody) {
					t.Fatalf("CheckBody(prefix of %d bytes) = %v, want ErrBadBody", i, err)
				}
			}
			if err := CheckBody(append(b[:len(b):len(b)], 0xc0), Limits{}); !errors.Is(err, ErrBadBody) {
				t.Fatalf("CheckBody(with a trailing byte) = %v, want ErrBadBody", err)
			}
		})
	}
}

func TestBodyCheckDoesNotAllocate(t *testing.T) {
	b, err := encodePayload(samplePayload())
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = CheckBody(b, Limits{}) }); n != 0 {
		t.Errorf("CheckBody allocated %v times per run, want 0", n)
	}
}

type sampleLine struct {
	SKU       string `json:"sku"`
	Qty       int    `json:"qty"`
	UnitCents int64  `json:"unit_cents"`
}

type sampleInvoice struct {
	InvoiceID   int64             `json:"invoice_id"`
	Customer    string            `json:"customer"`
	Email       string            `json:"email"`
	Currency    string            `json:"currency"`
	AmountCents int64             `json:"amount_cents"`
	IssuedAt    time.Time         `json:"issued_at"`
	Lines       []sampleLine      `json:"lines"`
	Meta        map[string]string `json:"meta"`
}

// samplePayload is a typical job payload, about 200 bytes encoded.
func samplePayload() sampleInvoice {
	return sampleInvoice{
		InvoiceID: 1042, Customer: "Ada Lovelace", Email: "ada@example.com", Currency: "EUR",
		AmountCents: 129900, IssuedAt: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
		Lines: []sampleLine{{"A-1", 2, 49950}, {"B-7", 1, 30000}},
		Meta:  map[string]string{"tenant": "acme", "source": "checkout"},
	}
}

func TestBodyDecode(t *testing.T) {
	body, err := encodePayload(samplePayload())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("struct", func(t *testing.T) {
		var got sampleInvoice
		if err := (&Envelope{Body: body}).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(samplePayload(), got); diff != "" {
			t.Errorf("Decode (-want +got):\n%s", diff)
		}
	})
	t.Run("any", func(t *testing.T) {
		var got any
		if err := (&Envelope{Body: unhex(t, "82 a1 61 91 81 a1 62 c4 01 ff a1 63 d6 ff 6b055918")}).Decode(&got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"a": []any{map[string]any{"b": []byte{0xff}}},
			"c": time.Unix(1795512600, 0),
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Decode (-want +got):\n%s", diff)
		}
	})
	t.Run("msgpack tag wins over json tag", func(t *testing.T) {
		var got struct {
			A string `msgpack:"x" json:"a"`
		}
		if err := (&Envelope{Body: unhex(t, "82 a1 61 a1 31 a1 78 a1 32")}).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if got.A != "2" {
			t.Errorf("A = %q, want the value of key x", got.A)
		}
	})
	tests := []struct {
		name    string
		body    []byte
		target  any
		lim     Limits
		wantErr error
	}{
		{"bomb", unhex(t, "dd ffffffff"), new(any), Limits{}, ErrBadBody},
		{"wrong type", unhex(t, "a1 61"), new(int), Limits{}, ErrBadBody},
		{"non-string map key into any", unhex(t, "81 01 02"), new(any), Limits{}, ErrBadBody},
		{"unknown extension into any", unhex(t, "d4 05 00"), new(any), Limits{}, ErrBadBody},
		// The decoder reads a timestamp's data as a map where it expects
		// one: here a map32 of 808 million entries (found by fuzzing).
		{"timestamp as a map", unhex(t, "d7 ff df 30303030 303030"), new(map[string]any), Limits{}, ErrBadBody},
		{"timestamp as a map field", unhex(t, "81 a4 6d657461 d7 ff df 30303030 303030"), new(sampleInvoice), Limits{}, ErrBadBody},
		{"timestamp as a typed map", unhex(t, "d6 ff 81 a1 61 01"), new(map[string]int), Limits{}, ErrBadBody},
		{"timestamp as nil map", unhex(t, "92 d6 ff c0 000000 c0"), new([]map[string]any), Limits{}, ErrBadBody},
		{"too large for the limit", body, new(any), Limits{MaxBytes: 10}, ErrBodyTooLarge},
		{"too deep for the limit", nested(3), new(any), Limits{MaxDepth: 2}, ErrBadBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Envelope{Body: tt.body}).DecodeWith(tt.target, tt.lim)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("DecodeWith = %v, want %v", err, tt.wantErr)
			}
		})
	}
	t.Run("not a pointer", func(t *testing.T) {
		var v any
		for _, target := range []any{nil, v, sampleInvoice{}, (*sampleInvoice)(nil)} {
			err := (&Envelope{Body: body}).Decode(target)
			if err == nil || errors.Is(err, ErrBadBody) {
				t.Errorf("Decode(%T) = %v, want a usage error, not ErrBadBody", target, err)
			}
		}
	})
	t.Run("nil into a time.Time field", func(t *testing.T) {
		// msgpack v5.4.1 panics here (found by fuzzing); Decode recovers.
		var v struct {
			T time.Time `json:"t"`
		}
		err := (&Envelope{Body: unhex(t, "81 a1 74 c0")}).Decode(&v)
		if !errors.Is(err, ErrBadBody) {
			t.Fatalf("Decode = %v, want ErrBadBody", err)
		}
	})
	t.Run("panic in a custom decoder", func(t *testing.T) {
		err := (&Envelope{Body: unhex(t, "01")}).Decode(new(panicky))
		if !errors.Is(err, ErrBadBody) {
			t.Fatalf("Decode = %v, want ErrBadBody", err)
		}
	})
}

type panicky struct{}

func (*panicky) DecodeMsgpack(*msgpack.Decoder) error { panic("boom") }

func TestBodyEncodeOptions(t *testing.T) {
	type tagged struct {
		JSON    string `json:"j"`
		Both    string `msgpack:"m" json:"x"`
		Omitted string `json:"o,omitempty"`
		Skipped string `json:"-"`
		Plain   int8
	}
	tests := []struct {
		name string
		v    any
		hex  string
	}{
		{"json tags", tagged{JSON: "a", Both: "b", Skipped: "s", Plain: 1}, "83 a1 6a a1 61 a1 6d a1 62 a5 506c61696e 01"},
		{"compact ints", []any{int64(1), int64(-1), int64(200), int64(-200), int64(70000), uint64(1 << 40), int32(-40000)},
			"97 01 ff cc c8 d1 ff38 ce 00011170 cf 0000010000000000 d2 ffff63c0"},
		{"floats stay floats", []any{1.0, float32(2)}, "92 cb 3ff0000000000000 ca 40000000"},
		{"nil", nil, "c0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodePayload(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(unhex(t, tt.hex), got); diff != "" {
				t.Errorf("encoding (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("options do not leak to the shared encoder pool", func(t *testing.T) {
		if _, err := encodePayload(1); err != nil {
			t.Fatal(err)
		}
		b, err := msgpack.Marshal(int64(1))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(unhex(t, "d3 0000000000000001"), b); diff != "" {
			t.Errorf("msgpack.Marshal after encodePayload (-want +got):\n%s", diff)
		}
	})
}

func BenchmarkCheckBody(b *testing.B) {
	small, err := encodePayload(samplePayload())
	if err != nil {
		b.Fatal(err)
	}
	lines := make([]sampleLine, 0, 2000)
	big := samplePayload()
	for len(small)+len(lines)*24 < 64<<10 {
		lines = append(lines, sampleLine{"SKU-12345", len(lines), int64(len(lines)) * 1000})
	}
	big.Lines = lines
	large, err := encodePayload(big)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		body []byte
	}{{"small", small}, {"64KiB", large}} {
		b.Run(bc.name+"/check", func(b *testing.B) {
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := CheckBody(bc.body, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/check+decode", func(b *testing.B) {
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				var v sampleInvoice
				if err := decodeBody(bc.body, Limits{}, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckBodyBombs measures the refusal of hostile bodies: each is
// rejected in time and memory that do not depend on what it declares.
func BenchmarkCheckBodyBombs(b *testing.B) {
	nested := bytes.Repeat([]byte{0x91}, 1_000_000) // a million nested arrays
	nested = append(nested, 0xc0)
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"array32-of-4G", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"str32-of-4G", []byte{0xdb, 0xff, 0xff, 0xff, 0xff}},
		{"map32-of-4G", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}},
		{"nested-1M", nested},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var v any
				if err := decodeBody(bc.body, Limits{MaxBytes: 2 << 20}, &v); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}

// BenchmarkNewEnvelopePayload: the bytes a job's payload costs to encode,
// small and large (B/op: a large body is encoded into its own buffer and
// kept, not copied out of a pooled one).
func BenchmarkNewEnvelopePayload(b *testing.B) {
	for _, size := range []int{200, 64 << 10, 1 << 20} {
		payload := map[string]string{"data": strings.Repeat("x", size)}
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := NewEnvelope(Job{Type: "bench", Payload: payload}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
