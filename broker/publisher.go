package broker

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/rs/zerolog"
)

// Router maps a job type to the exchange and routing key it is published
// with. *topology.Topology is one.
type Router interface {
	Route(jobType string) (exchange, routingKey string, ok bool)
}

// PublisherOption configures NewPublisher, and NewSender where it says so.
type PublisherOption func(*publisherOptions) error

type publisherOptions struct {
	router Router
	appID  string
	log    zerolog.Logger
	window int
	// ce marks every job as a CloudEvent (WithCloudEvents); nil without.
	ce *cloudEventMark
	// validator checks payloads before they are published (WithValidator).
	validator PayloadValidator
	// publisherOnly names the last option given that only a Publisher
	// takes, for NewSender to refuse.
	publisherOnly string
}

// publisherOptionsOf applies opts over the defaults.
func publisherOptionsOf(conn *Conn, opts []PublisherOption) (publisherOptions, error) {
	o := publisherOptions{appID: "warren", log: conn.opts.log, window: 512}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// WithRouter routes jobs by type, so callers need not name an exchange.
// For a Publisher only.
func WithRouter(r Router) PublisherOption {
	return func(o *publisherOptions) error {
		if r == nil {
			return errors.New("broker: WithRouter: nil router")
		}
		o.router = r
		o.publisherOnly = "WithRouter"
		return nil
	}
}

// WithAppID sets the app_id property of every job (default "warren"); name
// the producing service so operators can tell where a job came from.
func WithAppID(id string) PublisherOption {
	return func(o *publisherOptions) error {
		o.appID = id
		return nil
	}
}

// WithPublisherLogger sets the publisher's or sender's logger (default:
// the connection's).
func WithPublisherLogger(l zerolog.Logger) PublisherOption {
	return func(o *publisherOptions) error {
		o.log = l
		return nil
	}
}

// WithBatchWindow sets how many jobs of one PublishBatch may await their
// confirms at once (default 512). Larger windows use more memory and gain
// little once the broker is the bottleneck. For a Publisher only.
func WithBatchWindow(n int) PublisherOption {
	return func(o *publisherOptions) error {
		if n < 1 {
			return fmt.Errorf("broker: batch window %d must be at least 1", n)
		}
		o.window = n
		o.publisherOnly = "WithBatchWindow"
		return nil
	}
}

// Publisher publishes jobs with publisher confirms: Publish returns nil only
// after the broker has taken responsibility for the job. Publishes are
// mandatory: a job no queue receives is returned by the broker and reported
// as ErrUnroutable. Confirms are pipelined: any number of goroutines may
// publish at once on one Publisher, and their jobs share one channel without
// waiting for each other's confirms.
//
// A Publisher is safe for concurrent use. When the broker closes its channel
// (for instance after a publish to an exchange deleted at run time), the jobs
// awaiting confirms fail with ErrClosed and the next Publish opens a new
// channel.
type Publisher struct {
	s      *Sender // with the router: the pipe every job goes through
	window int
	ce     *cloudEventMark // WithCloudEvents; nil without
	check  *payloadCheck   // WithValidator; nil without
}

// NewPublisher returns a Publisher on conn. It opens its channel on first
// use.
func NewPublisher(conn *Conn, opts ...PublisherOption) (*Publisher, error) {
	o, err := publisherOptionsOf(conn, opts)
	if err != nil {
		return nil, err
	}
	p := &Publisher{s: newSender(conn, o), window: o.window, ce: o.ce}
	if o.validator != nil {
		p.check = &payloadCheck{v: o.validator, log: o.log}
	}
	return p, nil
}

// PublishError says which job failed to publish and why. It wraps one of
// ErrUnroutable, ErrNacked, ErrClosed, ErrNoExchange, ErrNoRoute, ErrInvalidJob,
// ErrInvalidPayload or the broker's *amqp.Error.
type PublishError struct {
	JobID      string
	JobType    string
	Exchange   string
	RoutingKey string
	Err        error
}

func (e *PublishError) Error() string {
	if errors.Is(e.Err, ErrNoRoute) || errors.Is(e.Err, ErrInvalidJob) || errors.Is(e.Err, ErrInvalidPayload) {
		return fmt.Sprintf("broker: publish job %s (type %q): %v", e.JobID, e.JobType, e.Err)
	}
	return fmt.Sprintf("broker: publish job %s (type %q) to exchange %q with key %q: %v", e.JobID, e.JobType, e.Exchange, e.RoutingKey, e.Err)
}

func (e *PublishError) Unwrap() error { return e.Err }

// Publish sends job and waits for the broker's confirm. It returns nil only
// when the broker confirmed the job; a nack, a return (ErrUnroutable), a lost
// channel or connection (ErrClosed) or the end of ctx is an error. After an
// ErrClosed or a ctx error the job may or may not have been stored: publish
// it again with the same ID (handlers de-duplicate on it). When the
// connection is lost before the confirm, the job is sent again, with the
// same ID, once reconnected (until ctx ends).
//
// The job goes where its type's route says (WithRouter), unless To or
// ToQueue names the target; At or In schedules it (see At). An invalid job
// is an error wrapping ErrInvalidJob, a bad option one wrapping
// ErrInvalidOption, a payload the publisher's validator refuses
// (WithValidator) a *PublishError wrapping ErrInvalidPayload, and nothing
// is published.
//
// The job's ID is generated (a UUIDv7) when empty. To know it, set it
// first with NewJobID: every error names it too (*PublishError).
func (p *Publisher) Publish(ctx context.Context, job Job, opts ...PublishOption) error {
	o, err := applyPublishOptions(opts)
	if err != nil {
		return err
	}
	if o.ce == nil {
		o.ce = p.ce
	}
	inheritCorrelation(ctx, &job)
	env, err := NewEnvelope(job)
	if err != nil {
		return err
	}
	if err := p.check.check(env); err != nil {
		return &PublishError{JobID: env.ID, JobType: env.Type, Err: err}
	}
	o.mark(env)
	if o.delayed {
		return p.publishDelayed(ctx, env, o)
	}
	return p.s.publishConfirmed(ctx, KindJob, env, o.target)
}

// BatchError reports the jobs of a PublishBatch that were not confirmed.
// Every job not listed was confirmed.
type BatchError struct {
	Failed []BatchFailure
}

// BatchFailure is one job of a batch that failed.
type BatchFailure struct {
	Index int // position in the slice given to PublishBatch
	JobID string
	Err   error
}

func (e *BatchError) Error() string {
	if len(e.Failed) == 0 {
		return "broker: batch failed"
	}
	return fmt.Sprintf("broker: %d job(s) of the batch were not confirmed; first: %v", len(e.Failed), e.Failed[0].Err)
}

// Unwrap lets errors.Is find the sentinels of the failures.
func (e *BatchError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f.Err
	}
	return errs
}

