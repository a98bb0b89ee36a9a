// Added by warren's patch (WARREN-PATCH.md, part 4): the in-place paths of
// fastio.go read what encoding/binary's read.

package amqp091

import (
	"bytes"
	"io"
	"reflect"
	"testing"
	"testing/iotest"
)

// FuzzFastPathsReadAlike reads the same bytes as a table and as a content
// header frame through a bytes.Buffer (the in-place paths) and through a
// reader of one byte at a time (encoding/binary's): both succeed with the
// same values, or both fail.
func FuzzFastPathsReadAlike(f *testing.F) {
	for _, seed := range fuzzSeedFields(f) {
		if len(seed) > 0 && seed[0] == 'F' {
			f.Add(seed[1:])
		}
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 9, 1, 'k', 'l', 0, 0, 0, 0, 0, 0, 0, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, fastErr := readTable(bytes.NewBuffer(bytes.Clone(data)))
		slow, slowErr := readTable(iotest.OneByteReader(bytes.NewReader(data)))
		if (fastErr == nil) != (slowErr == nil) {
			t.Fatalf("table: in place %v, byte by byte %v", fastErr, slowErr)
		}
		if fastErr == nil && !reflect.DeepEqual(fast, slow) {
			t.Fatalf("table: in place %#v, byte by byte %#v", fast, slow)
		}
		var ints [4]uint64
		fb, sb := bytes.NewBuffer(bytes.Clone(data)), iotest.OneByteReader(bytes.NewReader(data))
		var a8, b8 uint8
		var a16, b16 int16
		var a32, b32 uint32
		var a64, b64 int64
		for _, read := range []func() (error, error){
			func() (error, error) { return getInt(fb, &a8), getInt(sb, &b8) },
			func() (error, error) { return getInt(fb, &a16), getInt(sb, &b16) },
			func() (error, error) { return getInt(fb, &a32), getInt(sb, &b32) },
			func() (error, error) { return getInt(fb, &a64), getInt(sb, &b64) },
		} {
			fe, se := read()
			if fe != se && !(fe == io.ErrUnexpectedEOF && se == io.ErrUnexpectedEOF) {
				t.Fatalf("getInt: in place %v, byte by byte %v", fe, se)
			}
			if fe != nil {
				return
			}
		}
		ints = [4]uint64{uint64(a8), uint64(a16), uint64(a32), uint64(a64)}
		if ints != [4]uint64{uint64(b8), uint64(b16), uint64(b32), uint64(b64)} {
			t.Fatalf("getInt: in place %v, byte by byte %v %v %v %v", ints, b8, b16, b32, b64)
		}
	})
}

// TestPutIntWritesAsBinaryWrite writes integers of every size into a
// bytes.Buffer (in place) and into a plain writer (encoding/binary).
func TestPutIntWritesAsBinaryWrite(t *testing.T) {
	var fast bytes.Buffer
	var slow struct{ bytes.Buffer } // not a *bytes.Buffer: the encoding/binary path
	for _, w := range []io.Writer{&fast, &slow} {
		for _, err := range []error{putInt(w, uint8(0xab)), putInt(w, int16(-2)), putInt(w, uint32(0xdeadbeef)), putInt(w, int64(-1)<<40)} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if !bytes.Equal(fast.Bytes(), slow.Bytes()) {
		t.Errorf("in place % x, encoding/binary % x", fast.Bytes(), slow.Bytes())
	}
}
