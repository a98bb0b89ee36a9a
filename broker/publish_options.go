package broker

import (
	"fmt"
	"maps"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/warrenmq/warren/topology"
)

// PublishOption adjusts one Publish, PublishBatch or Call: where the job
// goes (To, ToQueue), when it reaches its queues (At, In) and how long it
// may wait there (Expire). What a job is (its id, headers, priority, …) is
// in the Job itself. An option that cannot be honoured is an error wrapping ErrInvalidOption, returned
// before anything is published.
type PublishOption func(*publishOptions) error

type publishOptions struct {
	target publishTarget
	// delayed is set by At or In: the job goes through the delay cascade,
	// reaching its queues at, or after in.
	delayed bool
	at      time.Time // zero unless At
	in      time.Duration
	// expire is the per-message TTL set by Expire; 0 without one.
	expire time.Duration
	// uniqueKey is the key UniqueKey sets; "" without one.
	uniqueKey string
	// slip is the routing slip RoutingSlip sets; nil without one.
	slip *Slip
	// batch is the batch BatchMember sets; "" without one.
	batch string
	// ce is set by AsCloudEvent, or from WithCloudEvents; nil without.
	ce *cloudEventMark
}

// publishTarget is where a message goes: the route of its job type
// unless explicit.
type publishTarget struct {
	exchange, key string
	explicit      bool
}

// To publishes to exchange with routing key, instead of the job type's route.
// The empty exchange is RabbitMQ's default exchange, which routes by queue
// name. A scheduled job (At, In) goes to queues, not through an exchange:
// with them, To must name the default exchange, and its key is the queue.
func To(exchange, routingKey string) PublishOption {
	return func(o *publishOptions) error {
		o.target = publishTarget{exchange: exchange, key: routingKey, explicit: true}
		return nil
	}
}

// ToQueue publishes to the work queue named queue: through the default
// exchange ("") with queue as the routing key, or, for a scheduled job (At,
// In), so that it reaches that queue alone, whatever its type's route says.
// The name must not be empty.
func ToQueue(queue string) PublishOption {
	return func(o *publishOptions) error {
		if queue == "" {
			return fmt.Errorf("%w: ToQueue: the queue name is empty; name a work queue", ErrInvalidOption)
		}
		o.target = publishTarget{key: queue, explicit: true}
		return nil
	}
}

// At schedules the job: it reaches its work queues at t, to the second
// (rounded up), held meanwhile by the broker in the delay cascade of the
// topology (see topology.DelayRoute), not by a timer in this process. A
// time already past, by a clock's skew or a late call, delivers it now; a
// zero time, or one further in the past than topology.MaxDelay, is taken
// for a mistake and refused. At and In exclude each other.
func At(t time.Time) PublishOption {
	return func(o *publishOptions) error {
		if o.delayed {
			return fmt.Errorf("%w: At and In both given; schedule the job with one of them", ErrInvalidOption)
		}
		if t.IsZero() {
			return fmt.Errorf("%w: At: the time is zero; give the time the job is due", ErrInvalidOption)
		}
		if ago := time.Since(t); ago > topology.MaxDelay {
			return fmt.Errorf("%w: At(%s) is %s in the past; give the time the job is due", ErrInvalidOption,
				t.Format(time.RFC3339), ago.Round(time.Second))
		}
		o.delayed, o.at = true, t
		return nil
	}
}

// In schedules the job to reach its work queues after d, rounded up to
// whole seconds, held meanwhile by the broker as At says. In(0) delivers it
// now, through the delay cascade; a negative d is refused. At and In
// exclude each other.
func In(d time.Duration) PublishOption {
	return func(o *publishOptions) error {
		if o.delayed {
			return fmt.Errorf("%w: At and In both given; schedule the job with one of them", ErrInvalidOption)
		}
		if d < 0 {
			return fmt.Errorf("%w: In(%s): the delay is negative; give zero or more", ErrInvalidOption, d)
		}
		o.delayed, o.in = true, d
		return nil
	}
}

// Expire gives the job a time to live: the broker drops it (or moves it
// to the queue's dead-letter exchange, when the queue has one) if it is
// still waiting in its queue after d, rounded down to whole milliseconds
// (AMQP's per-message expiration). d must be at least a millisecond.
//
// A scheduled job (At, In) cannot expire: the delay cascade holds it by
// expiring it from one delay queue into the next, and RabbitMQ removes a
// message's expiration when it dead-letters it, so the TTL would cut the
// delay short and then be lost. Expire with At or In is refused, and a
// Call refuses Expire too: a request has its deadline instead.
func Expire(d time.Duration) PublishOption {
	return func(o *publishOptions) error {
		if d < time.Millisecond {
			return fmt.Errorf("%w: Expire(%s): give a time to live of at least 1ms", ErrInvalidOption, d)
		}
		o.expire = d
		return nil
	}
}

