package worker

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/warrenmq/warren/broker"
)

// Job is one delivery of a job to a handler.
type Job struct {
	// ID identifies the job for its whole life: retries and replays keep
	// it. Handlers whose effects must not repeat de-duplicate on it (a job
	// can be delivered twice, e.g. after a worker crashed before its ack).
	ID   string
	Type string
	// Version is the job type's contract version the payload follows
	// (package contract), 0 when the job carries none (read it as 1).
	Version int
	// Queue is the queue the job was consumed from.
	Queue string
	// Attempt is 1 on the first delivery to a handler, 2 on the first
	// retry, and so on; MaxAttempts is the retry policy's limit.
	Attempt     int
	MaxAttempts int
	// CorrelationID is the job's conversation: the one its reply carries
	// (a request's own, else its id), and the one the jobs its handler
	// publishes with its ctx take (the job's id when it has none).
	// ReplyTo is where a request's reply goes.
	CorrelationID string
	ReplyTo       string
	// Headers are the producer's own headers.
	Headers map[string]any
	// PublishedAt is when the job was first published (whole seconds).
	PublishedAt time.Time
	// Redelivered is set when the broker delivered this message before
	// without it being settled (a worker crashed, or shut down).
	Redelivered bool
	// Envelope is the whole job as it travels: the last failure of a
	// retried job, the trace context, the raw body.
	Envelope *broker.Envelope

	limits    broker.Limits
	result    any
	hasResult bool
}

// SetResult sets the result the pool sends back to the job's caller when
// the job has a reply_to (request-reply), encoded with MessagePack. A
// handler calls it before returning nil; without it the reply's body is
// nil. TypedResult calls it for you.
func (j *Job) SetResult(v any) {
	j.result, j.hasResult = v, true
}

// Result returns what SetResult set, and whether it was called:
// for middleware that keeps a job's result (package inbox).
func (j *Job) Result() (any, bool) { return j.result, j.hasResult }

// Decode decodes the job's MessagePack payload into v, a non-nil pointer,
// after checking the body within the pool's limits. An error wraps
// broker.ErrBadBody or broker.ErrBodyTooLarge; returned by a handler, it
// dead-letters the job (class "decode").
func (j *Job) Decode(v any) error { return j.Envelope.DecodeWith(v, j.limits) }

// Handler handles jobs. HandleJob returns nil when the job is done, an error
// to have it retried, or an error wrapping ErrPermanent to have it
// dead-lettered at once. It must return when ctx ends (the job's timeout,
// or the pool's shutdown deadline).
type Handler interface {
	HandleJob(ctx context.Context, job *Job) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, job *Job) error

// HandleJob calls f.
func (f HandlerFunc) HandleJob(ctx context.Context, job *Job) error { return f(ctx, job) }

// Middleware wraps a handler, e.g. for logging, metrics or de-duplication.
type Middleware func(Handler) Handler

// Typed returns a handler that decodes each job's payload into a T and
// passes it to fn. A payload that does not decode is returned as an error
// wrapping broker.ErrBadBody, which dead-letters the job.
func Typed[T any](fn func(ctx context.Context, job *Job, payload T) error) Handler {
	return HandlerFunc(func(ctx context.Context, job *Job) error {
		var payload T
		if err := job.Decode(&payload); err != nil {
			return err
		}
		return fn(ctx, job, payload)
	})
}

// Upcast returns a handler for an older version of a job type, for a
// handler written for a newer one: it decodes each job's payload into a
// From, converts it with up, and passes the result to h, with the job as
// it came (job.Version is still the version the job carries). Register it
// next to the newer version's handler:
//
//	mux.HandleVersion("trip.book", 1, worker.Upcast(tripV1ToV2, bookTrip))
//	mux.HandleVersion("trip.book", 2, worker.Typed(bookTrip))
//
// A payload that does not decode is an error wrapping broker.ErrBadBody
// (class "decode"); an error from up is permanent, class "schema": the
// job is dead-lettered at once, since converting it again would fail
// again. Fix up (or the payload), then replay the job.
func Upcast[From, To any](up func(From) (To, error), h func(ctx context.Context, job *Job, v To) error) Handler {
	return HandlerFunc(func(ctx context.Context, job *Job) error {
		var old From
		if err := job.Decode(&old); err != nil {
			return err
		}
		v, err := up(old)
		if err != nil {
			return &schemaError{
				err:  fmt.Errorf("job %s: upcast of %s v%d: %w", job.ID, job.Type, max(job.Version, 1), err),
				hint: "fix the conversion or the payload, then replay the job from the dead-letter queue",
			}
		}
		return h(ctx, job, v)
	})
}

