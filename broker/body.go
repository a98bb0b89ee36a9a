package broker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// Body limits. See Limits.
const (
	// DefaultMaxBytes is the largest body accepted when Limits.MaxBytes is
	// zero: 1 MiB.
	DefaultMaxBytes = 1 << 20
	// DefaultMaxDepth is the deepest nesting accepted when Limits.MaxDepth
	// is zero.
	DefaultMaxDepth = 64
	// MaxDepthLimit caps Limits.MaxDepth: the decoder recurses once per
	// level, and deeper data could exhaust its stack, which kills the
	// process (recover cannot catch it).
	MaxDepthLimit = 10000
)

// Limits bound the bodies CheckBody accepts, and so the bodies
// Envelope.DecodeWith hands to the MessagePack decoder. The zero value
// selects the defaults.
type Limits struct {
	// MaxBytes is the largest body accepted, in bytes. Zero or negative
	// means DefaultMaxBytes (1 MiB).
	MaxBytes int
	// MaxDepth is the deepest nesting of arrays and maps accepted: a
	// scalar body has depth 0, a map of scalars depth 1. Zero or negative
	// means DefaultMaxDepth (64); values above MaxDepthLimit are lowered to
	// it.
	MaxDepth int
}

func (l Limits) maxBytes() int {
	if l.MaxBytes <= 0 {
		return DefaultMaxBytes
	}
	return l.MaxBytes
}

func (l Limits) maxDepth() int {
	switch {
	case l.MaxDepth <= 0:
		return DefaultMaxDepth
	case l.MaxDepth > MaxDepthLimit:
		return MaxDepthLimit
	}
	return l.MaxDepth
}

// CheckBody reports whether b is exactly one well-formed MessagePack value
// within lim, without decoding it: every format byte is valid, every
// declared length (of a str, bin or ext, in bytes; of an array or map, in
// elements, each needing at least one byte) fits in the bytes that remain,
// nesting stays within lim.MaxDepth, and nothing follows the value. The
// only extension type accepted is the timestamp (-1), with 4, 8 or 12 data
// bytes holding fewer than 1e9 nanoseconds.
//
// It exists because the MessagePack decoder trusts declared lengths (the
// 5-byte body dd ffffffff makes it allocate gigabytes) and recurses without
// a depth limit (a million nested arrays overflow the stack, which recover
// cannot catch). Other extension types are refused because the decoder may
// read their data as MessagePack, which CheckBody does not validate.
//
// CheckBody walks the bytes once, iteratively, and does not allocate unless
// lim.MaxDepth exceeds DefaultMaxDepth or the body is rejected. The error
// wraps ErrBodyTooLarge or ErrBadBody and gives the offset of the problem.
//
// Envelope.Decode calls CheckBody; call it yourself only to decode a body
// some other way.
func CheckBody(b []byte, lim Limits) error {
	return checkBody(b, lim, nil)
}

