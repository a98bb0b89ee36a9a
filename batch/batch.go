package batch

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/outbox"
)

// MaxJobs is the most jobs one batch takes. Publish writes them all in the
// caller's transaction; split a larger piece of work into several batches,
// or into a batch of jobs that each handle a slice of it.
const MaxJobs = 10_000

// Option configures one Publish. Options can fail: a bad value is an
// error from Publish, and nothing is written.
type Option func(*options) error

type options struct {
	router            broker.Router
	exchange, key     string
	to                bool
	cbExchange, cbKey string
	callbackTo        bool
}

// Router routes the jobs and the callback by their types, as outbox.Router
// does; *topology.Topology is a broker.Router. Routes are resolved when
// Publish writes the batch.
func Router(r broker.Router) Option {
	return func(o *options) error {
		if r == nil {
			return errors.New("batch: Router: nil router")
		}
		o.router = r
		return nil
	}
}

// To sends the jobs to exchange with routingKey, as outbox.To does, and
// the callback too unless CallbackTo or a Router routes it. It wins over
// a Router for the jobs.
func To(exchange, routingKey string) Option {
	return func(o *options) error {
		if len(exchange) > 255 || len(routingKey) > 255 {
			return errors.New("batch: To: exchange names and routing keys are at most 255 bytes")
		}
		o.exchange, o.key, o.to = exchange, routingKey, true
		return nil
	}
}

// CallbackTo sends the callback to exchange with routingKey. It wins over
// To and a Router for the callback.
func CallbackTo(exchange, routingKey string) Option {
	return func(o *options) error {
		if len(exchange) > 255 || len(routingKey) > 255 {
			return errors.New("batch: CallbackTo: exchange names and routing keys are at most 255 bytes")
		}
		o.cbExchange, o.cbKey, o.callbackTo = exchange, routingKey, true
		return nil
	}
}

// Publish writes a batch in tx, the caller's transaction: a row for the
// batch, and each of jobs into the outbox (outbox.Publish) marked with the
// batch's id in its warren-batch header. The batch exists, and its jobs
// are published by the outbox's relay, if and only if tx commits. When the
// last of the jobs has ended — succeeded, or failed for good — the pool's
// Finisher writes callback into the outbox, once.
//
// The batch's id is the callback's job id: set callback.ID to choose it
// (at most 255 bytes, unique among batches), else Publish generates a
// UUIDv7; the callback's handler reads the batch with Get(ctx, db,
// job.ID). A callback without a payload gets the batch's Result as its
// payload (Job.Decode into a Result); a callback with a payload keeps it.
//
// Jobs without an id are given one (a UUIDv7); the ids must be distinct,
// for a batch counts each job id once. Publish refuses, with an error
// wrapping ErrInvalid, no job, more than MaxJobs, a callback without a
// type, duplicate ids, and jobs or a callback broker.NewEnvelope refuses.
// Each job and the callback need a route: To, CallbackTo or a Router
// (outbox.ErrNoRoute otherwise).
func Publish(ctx context.Context, tx pgx.Tx, jobs []broker.Job, callback broker.Job, opts ...Option) (id string, err error) {
	var o options
	for _, opt := range opts {
		if opt == nil {
			return "", errors.New("batch: Publish: nil option")
		}
		if err := opt(&o); err != nil {
			return "", err
		}
	}
	switch {
	case len(jobs) == 0:
		return "", invalid("no job; give Publish at least one")
	case len(jobs) > MaxJobs:
		return "", invalid("%d jobs; a batch takes at most %d: split the work into several batches", len(jobs), MaxJobs)
	case callback.Type == "":
		return "", invalid("the callback has no Type; set it to the job type that handles the batch's end")
	}
	if callback.ID == "" {
		if callback.ID, err = broker.NewJobID(); err != nil {
			return "", fmt.Errorf("batch: %w", err)
		}
	}
	id = callback.ID
	broker.InheritCorrelation(ctx, &callback)
	cb, err := broker.NewEnvelope(callback)
	if err != nil {
		return "", fmt.Errorf("%w: the callback: %w", ErrInvalid, err)
	}
	cbExchange, cbKey, err := o.callbackRoute(callback.Type)
	if err != nil {
		return "", err
	}
	seen := make(map[string]bool, len(jobs))
	for i := range jobs {
		if jobs[i].ID == "" {
			if jobs[i].ID, err = broker.NewJobID(); err != nil {
				return "", fmt.Errorf("batch: %w", err)
			}
		}
		switch {
		case jobs[i].ID == id:
			return "", invalid("job %d has the callback's id %q; give it another", i, id)
		case seen[jobs[i].ID]:
			return "", invalid("job %d: id %q is given to another job of the batch; a batch counts each id once, so give every job its own", i, jobs[i].ID)
		}
		seen[jobs[i].ID] = true
	}

	msg := cb.Message()
	var headers any // NULL without headers
	if msg.Headers != nil {
		b, err := msg.Headers.MarshalJSON()
		if err != nil {
			return "", fmt.Errorf("batch: the callback's headers: %w", err)
		}
		headers = string(b)
	}
	var payload []byte // NULL: the callback's payload is the Result
	if callback.Payload != nil {
		payload = msg.Body
	}
	_, err = tx.Exec(ctx, `INSERT INTO warren_batch (id, total, callback_type, callback_exchange, callback_routing_key,
		callback_priority, callback_correlation_id, callback_reply_to, callback_headers, callback_payload)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		id, len(jobs), msg.Type, cbExchange, cbKey, int16(msg.Priority), msg.CorrelationID, msg.ReplyTo, headers, payload)
	if err != nil {
		return "", fmt.Errorf("batch: write batch %s: %w", id, tableErr(err))
	}
	route := []outbox.PublishOption{outbox.Batch(id)}
	if o.to {
		route = append(route, outbox.To(o.exchange, o.key))
	} else if o.router != nil {
		route = append(route, outbox.Router(o.router))
	}
	for i, job := range jobs {
		if err := outbox.Publish(ctx, tx, job, route...); err != nil {
			return "", fmt.Errorf("batch %s: job %d: %w", id, i, err)
		}
	}
	return id, nil
}

// callbackRoute is where the callback goes: CallbackTo, else the Router's
// route for its type, else To.
func (o *options) callbackRoute(typ string) (exchange, key string, err error) {
	if o.callbackTo {
		return o.cbExchange, o.cbKey, nil
	}
	if o.router != nil {
		if ex, key, ok := o.router.Route(typ); ok {
			return ex, key, nil
		}
	}
	if o.to {
		return o.exchange, o.key, nil
	}
	return "", "", fmt.Errorf("batch: the callback %s: %w", typ, outbox.ErrNoRoute)
}
