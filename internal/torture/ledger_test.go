//go:build torture

package torture_test

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/warrenmq/warren/worker"
)

// ledger records every job of a run: what was published and confirmed,
// what the workers reported, and, at the end, what the dead-letter queues
// hold.
type ledger struct {
	mu        sync.Mutex
	jobs      map[string]*jobRecord
	order     []string // ids in publish order
	confirmed int
	pubErrs   int
	firstErr  error
	foreign   []string // reported ids the ledger does not know
	bad       []string // malformed lines
}

// jobRecord is one job: its plan, and what became of it.
type jobRecord struct {
	ID        string
	Type      jobType
	Payload   payload
	Confirmed bool
	Ran       []int    // the attempt of each handler run that returned nil
	Parked    []parked // read from the dead-letter queue at the end
	Observed  int      // "dead-lettered" outcomes the workers reported
	History   []string // every event, in order, with the slot
}

// parked is a job as its dead-letter queue holds it.
type parked struct {
	Class   string
	Attempt int
	Crashes int
}

func newLedger() *ledger { return &ledger{jobs: map[string]*jobRecord{}} }

func (l *ledger) add(rec *jobRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.jobs[rec.ID] = rec
	l.order = append(l.order, rec.ID)
}

func (l *ledger) published(id string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.pubErrs++
		if l.firstErr == nil {
			l.firstErr = err
		}
		return
	}
	l.jobs[id].Confirmed = true
	l.confirmed++
}

// line records a line a worker child reported.
func (l *ledger) line(slot int, line string) {
	e, err := parseEvent(line)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.bad = append(l.bad, fmt.Sprintf("slot %d: %v", slot, err))
		return
	}
	rec := l.jobs[e.ID]
	if rec == nil {
		l.foreign = append(l.foreign, e.ID)
		return
	}
	switch e.What {
	case "ran":
		rec.Ran = append(rec.Ran, e.Attempt)
		rec.History = append(rec.History, fmt.Sprintf("w%d ran attempt %d", slot, e.Attempt))
	case "out":
		if e.Status == worker.DeadLettered.String() {
			rec.Observed++
		}
		rec.History = append(rec.History, fmt.Sprintf("w%d %s attempt %d class %s from %s", slot, e.Status, e.Attempt, e.Class, e.Queue))
	}
}

// park records a job read from a dead-letter queue.
func (l *ledger) park(id string, p parked) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := l.jobs[id]
	if rec == nil {
		l.foreign = append(l.foreign, id)
		return false
	}
	rec.Parked = append(rec.Parked, p)
	return true
}

// settled counts the confirmed jobs the workers reported handled or
// dead-lettered, and returns them with the confirmed count.
func (l *ledger) settled() (settled, confirmed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, rec := range l.jobs {
		if rec.Confirmed && (len(rec.Ran) > 0 || rec.Observed > 0) {
			settled++
		}
	}
	return settled, l.confirmed
}

// verdict is the ledger's classification of a run.
type verdict struct {
	Handled, Parked, Duplicates int
	Lost, Unexpected            []string // ids, with what was expected and found
	CrashInnocent               []string // parked with class crash though their behaviour does not kill
	Unconfirmed                 int      // jobs whose Publish failed (the producer knew)
}

// expect returns what a job must end as: handled at attempt, or parked
// with class at attempt (and crashes, for class crash).
func expect(rec *jobRecord) (handledAt int, class string, attempt, crashes int) {
	switch rec.Payload.B {
	case succeed, slow:
		return 1, "", 0, 0
	case failThen:
		return rec.Payload.K + 1, "", 0, 0
	case fail:
		return 0, worker.ClassError, rec.Type.Policy.MaxAttempts, 0
	case timeout:
		return 0, worker.ClassTimeout, rec.Type.Policy.MaxAttempts, 0
	case panics:
		return 0, worker.ClassPanic, rec.Type.Policy.MaxAttempts, 0
	case permanent:
		return 0, worker.ClassPermanent, 1, 0
	case kill:
		return 0, worker.ClassCrash, 1, worker.DefaultCrashLimit
	}
	return 0, "?", 0, 0
}

// check classifies every confirmed job: exactly one terminal state,
// the expected one, or it is lost or unexpected.
func (l *ledger) check() verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	var v verdict
	v.Unconfirmed = l.pubErrs
	for _, id := range l.order {
		rec := l.jobs[id]
		if !rec.Confirmed {
			continue
		}
		handledAt, class, attempt, crashes := expect(rec)
		want := fmt.Sprintf("handled at attempt %d", handledAt)
		if handledAt == 0 {
			want = fmt.Sprintf("parked with class %s at attempt %d", class, attempt)
			if crashes > 0 {
				want += fmt.Sprintf(" after %d crashes", crashes)
			}
		}
		describe := func() string {
			return fmt.Sprintf("%s (%s, type %s, queue %s): want %s, found ran %v, parked %+v; history: %s",
				id, rec.Payload.B, rec.Type.Name, rec.Type.Queue, want, rec.Ran, rec.Parked, strings.Join(rec.History, "; "))
		}
		n := len(rec.Ran) + len(rec.Parked)
		if n == 0 {
			v.Lost = append(v.Lost, describe())
			continue
		}
		v.Duplicates += n - 1
		if len(rec.Ran) > 0 {
			v.Handled++
		} else {
			v.Parked++
		}
		// A job parked with class crash that does not kill its workers:
		// its worker died (a SIGKILL from outside, a lost connection)
		// while it ran alone in quarantine, the crash limit's times.
		crashParked := false
		for _, p := range rec.Parked {
			if p.Class == worker.ClassCrash && rec.Payload.B != kill {
				crashParked = true
			}
		}
		if crashParked {
			v.CrashInnocent = append(v.CrashInnocent, describe())
			continue
		}
		ok := true
		if handledAt > 0 {
			ok = len(rec.Parked) == 0
			for _, a := range rec.Ran {
				ok = ok && a == handledAt
			}
		} else {
			ok = len(rec.Ran) == 0
			for _, p := range rec.Parked {
				// Crashes are counted against any job whose worker died
				// while it ran alone; only class crash must be at the limit.
				ok = ok && p.Class == class && p.Attempt == attempt && (class != worker.ClassCrash || p.Crashes == crashes)
			}
		}
		if !ok {
			v.Unexpected = append(v.Unexpected, describe())
		}
	}
	for _, id := range l.foreign {
		v.Unexpected = append(v.Unexpected, fmt.Sprintf("%s: reported or parked, but never published by this run", id))
	}
	for _, b := range l.bad {
		v.Unexpected = append(v.Unexpected, "a worker reported "+b)
	}
	sort.Strings(v.CrashInnocent)
	return v
}