// PublishBatch publishes jobs with their confirms pipelined (up to the batch
// window outstanding) and waits for all of them. It returns nil when every
// job was confirmed, else a *BatchError listing exactly the jobs that were
// not: republish those. Jobs without an ID get one; the slice is updated in
// place so the caller can read the IDs. opts apply to every job, as to
// Publish; a bad option fails the whole batch before anything is sent.
// Scheduled jobs (At, In) are published one after the other. A job whose
// payload the publisher's validator refuses (WithValidator) fails alone,
// with ErrInvalidPayload, and is not sent.
func (p *Publisher) PublishBatch(ctx context.Context, jobs []Job, opts ...PublishOption) error {
	o, err := applyPublishOptions(opts)
	if err != nil {
		return err
	}
	if o.uniqueKey != "" && len(jobs) > 1 {
		return fmt.Errorf("%w: UniqueKey with a batch of %d jobs: a unique key marks one job; publish them one by one", ErrInvalidOption, len(jobs))
	}
	if o.slip != nil && len(jobs) > 1 {
		return fmt.Errorf("%w: RoutingSlip with a batch of %d jobs: a routing slip starts one chain; publish each chain on its own", ErrInvalidOption, len(jobs))
	}
	if o.ce == nil {
		o.ce = p.ce
	}
	var failed []BatchFailure
	type sent struct {
		f     *inflight
		index int
	}
	window := make([]sent, 0, min(len(jobs), p.window))
	// The jobs are written unflushed: they leave in writes of a full
	// buffer, not one write each. What is buffered is flushed before a
	// wait that would block: not before every wait, which once the window
	// slides would be a write per job. A confirm already in needs no
	// flush; one still to come may be for a job in the buffer, and the
	// broker should have every job written by then anyway.
	var unflushed bool
	var flushErr error
	settle := func(s sent) {
		if unflushed && !s.f.settled() {
			unflushed = false
			flushErr = p.s.flush()
		}
		if flushErr != nil {
			// Not written, or not all: the job may or may not have reached
			// the broker; its confirm will not come on this connection.
			failed = append(failed, BatchFailure{Index: s.index, JobID: jobs[s.index].ID, Err: s.f.fail(flushErr)})
			return
		}
		if err := s.f.wait(ctx); err != nil {
			failed = append(failed, BatchFailure{Index: s.index, JobID: jobs[s.index].ID, Err: err})
		}
	}
	for i := range jobs {
		job := jobs[i]
		inheritCorrelation(ctx, &job)
		env, err := NewEnvelope(job)
		if err != nil {
			failed = append(failed, BatchFailure{Index: i, JobID: jobs[i].ID, Err: err})
			continue
		}
		jobs[i].ID = env.ID
		if err := p.check.check(env); err != nil {
			failed = append(failed, BatchFailure{Index: i, JobID: env.ID, Err: &PublishError{JobID: env.ID, JobType: env.Type, Err: err}})
			continue
		}
		o.mark(env)
		if o.delayed {
			if err := p.publishDelayed(ctx, env, o); err != nil {
				failed = append(failed, BatchFailure{Index: i, JobID: env.ID, Err: err})
			}
			continue
		}
		if len(window) == p.window {
			settle(window[0])
			window = window[1:]
		}
		f, err := p.s.startUnflushed(ctx, KindJob, env, o.target)
		if err != nil {
			failed = append(failed, BatchFailure{Index: i, JobID: env.ID, Err: err})
			continue
		}
		unflushed = true
		window = append(window, sent{f, i})
	}
	for _, s := range window {
		settle(s)
	}
	if len(failed) > 0 {
		sort.Slice(failed, func(i, j int) bool { return failed[i].Index < failed[j].Index })
		return &BatchError{Failed: failed}
	}
	return nil
}

// Close waits until every job already sent has its outcome (or ctx ends),
// then closes the publisher's channel. Publishing afterwards fails with
// ErrClosed.
func (p *Publisher) Close(ctx context.Context) error { return p.s.Close(ctx) }
