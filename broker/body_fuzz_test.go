package broker

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// fuzzSeeds returns the bodies of the wire vectors and the bombs, the
// bombs' repetitions shortened so the fuzzer can work on them.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	var seeds [][]byte
	files, err := filepath.Glob(filepath.Join(wireDir, "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var v struct {
			Body string `json:"body"`
		}
		if err := json.Unmarshal(data, &v); err != nil {
			f.Fatal(err)
		}
		b, err := hex.DecodeString(v.Body)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	data, err := os.ReadFile(filepath.Join(wireDir, "bombs", "bodies.json"))
	if err != nil {
		f.Fatal(err)
	}
	var bombs []struct {
		Hex    string `json:"hex"`
		Repeat string `json:"repeat"`
		Count  int    `json:"count"`
		Suffix string `json:"suffix"`
	}
	if err := json.Unmarshal(data, &bombs); err != nil {
		f.Fatal(err)
	}
	for _, bb := range bombs {
		h, _ := hex.DecodeString(bb.Hex)
		r, _ := hex.DecodeString(bb.Repeat)
		s, _ := hex.DecodeString(bb.Suffix)
		seeds = append(seeds, append(append(h, bytes.Repeat(r, min(bb.Count, 100))...), s...))
	}
	sample, err := encodePayload(samplePayload())
	if err != nil {
		f.Fatal(err)
	}
	return append(seeds, sample, nested(64), nested(65))
}

// fuzzTarget has fields of many kinds, so typed decoding is fuzzed too.
type fuzzTarget struct {
	I   int               `json:"i"`
	U   uint8             `json:"u"`
	F   float32           `json:"f"`
	S   string            `json:"s"`
	B   []byte            `json:"b"`
	T   time.Time         `json:"t"`
	P   *fuzzTarget       `json:"p"`
	A   []fuzzTarget      `json:"a"`
	M   map[string]int    `json:"m"`
	MA  map[string]any    `json:"ma"`
	Any any               `json:"any"`
	Arr [2]int16          `json:"arr"`
	MS  map[string]string `json:"ms"`
}

// FuzzCheckBody: CheckBody never panics; a body it accepts is one value
// the decoder can skip exactly, and decoding it into any neither panics
// nor fails to terminate (the decoder is called without the recover Decode
// has). Decoding into a struct, maps and slices terminates without
// crashing the process.
func FuzzCheckBody(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := CheckBody(b, Limits{MaxDepth: 5}); err == nil {
			if err := CheckBody(b, Limits{}); err != nil {
				t.Fatalf("accepted at depth 5, rejected at the default depth: %v", err)
			}
		}
		err := CheckBody(b, Limits{})
		if err != nil {
			if !errors.Is(err, ErrBadBody) && !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("CheckBody error wraps no sentinel: %v", err)
			}
			return
		}
		r := bytes.NewReader(b)
		dec := msgpack.NewDecoder(r)
		if err := dec.Skip(); err != nil {
			t.Fatalf("CheckBody accepted %x, but the decoder cannot skip it: %v", b, err)
		}
		if r.Len() != 0 {
			t.Fatalf("CheckBody accepted %x, but the decoder's value ends %d bytes early", b, r.Len())
		}
		// Into any, the decoder must not even panic.
		bd := &bodyDecoder{dec: msgpack.NewDecoder(nil)}
		if err := bd.decode(b, Limits{}, new(any)); err != nil && !errors.Is(err, ErrBadBody) {
			t.Fatalf("decode into any: %v, want ErrBadBody", err)
		}
		// Typed targets reach panics of msgpack v5.4.1 (nil into a
		// time.Time field: reflect.Value.IsNil on a struct), which
		// decodeBody recovers; what matters is that the process survives
		// and the call returns.
		for _, target := range []any{new(fuzzTarget), new(map[string]any), new([]any), new(map[string]int), new([]map[string]any)} {
			if err := decodeBody(b, Limits{}, target); err != nil && !errors.Is(err, ErrBadBody) {
				t.Fatalf("decode into %T: %v, want ErrBadBody", target, err)
			}
		}
	})
}