// TypedResult returns a handler that decodes each job's payload into a T,
// passes it to fn, and sends fn's result back to the job's caller when the
// job is a request (it has a reply_to). An error from fn is handled as any
// handler's: retried, then dead-lettered, and the caller gets the failure.
func TypedResult[T, R any](fn func(ctx context.Context, job *Job, payload T) (R, error)) Handler {
	return HandlerFunc(func(ctx context.Context, job *Job) error {
		var payload T
		if err := job.Decode(&payload); err != nil {
			return err
		}
		r, err := fn(ctx, job, payload)
		if err != nil {
			return err
		}
		job.SetResult(r)
		return nil
	})
}

// Reply is a reply consumed from a durable reply queue: the answer to a
// request this service published earlier with broker.Job.ReplyTo naming
// that queue.
type Reply[T any] struct {
	// CorrelationID is the request's correlation id, its id unless it set
	// one: match it against what the service sent.
	CorrelationID string
	// RequestType is the request's job type.
	RequestType string
	// Result is the worker's result; the zero T when Err is set.
	Result T
	// Err is the request's failure when it failed for good in its worker.
	Err *broker.RemoteError
	// Job is the reply itself, as delivered.
	Job *Job
}

// HandleReply returns a handler for the replies arriving in a durable
// reply queue: it decodes each into a Reply[T] and passes it to fn.
// Register it on a Mux under the reply's type, "<request type>.reply".
// Replies are at least once, like any job: their id is the request's id
// plus ".reply", the same for every copy, to de-duplicate on.
func HandleReply[T any](fn func(ctx context.Context, r Reply[T]) error) Handler {
	return HandlerFunc(func(ctx context.Context, job *Job) error {
		env := job.Envelope
		if !strings.HasSuffix(job.Type, broker.ReplyTypeSuffix) || env.CorrelationID == "" {
			return Permanent(fmt.Errorf("job %s (type %q) is not a reply: a reply's type ends in %q and it has a correlation id", job.ID, job.Type, broker.ReplyTypeSuffix))
		}
		r := Reply[T]{
			CorrelationID: env.CorrelationID,
			RequestType:   strings.TrimSuffix(job.Type, broker.ReplyTypeSuffix),
			Err:           env.RemoteErr(),
			Job:           job,
		}
		if r.Err == nil {
			if err := job.Decode(&r.Result); err != nil {
				return err
			}
		}
		return fn(ctx, r)
	})
}

// Mux dispatches jobs to handlers by job type. Its middleware wraps every
// handler, in the order given: the first is the outermost. A Mux is a
// Handler; register every handler before the pool runs.
type Mux struct {
	mu       sync.RWMutex
	handlers map[string]Handler // as registered
	versions map[typeVersion]Handler
	mw       []Middleware
	wrapped  map[string]Handler // handlers inside the middleware
	wrappedV map[typeVersion]Handler
	unknown  Handler // the refusal of unknown types, inside the middleware
}

// typeVersion keys a handler registered for one version of a job type.
type typeVersion struct {
	jobType string
	version int
}

// NewMux returns an empty Mux.
func NewMux() *Mux {
	m := &Mux{handlers: make(map[string]Handler), versions: make(map[typeVersion]Handler)}
	m.wrapLocked()
	return m
}