// MaxUniqueKey is the longest key UniqueKey takes, in bytes.
const MaxUniqueKey = 255

// UniqueKey marks the job as the holder of a unique key, in its
// warren-unique-key header (HeaderUniqueKey), so that the worker that
// settles it for good (succeeded, dead-lettered, rejected, expired)
// releases the key. It only marks the job: package unique takes the key in
// its store before publishing, refuses a duplicate, and sets this option
// itself. One job per key: PublishBatch of more than one job and Call
// refuse it. The key is 1 to MaxUniqueKey bytes of valid UTF-8.
func UniqueKey(key string) PublishOption {
	return func(o *publishOptions) error {
		if key == "" || len(key) > MaxUniqueKey || !utf8.ValidString(key) {
			return fmt.Errorf("%w: UniqueKey(%.40q): give 1 to %d bytes of UTF-8", ErrInvalidOption, key, MaxUniqueKey)
		}
		o.uniqueKey = key
		return nil
	}
}

// mark writes what the options put in the job's envelope: its expiration,
// its unique key, its routing slip, its batch and its CloudEvents
// attributes.
func (o *publishOptions) mark(env *Envelope) {
	env.Expiration = o.expiration()
	if o.uniqueKey == "" && o.slip == nil && o.batch == "" && o.ce == nil {
		return
	}
	n := len(env.Headers) + 3
	if o.ce != nil {
		n += 6
	}
	h := make(map[string]any, n)
	maps.Copy(h, env.Headers)
	if o.uniqueKey != "" {
		h[HeaderUniqueKey] = o.uniqueKey
	}
	if o.slip != nil {
		h[HeaderChain] = o.slip.Table()
	}
	if o.batch != "" {
		h[HeaderBatch] = o.batch
	}
	if o.ce != nil {
		o.ce.put(h, env)
	}
	env.Headers = h
}

// BatchMember marks the job as a member of the batch id, in its
// warren-batch header (HeaderBatch), so that the worker pool that settles
// it for good counts its end (package batch, whose Publish sets it). The
// id is 1 to 255 bytes of valid UTF-8.
func BatchMember(id string) PublishOption {
	return func(o *publishOptions) error {
		if id == "" || len(id) > 255 || !utf8.ValidString(id) {
			return fmt.Errorf("%w: BatchMember(%.40q): give 1 to 255 bytes of UTF-8", ErrInvalidOption, id)
		}
		o.batch = id
		return nil
	}
}

// MarkEnvelope writes into env what opts put in a job's headers and
// properties — UniqueKey, RoutingSlip, BatchMember, AsCloudEvent, Expire — for code that
// publishes envelopes of its own making (package outbox). Options that say
// where or when a job goes (To, ToQueue, At, In) are an error wrapping
// ErrInvalidOption: that code routes the job itself.
func MarkEnvelope(env *Envelope, opts ...PublishOption) error {
	o, err := applyPublishOptions(opts)
	if err != nil {
		return err
	}
	if o.delayed || o.target.explicit {
		return fmt.Errorf("%w: MarkEnvelope takes the options that mark a job, not To, ToQueue, At or In", ErrInvalidOption)
	}
	o.mark(env)
	return nil
}

// expiration is the AMQP expiration property Expire sets, "" without it.
func (o *publishOptions) expiration() string {
	if o.expire <= 0 {
		return ""
	}
	return strconv.FormatInt(o.expire.Milliseconds(), 10)
}

// applyPublishOptions applies opts in order, stopping at the first error.
func applyPublishOptions(opts []PublishOption) (publishOptions, error) {
	if len(opts) == 0 {
		return publishOptions{}, nil // the common case, without moving o to the heap
	}
	var o publishOptions
	for _, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("%w: nil option", ErrInvalidOption)
		}
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	if o.delayed && o.expire > 0 {
		return o, fmt.Errorf("%w: Expire with At or In: a scheduled job cannot expire (the delay cascade holds it by expiring it, and RabbitMQ drops its TTL on the way); drop one of them", ErrInvalidOption)
	}
	return o, nil
}

// delay is how long a scheduled job waits from now.
func (o *publishOptions) delay(now time.Time) time.Duration {
	if !o.at.IsZero() {
		return o.at.Sub(now)
	}
	return o.in
}