// checkBody is CheckBody, appending to *timestamps (when not nil) the
// offset of the first data byte of every timestamp extension, in order.
func checkBody(b []byte, lim Limits, timestamps *[]int) error {
	maxBytes, maxDepth := lim.maxBytes(), lim.maxDepth()
	if len(b) > maxBytes {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrBodyTooLarge, len(b), maxBytes)
	}
	if len(b) == 0 {
		return fmt.Errorf("%w: the body is empty; it must hold one MessagePack value (c0 for nil)", ErrBadBody)
	}

	// left[d] counts the values still expected at nesting depth d; left[0]
	// is the single top-level value. Every value takes at least one byte,
	// so no count exceeds len(b) and the loop runs at most len(b) times.
	var small [DefaultMaxDepth + 1]int
	left := small[:1]
	left[0] = 1
	pos, n := 0, len(b)
	for {
		d := len(left) - 1
		for d > 0 && left[d] == 0 {
			d--
		}
		left = left[:d+1]
		if left[d] == 0 {
			break // d == 0: the top-level value is complete
		}
		if pos >= n {
			return fmt.Errorf("%w: offset %d: the body ends inside an array or map (%d more element(s) declared at depth %d)", ErrBadBody, pos, left[d], d)
		}
		left[d]--
		c := b[pos]
		rest := uint64(n - pos - 1) // bytes after the format byte

		// A value is a head (format byte plus hdr bytes) followed by data
		// bytes or, for arrays and maps, by elems values.
		var hdr, data uint64
		elems := uint64(0)
		container := false
		switch {
		case c <= 0x7f || c >= 0xe0: // positive, negative fixint
		case c <= 0x8f: // fixmap
			elems, container = 2*uint64(c&0x0f), true
		case c <= 0x9f: // fixarray
			elems, container = uint64(c&0x0f), true
		case c <= 0xbf: // fixstr
			data = uint64(c & 0x1f)
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
			case 0xc1:
				return fmt.Errorf("%w: offset %d: byte c1 is not a MessagePack format", ErrBadBody, pos)
			case 0xcc, 0xd0: // uint8, int8
				data = 1
			case 0xcd, 0xd1: // uint16, int16
				data = 2
			case 0xca, 0xce, 0xd2: // float32, uint32, int32
				data = 4
			case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
				data = 8
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type byte + data
				hdr, data = 1, 1<<(c-0xd4)
			case 0xc4, 0xd9: // bin8, str8
				hdr = 1
			case 0xc5, 0xda: // bin16, str16
				hdr = 2
			case 0xc6, 0xdb: // bin32, str32
				hdr = 4
			case 0xc7: // ext8: length, type byte
				hdr = 2
			case 0xc8: // ext16
				hdr = 3
			case 0xc9: // ext32
				hdr = 5
			case 0xdc, 0xde: // array16, map16
				hdr, container = 2, true
			case 0xdd, 0xdf: // array32, map32
				hdr, container = 4, true
			}
			if hdr > rest {
				return fmt.Errorf("%w: offset %d: %s needs %d header byte(s) but only %d remain", ErrBadBody, pos, formatName(c), hdr, rest)
			}
			// Read the declared length, where the head holds one.
			var length uint64
			switch c {
			case 0xc4, 0xd9, 0xc7:
				length = uint64(b[pos+1])
			case 0xc5, 0xda, 0xc8, 0xdc, 0xde:
				length = uint64(binary.BigEndian.Uint16(b[pos+1:]))
			case 0xc6, 0xdb, 0xc9, 0xdd, 0xdf:
				length = uint64(binary.BigEndian.Uint32(b[pos+1:]))
			}
			switch c {
			case 0xc4, 0xc5, 0xc6, 0xd9, 0xda, 0xdb, 0xc7, 0xc8, 0xc9:
				data = length
			case 0xdc, 0xdd:
				elems = length
			case 0xde, 0xdf:
				elems = 2 * length
			}
		}
		rest -= hdr
		if container {
			if elems > rest {
				return fmt.Errorf("%w: offset %d: %s declares %d element(s) but only %d byte(s) remain", ErrBadBody, pos, formatName(c), elems, rest)
			}
			if d+1 > maxDepth {
				return fmt.Errorf("%w: offset %d: arrays and maps nest deeper than %d (Limits.MaxDepth)", ErrBadBody, pos, maxDepth)
			}
			pos += 1 + int(hdr)
			if elems > 0 {
				left = append(left, int(elems))
			}
			continue
		}
		if data > rest {
			return fmt.Errorf("%w: offset %d: %s declares %d byte(s) but only %d remain", ErrBadBody, pos, formatName(c), data, rest)
		}
		if (c >= 0xd4 && c <= 0xd8) || (c >= 0xc7 && c <= 0xc9) {
			if typ := int8(b[pos+int(hdr)]); typ != -1 {
				return fmt.Errorf("%w: offset %d: extension type %d; the only extension allowed is the timestamp (-1)", ErrBadBody, pos, typ)
			}
			start := pos + 1 + int(hdr)
			if err := checkTimestamp(b[start:start+int(data)], pos); err != nil {
				return err
			}
			if timestamps != nil {
				*timestamps = append(*timestamps, start)
			}
		}
		pos += 1 + int(hdr+data)
	}
	if pos != n {
		return fmt.Errorf("%w: offset %d: %d byte(s) follow the body's value; a body holds exactly one value", ErrBadBody, pos, n-pos)
	}
	return nil
}