// wrapLocked rebuilds the handlers wrapped in the middleware, so that a
// dispatch does not build the chain again.
func (m *Mux) wrapLocked() {
	wrap := func(h Handler) Handler {
		for i := len(m.mw) - 1; i >= 0; i-- {
			h = m.mw[i](h)
		}
		return h
	}
	m.wrapped = make(map[string]Handler, len(m.handlers))
	for t, h := range m.handlers {
		m.wrapped[t] = wrap(h)
	}
	m.wrappedV = make(map[typeVersion]Handler, len(m.versions))
	for tv, h := range m.versions {
		m.wrappedV[tv] = wrap(h)
	}
	m.unknown = wrap(HandlerFunc(func(_ context.Context, job *Job) error {
		m.mu.RLock()
		versioned := m.hasVersions(job.Type)
		m.mu.RUnlock()
		if job.Version > 1 || versioned {
			return fmt.Errorf("%w %q version %d (queue %q); register one (Mux.HandleVersion), then replay the job from the dead-letter queue", ErrUnknownType, job.Type, max(job.Version, 1), job.Queue)
		}
		return fmt.Errorf("%w %q (queue %q); register one, then replay the job from the dead-letter queue", ErrUnknownType, job.Type, job.Queue)
	}))
}

// Handle registers h for jobs of type jobType. Like http.ServeMux, it
// panics when jobType is empty, h is nil or jobType already has a handler:
// those are programming errors found at start-up.
func (m *Mux) Handle(jobType string, h Handler) {
	if jobType == "" {
		panic("worker: Mux.Handle: empty job type")
	}
	if h == nil {
		panic("worker: Mux.Handle: nil handler for " + jobType)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.handlers[jobType]; dup {
		panic("worker: Mux.Handle: a handler for " + jobType + " is already registered")
	}
	m.handlers[jobType] = h
	m.wrapLocked()
}

// HandleVersion registers h for the jobs of type jobType that carry
// contract version version (Job.Version; an unversioned job is version
// 1). A job goes to the handler of its type and version, else to the
// handler its type has for every version (Handle), else it is refused with
// ErrUnknownType. It panics like Handle, and when version is not positive.
func (m *Mux) HandleVersion(jobType string, version int, h Handler) {
	if jobType == "" {
		panic("worker: Mux.HandleVersion: empty job type")
	}
	if version < 1 {
		panic(fmt.Sprintf("worker: Mux.HandleVersion: version %d of %s; versions start at 1", version, jobType))
	}
	if h == nil {
		panic(fmt.Sprintf("worker: Mux.HandleVersion: nil handler for %s version %d", jobType, version))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	tv := typeVersion{jobType, version}
	if _, dup := m.versions[tv]; dup {
		panic(fmt.Sprintf("worker: Mux.HandleVersion: a handler for %s version %d is already registered", jobType, version))
	}
	m.versions[tv] = h
	m.wrapLocked()
}

// hasVersions reports whether a handler is registered for some version of
// jobType; m.mu is held (read or write).
func (m *Mux) hasVersions(jobType string) bool {
	for tv := range m.versions {
		if tv.jobType == jobType {
			return true
		}
	}
	return false
}

// HandleFunc registers fn for jobs of type jobType.
func (m *Mux) HandleFunc(jobType string, fn func(ctx context.Context, job *Job) error) {
	m.Handle(jobType, HandlerFunc(fn))
}

// Use appends middleware that wraps every handler of the Mux, including
// the refusal of unknown job types.
func (m *Mux) Use(mw ...Middleware) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mw = append(m.mw, mw...)
	m.wrapLocked()
}

// Types returns the registered job types, sorted.
func (m *Mux) Types() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	types := make([]string, 0, len(m.handlers)+len(m.versions))
	for t := range m.handlers {
		types = append(types, t)
	}
	for tv := range m.versions {
		if _, ok := m.handlers[tv.jobType]; !ok {
			types = append(types, tv.jobType)
		}
	}
	sort.Strings(types)
	return slices.Compact(types)
}

// HandleJob dispatches job to the handler of its type, through the
// middleware. A job type without a handler gives an error wrapping
// ErrUnknownType.
func (m *Mux) HandleJob(ctx context.Context, job *Job) error {
	m.mu.RLock()
	var h Handler
	ok := false
	if len(m.wrappedV) > 0 {
		h, ok = m.wrappedV[typeVersion{job.Type, max(job.Version, 1)}]
	}
	if !ok {
		h, ok = m.wrapped[job.Type]
	}
	if !ok {
		h = m.unknown
	}
	m.mu.RUnlock()
	return h.HandleJob(ctx, job)
}
