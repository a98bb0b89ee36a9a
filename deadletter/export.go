package deadletter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/warrenmq/warren/broker"
)

// ExportOptions configure Export.
type ExportOptions struct {
	Filter Filter
	// Limit stops after this many records written (0: no limit).
	Limit int
	// Now is the clock of the age filters and of ExportedAt (default
	// time.Now).
	Now func() time.Time
}

// ExportSummary is what an Export did.
type ExportSummary struct {
	// Total is the number of messages in the queue at the start, at most
	// 65,535, the most one run reads.
	Total    int
	Read     int
	Exported int
	// Capped is set when Total is 65,535: the queue may hold more than
	// one run reads, and the rest were not read.
	Capped bool
}

// Export writes the jobs of queue that match opts.Filter to w, one Record
// per line, without removing any: like Browse it holds what it reads and
// returns everything with one nack when it is done, in its order on a
// classic queue, so the queue is as it was. Each record is the message
// exactly as the broker delivered it, with its source queue. A job whose
// headers could not be read stops the export with an error naming it: its
// record would lose them.
//
// It reads at most 65,535 messages in one call (see ExportSummary.Capped).
// Records are written as they are read: on an error, w may hold some of
// them (write to a temporary file and rename it when Export returns nil,
// so that a file that exists is whole).
func Export(ctx context.Context, conn *broker.Conn, queue string, w io.Writer, opts ExportOptions) (s ExportSummary, retErr error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	h, err := hold(ctx, conn, queue, maxBrowse)
	if err != nil {
		return s, err
	}
	s.Total, s.Capped = h.total, h.total >= maxBrowse
	defer func() {
		if err := h.release(ctx); err != nil && retErr == nil {
			retErr = err
		}
	}()
	enc := NewEncoder(w)
	for {
		// Past the limit it reads on: what it has read goes back with one
		// nack, in order; deliveries it left unread would come back later,
		// when the channel closes, and out of order.
		dl, msg, err := h.nextRaw(ctx)
		if err != nil || dl == nil {
			return s, err
		}
		s.Read++
		e := NewEntry(dl)
		t := now()
		if (opts.Limit > 0 && s.Exported >= opts.Limit) || !opts.Filter.Match(e, t) {
			continue
		}
		if err := lostHeaders(e); err != nil {
			return s, fmt.Errorf("deadletter: export job %s: %w", e.Envelope.ID, err)
		}
		r := newRecord(queue, msg, e)
		r.ExportedAt = t
		if err := enc.Encode(r); err != nil {
			return s, fmt.Errorf("deadletter: export job %s: %w", e.Envelope.ID, err)
		}
		s.Exported++
	}
}

// PurgeRecords is Purge handing seen, before each job is deleted, its
// Record: the message exactly as it was delivered, as Export writes it,
// with ExportedAt the time it is handed over, so that a job can be kept
// as evidence. A job seen refuses (returns an error for) is not deleted,
// and the purge stops there; so is a job whose headers could not be read,
// whose record would lose them.
func PurgeRecords(ctx context.Context, conn *broker.Conn, queue string, f Filter, seen func(Record) error) (deleted, kept int, retErr error) {
	var fn func(Entry, broker.Message) error
	if seen != nil {
		fn = func(e Entry, msg broker.Message) error {
			if err := lostHeaders(e); err != nil {
				return err
			}
			r := newRecord(queue, msg, e)
			r.ExportedAt = time.Now()
			return seen(r)
		}
	}
	return purge(ctx, conn, queue, f, fn)
}

// Importing.

// ImportOptions configure Import.
type ImportOptions struct {
	// To is where every message goes. The zero Target sends each to the
	// queue its record names, through the default exchange.
	To Target
	// DryRun reads and checks every record, and publishes nothing (the
	// Sender may be nil).
	DryRun bool
}

// ImportFailure is a record that was read and could not be published.
type ImportFailure struct {
	Line   int
	Record Record
	Err    error
}

// ImportSummary is what an Import did.
type ImportSummary struct {
	// Lines is the number of the last line read.
	Lines int
	// Imported counts the messages confirmed by the broker (in a dry run,
	// the records that would be published).
	Imported int
	// Failed are the records not published, in file order.
	Failed []ImportFailure
}

// Import publishes the message of every record r holds, as exported
// (Record.Message), each mandatory and confirmed before the next (so
// they keep their order), to opts.To or the queue each record names. The
// broker's own headers are not published again (broker.BrokerHeader): a
// job RabbitMQ dead-lettered itself has its x-death history written as
// warren's failure headers instead, so its class, error, times and origin
// stay what they were. A message the broker does not take (no such queue, a nack) is an
// ImportFailure, and the import goes on. A line that is not a record stops
// it: the error is a *LineError naming the line, and the summary says
// what was imported before it. Nothing after that line is read.
//
// Importing twice publishes twice: a job's id is kept, so handlers that
// de-duplicate on it run it once.
func Import(ctx context.Context, pub *broker.Sender, r io.Reader, opts ImportOptions) (ImportSummary, error) {
	var s ImportSummary
	dec := NewDecoder(r)
	for {
		if err := ctx.Err(); err != nil {
			return s, fmt.Errorf("deadletter: import stopped after line %d: %w", s.Lines, err)
		}
		rec, err := dec.Decode()
		if errors.Is(err, io.EOF) {
			return s, nil
		}
		if err != nil {
			return s, err
		}
		s.Lines = dec.Line()
		exchange, key := opts.To.Exchange, opts.To.RoutingKey
		if !opts.To.Set {
			if rec.Queue == "" {
				s.Failed = append(s.Failed, ImportFailure{Line: s.Lines, Record: rec, Err: ErrNoQueueNamed})
				continue
			}
			exchange, key = "", rec.Queue
		}
		if opts.DryRun {
			s.Imported++
			continue
		}
		msg := rec.Message()
		msg.Headers = withWarrenHistory(msg.Headers)
		if err := pub.PublishMessage(ctx, exchange, key, msg); err != nil {
			switch u := rec.Properties.UserID; {
			case errors.Is(err, broker.ErrUnroutable) && exchange == "":
				err = &missingQueueError{queue: key, err: err}
			case u != "" && strings.Contains(err.Error(), "user_id"):
				// The broker closed the channel (406): it was not stored.
				err = fmt.Errorf("the broker takes a user_id property only from that user; import this job as %q: %w", u, err)
			}
			s.Failed = append(s.Failed, ImportFailure{Line: s.Lines, Record: rec, Err: err})
			continue
		}
		s.Imported++
	}
}
