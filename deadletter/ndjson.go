package deadletter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Encoder writes records as newline-delimited JSON, one record per line.
type Encoder struct {
	w io.Writer
}

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: w} }

// Encode writes r and a newline with one Write call, so a reader never
// sees a part of a line from a writer that failed (unless w itself writes
// a part). Nothing is written when r cannot be encoded.
func (e *Encoder) Encode(r Record) error {
	b, err := r.MarshalJSON()
	if err != nil {
		return err
	}
	if _, err := e.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("deadletter: write record of message %q: %w", r.Properties.MessageID, err)
	}
	return nil
}

// Decoder reads records written by an Encoder, one per line. Blank lines
// are skipped; the last line need not end with a newline.
type Decoder struct {
	r    *bufio.Reader
	line int
	err  error
}

// NewDecoder returns a Decoder reading from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 64<<10)}
}

// Decode returns the next record; io.EOF after the last one. Any other
// error is a *LineError naming the line (or an error reading r), and is
// returned again by every later call: a Decoder does not skip a line it
// cannot read.
func (d *Decoder) Decode() (Record, error) {
	if d.err != nil {
		return Record{}, d.err
	}
	for {
		line, err := d.readLine()
		if err != nil {
			d.err = err
			return Record{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r Record
		if err := r.UnmarshalJSON(line); err != nil {
			d.err = &LineError{Line: d.line, Err: err}
			return Record{}, d.err
		}
		return r, nil
	}
}

// Line is the number of the line last read: after a successful Decode,
// the line of the record it returned.
func (d *Decoder) Line() int { return d.line }

// readLine returns the next line without its newline, io.EOF after the
// last one.
func (d *Decoder) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := d.r.ReadSlice('\n')
		if len(line)+len(chunk) > MaxRecordBytes+1 {
			d.line++
			return nil, &LineError{Line: d.line, Err: fmt.Errorf("longer than %d bytes; is this an export file?", MaxRecordBytes)}
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			d.line++
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(line) == 0 {
				return nil, io.EOF
			}
			d.line++
			return line, nil
		default:
			return nil, fmt.Errorf("deadletter: read after line %d: %w", d.line, err)
		}
	}
}

// Reading from the broker.
