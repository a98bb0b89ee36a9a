//go:build torture

package torture_test

import (
	"testing"

	"github.com/warrenmq/warren/worker"
)

// TestLedgerCheck: the ledger's verdict on single jobs, so that a run's
// "lost=0 unexpected=0" means what it says.
func TestLedgerCheck(t *testing.T) {
	pol := jobType{Name: "t", Queue: "q", Policy: policy{MaxAttempts: 3}}
	for _, tc := range []struct {
		name                      string
		rec                       jobRecord
		lost, unexpected, dups    int
		handled, parked, innocent int
	}{
		{name: "succeed, handled once", rec: jobRecord{Payload: payload{B: succeed}, Ran: []int{1}}, handled: 1},
		{name: "succeed, handled twice", rec: jobRecord{Payload: payload{B: succeed}, Ran: []int{1, 1}}, handled: 1, dups: 1},
		{name: "succeed, nowhere", rec: jobRecord{Payload: payload{B: succeed}}, lost: 1},
		{name: "succeed, parked with class error", rec: jobRecord{Payload: payload{B: succeed}, Parked: []parked{{Class: worker.ClassError, Attempt: 1}}}, parked: 1, unexpected: 1},
		{name: "fail twice then succeed, at attempt 3", rec: jobRecord{Payload: payload{B: failThen, K: 2}, Ran: []int{3}}, handled: 1},
		{name: "fail twice then succeed, at attempt 2", rec: jobRecord{Payload: payload{B: failThen, K: 2}, Ran: []int{2}}, handled: 1, unexpected: 1},
		{name: "always fail, parked at max", rec: jobRecord{Payload: payload{B: fail}, Parked: []parked{{Class: worker.ClassError, Attempt: 3}}}, parked: 1},
		{name: "always fail, parked early", rec: jobRecord{Payload: payload{B: fail}, Parked: []parked{{Class: worker.ClassError, Attempt: 2}}}, parked: 1, unexpected: 1},
		{name: "always fail, parked and handled", rec: jobRecord{Payload: payload{B: fail}, Ran: []int{3}, Parked: []parked{{Class: worker.ClassError, Attempt: 3}}}, handled: 1, unexpected: 1, dups: 1},
		{name: "timeout, parked as error", rec: jobRecord{Payload: payload{B: timeout}, Parked: []parked{{Class: worker.ClassError, Attempt: 3}}}, parked: 1, unexpected: 1},
		{name: "panic, parked twice", rec: jobRecord{Payload: payload{B: panics}, Parked: []parked{{Class: worker.ClassPanic, Attempt: 3}, {Class: worker.ClassPanic, Attempt: 3}}}, parked: 1, dups: 1},
		{name: "permanent, at attempt 1", rec: jobRecord{Payload: payload{B: permanent}, Parked: []parked{{Class: worker.ClassPermanent, Attempt: 1}}}, parked: 1},
		{name: "kill, at the crash limit", rec: jobRecord{Payload: payload{B: kill}, Parked: []parked{{Class: worker.ClassCrash, Attempt: 1, Crashes: worker.DefaultCrashLimit}}}, parked: 1},
		{name: "kill, below the crash limit", rec: jobRecord{Payload: payload{B: kill}, Parked: []parked{{Class: worker.ClassCrash, Attempt: 1, Crashes: 1}}}, parked: 1, unexpected: 1},
		{name: "succeed, parked with class crash", rec: jobRecord{Payload: payload{B: succeed}, Parked: []parked{{Class: worker.ClassCrash, Attempt: 1, Crashes: 3}}}, parked: 1, innocent: 1},
		{name: "always fail after a counted crash", rec: jobRecord{Payload: payload{B: fail}, Parked: []parked{{Class: worker.ClassError, Attempt: 3, Crashes: 1}}}, parked: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLedger()
			rec := tc.rec
			rec.ID, rec.Type, rec.Confirmed = "job", pol, true
			l.add(&rec)
			l.confirmed = 1
			v := l.check()
			if len(v.Lost) != tc.lost || len(v.Unexpected) != tc.unexpected || v.Duplicates != tc.dups ||
				v.Handled != tc.handled || v.Parked != tc.parked || len(v.CrashInnocent) != tc.innocent {
				t.Errorf("lost %d, unexpected %d, duplicates %d, handled %d, parked %d, crash innocent %d; want %d, %d, %d, %d, %d, %d\n%+v",
					len(v.Lost), len(v.Unexpected), v.Duplicates, v.Handled, v.Parked, len(v.CrashInnocent),
					tc.lost, tc.unexpected, tc.dups, tc.handled, tc.parked, tc.innocent, v)
			}
		})
	}
	t.Run("a job published by no one", func(t *testing.T) {
		l := newLedger()
		l.line(0, "ran 0190aaaa 1")
		if v := l.check(); len(v.Unexpected) != 1 {
			t.Errorf("unexpected = %v, want the foreign id", v.Unexpected)
		}
	})
}