// checkTimestamp validates the data of a timestamp extension (type -1):
// 4, 8 or 12 bytes, nanoseconds below one second. off is the offset of the
// extension's format byte.
func checkTimestamp(data []byte, off int) error {
	var nsec uint64
	switch len(data) {
	case 4:
	case 8:
		nsec = binary.BigEndian.Uint64(data) >> 34
	case 12:
		nsec = uint64(binary.BigEndian.Uint32(data))
	default:
		return fmt.Errorf("%w: offset %d: timestamp extension (-1) with %d data bytes; it must have 4, 8 or 12", ErrBadBody, off, len(data))
	}
	if nsec > 999_999_999 {
		return fmt.Errorf("%w: offset %d: timestamp extension (-1) with %d nanoseconds; it must be below 1e9", ErrBadBody, off, nsec)
	}
	return nil
}

// formatNames names the format bytes from c4 to df; formatName the rest.
var formatNames = [...]string{
	"bin8", "bin16", "bin32", "ext8", "ext16", "ext32", "float32", "float64",
	"uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
	"fixext1", "fixext2", "fixext4", "fixext8", "fixext16", "str8", "str16", "str32",
	"array16", "array32", "map16", "map32",
}

// formatName names a format byte in error messages, e.g. "array32 (dd)".
func formatName(c byte) string {
	var name string
	switch {
	case c >= 0xc4 && c <= 0xdf:
		name = formatNames[c-0xc4]
	case c >= 0x80 && c <= 0x8f:
		name = "fixmap"
	case c >= 0x90 && c <= 0x9f:
		name = "fixarray"
	case c >= 0xa0 && c <= 0xbf:
		name = "fixstr"
	default:
		name = "format"
	}
	return fmt.Sprintf("%s (%02x)", name, c)
}

// Decode checks the body with the default Limits and decodes it into v,
// which must be a non-nil pointer. Struct fields match map keys by their
// msgpack tag, else their json tag, else their name; keys without a field
// are ignored, so producers may add fields. Decoded into an interface{},
// maps become map[string]any, arrays []any, str string, bin []byte,
// timestamps time.Time and integers the Go type of their MessagePack format
// (int8 … int64, uint8 … uint64).
//
// A body that is not valid MessagePack, exceeds the limits or does not fit
// v gives an error wrapping ErrBadBody or ErrBodyTooLarge: the job cannot
// succeed and should be dead-lettered.
func (e *Envelope) Decode(v any) error {
	return e.DecodeWith(v, Limits{})
}

// DecodeWith is Decode with the given limits.
func (e *Envelope) DecodeWith(v any, lim Limits) error {
	if rv := reflect.ValueOf(v); rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("broker: Decode needs a non-nil pointer, not %T", v)
	}
	return decodeBody(e.Body, lim, v)
}

// bodyDecoder is a pooled decoder reading from a pooled guardedReader, so
// a decode allocates only what it decodes.
type bodyDecoder struct {
	r   guardedReader
	dec *msgpack.Decoder
}

var bodyDecoders = sync.Pool{New: func() any {
	return &bodyDecoder{dec: msgpack.NewDecoder(nil)}
}}

// guardedReader is the body as the decoder reads it. It refuses to read
// the first data byte of a timestamp as a format byte: where it expects a
// map, the decoder skips an extension's header and reads its data as a map
// (msgpack v5.4.1, Decoder.DecodeMapLen), so a timestamp sent where a map
// belongs would make it read bytes CheckBody never validated (a 4-byte
// map32 count, then anything). Extension data is otherwise read with Read,
// never ReadByte.
type guardedReader struct {
	bytes.Reader
	size       int
	timestamps []int // offsets of timestamp data, ascending
}

