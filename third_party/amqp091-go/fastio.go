// Added by warren's patch (WARREN-PATCH.md, part 4): frames read and written
// without an allocation per field.
//
// encoding/binary's Read and Write allocate a buffer on every call, and
// converting a string to []byte for io.Writer.Write allocates a copy. A
// message's frames are built in a bytes.Buffer and, once read into the
// reader's scratch buffer, parsed from a bytes.Reader: for those two types
// the helpers below read and write in place; any other reader or writer
// goes through encoding/binary as before, with the same results and errors.

package amqp091

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"unsafe"
)

// integer is what the frame codec reads and writes as fixed-size
// big-endian integers.
type integer interface {
	~uint8 | ~uint16 | ~uint32 | ~uint64 | ~int8 | ~int16 | ~int32 | ~int64
}

// putInt writes v big-endian, as binary.Write does.
func putInt[T integer](w io.Writer, v T) error {
	b, ok := w.(*bytes.Buffer)
	if !ok {
		return binary.Write(w, binary.BigEndian, v)
	}
	switch unsafe.Sizeof(v) {
	case 1:
		b.WriteByte(byte(v))
	case 2:
		b.Write(binary.BigEndian.AppendUint16(b.AvailableBuffer(), uint16(v)))
	case 4:
		b.Write(binary.BigEndian.AppendUint32(b.AvailableBuffer(), uint32(v)))
	default:
		b.Write(binary.BigEndian.AppendUint64(b.AvailableBuffer(), uint64(v)))
	}
	return nil
}

// getInt reads *p big-endian, as binary.Read does: io.EOF when nothing was
// left to read, io.ErrUnexpectedEOF when part of it was.
func getInt[T integer](r io.Reader, p *T) error {
	size := int(unsafe.Sizeof(*p))
	var a [8]byte
	var n int
	switch br := r.(type) {
	case *bytes.Reader:
		n, _ = br.Read(a[:size])
	case *bytes.Buffer:
		n, _ = br.Read(a[:size])
	default:
		return binary.Read(r, binary.BigEndian, p)
	}
	switch {
	case n == 0:
		return io.EOF
	case n < size:
		return io.ErrUnexpectedEOF
	}
	switch size {
	case 1:
		*p = T(a[0])
	case 2:
		*p = T(binary.BigEndian.Uint16(a[:2]))
	case 4:
		*p = T(binary.BigEndian.Uint32(a[:4]))
	default:
		*p = T(binary.BigEndian.Uint64(a[:8]))
	}
	return nil
}

// writeString writes s, without converting it to []byte where w can take
// a string.
func writeString(w io.Writer, s string) error {
	if sw, ok := w.(io.StringWriter); ok {
		_, err := sw.WriteString(s)
		return err
	}
	_, err := w.Write([]byte(s))
	return err
}

// readString reads a string of n bytes, in one allocation (the string)
// from a bytes.Reader or bytes.Buffer.
func readString(r io.Reader, n int64) (string, error) {
	var rest []byte
	switch br := r.(type) {
	case *bytes.Buffer:
		rest = br.Bytes()
		if int64(len(rest)) >= n {
			return string(br.Next(int(n))), nil
		}
	default:
		b, err := readBytes(r, n)
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
	// Short: consume what there is, and fail as io.ReadFull does.
	_, _ = io.Copy(io.Discard, r)
	if len(rest) == 0 && n > 0 {
		return "", io.EOF
	}
	return "", io.ErrUnexpectedEOF
}

// payloadReader returns a buffer holding the next size bytes of the
// frame: the reader's own, reused for every frame (nothing may keep a
// slice of it; the strings and byte arrays read from it are copies).
func (r *reader) payloadReader(size uint32) (*bytes.Buffer, error) {
	r.payload.Reset()
	if int64(size) > readAllocChunk {
		// A fabricated size is not allocated ahead of the data:
		// readBytes grows as the bytes arrive.
		b, err := readBytes(r.r, int64(size))
		if err != nil {
			return nil, err
		}
		r.payload.Write(b)
		return &r.payload, nil
	}
	r.payload.Grow(int(size))
	b := r.payload.AvailableBuffer()[:size]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return nil, err
	}
	r.payload.Write(b) // in place: b is the buffer's own free space
	return &r.payload, nil
}

// writeFrameTo writes a frame's header, payload and end to a buffered
// writer without allocating.
func writeFrameTo(w *bufio.Writer, typ uint8, channel uint16, payload []byte) error {
	var h [7]byte
	h[0] = typ
	binary.BigEndian.PutUint16(h[1:3], channel)
	binary.BigEndian.PutUint32(h[3:7], uint32(len(payload)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	if _, err := w.Write(payload); err != nil {
		return err
	}
	return w.WriteByte(frameEnd)
}
