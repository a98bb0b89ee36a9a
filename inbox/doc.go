// Package inbox makes a job's effects happen once although its delivery is
// at least once: middleware that records each job id as processed, per
// consumer, in a Store, and skips a job recorded before.
//
// Where the store is the service's own database (package pginbox), the
// record is written in the same transaction as the handler's own writes:
// the handler reads the transaction from its ctx (pginbox.Tx), and the
// effects and the record commit together or not at all. A worker that dies
// between that commit and its ack leaves the job to be delivered again,
// and the inbox skips it: a duplicate delivery, never a second effect.
//
// Where the store is separate (package redisinbox, Redis), the record
// cannot share a transaction with the handler's writes: a lease keeps a
// second worker off the job while it runs, and the job is marked done
// after the handler returns. That narrows the window, it does not close
// it: docs/exactly-once.md says what each store guarantees.
//
// Memory is a Store for tests.
package inbox