func (g *guardedReader) reset(b []byte) {
	g.Reader.Reset(b)
	g.size = len(b)
	g.timestamps = g.timestamps[:0]
}

func (g *guardedReader) ReadByte() (byte, error) {
	if len(g.timestamps) > 0 {
		if _, found := slices.BinarySearch(g.timestamps, g.size-g.Reader.Len()); found {
			return 0, errTimestampAsValue
		}
	}
	return g.Reader.ReadByte()
}

var errTimestampAsValue = errors.New("a timestamp where the target type expects a map")

func decodeStringMap(d *msgpack.Decoder) (any, error) { return d.DecodeMap() }

// decodeBody checks b and decodes it into v. A panic in the decoder is
// returned as an error.
func decodeBody(b []byte, lim Limits, v any) (err error) {
	bd := bodyDecoders.Get().(*bodyDecoder)
	defer func() {
		bd.r.reset(nil)
		bd.dec.Reset(nil)
		bodyDecoders.Put(bd)
		// CheckBody rules out what is known to crash the decoder; a panic
		// left (e.g. in a type's own DecodeMsgpack) must not kill a worker.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: the decoder panicked: %v", ErrBadBody, r)
		}
	}()
	return bd.decode(b, lim, v)
}

// decode is decodeBody without the recover, for the fuzz tests.
func (bd *bodyDecoder) decode(b []byte, lim Limits, v any) error {
	bd.r.reset(b)
	if err := checkBody(b, lim, &bd.r.timestamps); err != nil {
		return err
	}
	bd.dec.Reset(&bd.r) // also clears the options set below
	bd.dec.SetCustomStructTag("json")
	bd.dec.SetMapDecoder(decodeStringMap)
	if err := bd.dec.Decode(v); err != nil {
		return fmt.Errorf("%w: decode into %T: %w", ErrBadBody, v, err)
	}
	return nil
}

// encodeBuffers holds scratch buffers for encoding payloads; the encoded
// body is copied out at its exact size.
var encodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer keeps one huge payload from pinning its buffer forever.
const maxPooledBuffer = 64 << 10

// encodePayload encodes v as a body: struct fields named by their msgpack
// tag, else their json tag; integers in their smallest format.
func encodePayload(v any) ([]byte, error) {
	buf := encodeBuffers.Get().(*bytes.Buffer)
	if err := encodeInto(buf, v); err != nil {
		putEncodeBuffer(buf)
		return nil, err
	}
	if buf.Cap() > maxPooledBuffer {
		// Too large to go back to the pool: the body is the buffer's own
		// bytes, not a copy. With the copy, jobs of 1 MiB cost 11-12% more
		// client CPU than a hand-written client's (msgpack.Marshal, which
		// does not copy); docs/benchmarks.md.
		return buf.Bytes(), nil
	}
	defer encodeBuffers.Put(buf)
	return bytes.Clone(buf.Bytes()), nil
}

// encodeInto encodes v into buf, after resetting it.
func encodeInto(buf *bytes.Buffer, v any) error {
	buf.Reset()
	enc := msgpack.GetEncoder()
	enc.Reset(buf) // also clears options a previous user of the pool set
	enc.SetCustomStructTag("json")
	enc.UseCompactInts(true)
	err := enc.Encode(v)
	msgpack.PutEncoder(enc)
	return err
}

// putEncodeBuffer returns buf to encodeBuffers, unless it grew too large.
func putEncodeBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBuffer {
		encodeBuffers.Put(buf)
	}
}

// EncodePayload encodes v as a job's payload is encoded (MessagePack,
// struct fields named by their msgpack tag, else their json tag): for
// payloads carried elsewhere than a body, such as a chain's later steps
// (Slip). The error wraps ErrInvalidJob.
func EncodePayload(v any) ([]byte, error) {
	b, err := encodePayload(v)
	if err != nil {
		return nil, fmt.Errorf("%w: the payload cannot be encoded: %w", ErrInvalidJob, err)
	}
	return b, nil
}
