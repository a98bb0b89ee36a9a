package deadletter

import (
	"fmt"
	"strings"
	"time"

	"github.com/warrenmq/warren/broker"
)

// Entry is one job in a dead-letter queue, as an operator needs to see it.
type Entry struct {
	// Envelope is the message as it is in the queue.
	Envelope *broker.Envelope
	// Malformed is set when the message is not a well-formed job; Envelope
	// holds what could be read.
	Malformed error
	// By is "warren" when a worker parked the job, "rabbitmq" when the
	// broker dead-lettered it (x-death), "" when neither says.
	By string
	// Class and Error say why: warren's error class and text, or RabbitMQ's
	// reason ("rejected", "expired", "maxlen", "delivery_limit").
	Class string
	Error string
	// Attempts is the number of the job's last attempt.
	Attempts int
	// FirstFailed and LastFailed are when it first and last failed.
	FirstFailed time.Time
	LastFailed  time.Time
	// Origin is where the job was consumed from when it failed.
	Origin broker.Origin
	// Deaths is RabbitMQ's x-death history, newest first.
	Deaths []broker.Death
}

// Entry classes for jobs RabbitMQ dead-lettered itself are its reasons,
// prefixed so they cannot be mistaken for warren's.
const rabbitPrefix = "rabbitmq:"

// NewEntry reads what an operator needs from a dead-lettered message.
func NewEntry(d *broker.Delivery) Entry {
	env := d.Envelope
	e := Entry{Envelope: env, Malformed: d.Err, Attempts: max(env.Attempt, 1), Deaths: broker.Deaths(env.Headers)}
	if f := env.Failure; f != nil {
		e.By = "warren"
		e.Class, e.Error = f.Class, f.Error
		e.FirstFailed, e.LastFailed = f.FirstFailedAt, f.FailedAt
		e.Origin = f.Origin
	}
	if len(e.Deaths) > 0 {
		last := e.Deaths[0]
		if e.By == "" || last.Time.After(e.LastFailed) {
			// The broker parked it, or parked it again after warren's
			// last failure (e.g. a replayed job that crashed its worker).
			e.By = "rabbitmq"
			e.Class = rabbitPrefix + last.Reason
			e.Error = fmt.Sprintf("dead-lettered by RabbitMQ (%s) from queue %q", last.Reason, last.Queue)
			e.LastFailed = last.Time
			if e.FirstFailed.IsZero() {
				e.FirstFailed = e.Deaths[len(e.Deaths)-1].Time
			}
			if e.Origin.Queue == "" {
				e.Origin = broker.Origin{Exchange: last.Exchange, Queue: last.Queue}
				if len(last.RoutingKeys) > 0 {
					e.Origin.RoutingKey = last.RoutingKeys[0]
				}
			}
		}
	}
	if e.Malformed != nil && e.Class == "" {
		e.Class, e.Error = "malformed", e.Malformed.Error()
	}
	return e
}

// FirstLine is the first line of the error, as grouping uses it: a panic's
// stack and multi-line messages fold into their first line.
func (e Entry) FirstLine() string {
	s, _, _ := strings.Cut(e.Error, "\n")
	return s
}
