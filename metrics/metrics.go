package metrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/scheduler"
	"github.com/warrenmq/warren/worker"
)

// Namespace prefixes every metric name.
const Namespace = "warren"

// Label values.
const (
	// OtherType labels the job types beyond those WithJobTypes names, or
	// beyond WithMaxJobTypes.
	OtherType = "other"
	// NoType labels a message without a job type (a malformed one).
	NoType = "none"

	// Outcomes of a publish (warren_jobs_published_total,
	// warren_replies_sent_total).
	OutcomeOK    = "ok"
	OutcomeError = "error"

	// Outcomes of a call (warren_calls_total).
	CallOK          = "ok"           // a reply came and the job succeeded
	CallRemoteError = "remote_error" // the job failed for good in its worker
	CallTimeout     = "timeout"      // no reply before the deadline
	CallUnavailable = "unavailable"  // failed fast: no worker consumed the queue (broker.ErrNoConsumer)
	CallError       = "error"        // the request could not be sent, or the call was given up
)

// Metrics holds warren's collectors, registered by New. Its methods are
// safe for concurrent use.
type Metrics struct {
	types *typeSet

	published    *prometheus.CounterVec   // type, kind, outcome
	confirm      *prometheus.HistogramVec // kind
	processed    *prometheus.CounterVec   // queue, type, outcome
	handler      *prometheus.HistogramVec // queue, type
	rateWait     *prometheus.CounterVec   // queue, type
	inFlight     *prometheus.GaugeVec     // queue
	replies      *prometheus.CounterVec   // outcome
	calls        *prometheus.CounterVec   // type, outcome
	callDuration *prometheus.HistogramVec // type
	reconnects   *prometheus.CounterVec   // role
	paused       *prometheus.GaugeVec     // queue
	ticks        *prometheus.CounterVec   // schedule, outcome
	leading      prometheus.Gauge
	breaker      *prometheus.GaugeVec   // queue
	transitions  *prometheus.CounterVec // queue, state

	outboxRows    *prometheus.CounterVec // outcome
	outboxDelay   prometheus.Histogram
	outboxBacklog prometheus.Gauge
	outboxLag     prometheus.Gauge
	outboxDeleted prometheus.Counter
}

// New returns warren's metrics, registered on reg. Register them once per
// registry: a second New on the same registry fails, as the names are
// taken. To tell several instances apart, wrap reg with
// prometheus.WrapRegistererWith and a constant label.
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: New needs a registerer, e.g. prometheus.NewRegistry() (or prometheus.DefaultRegisterer for the global one)")
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	m := &Metrics{
		types: newTypeSet(o),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "jobs_published_total",
			Help: "Messages published from envelopes, replies excepted, by job type, kind (job, retry, dead_letter, replay) and outcome (ok: confirmed; error).",
		}, []string{"type", "kind", "outcome"}),
		confirm: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "publish_confirm_duration_seconds",
			Help:    "Time from the start of a publish to the broker's confirm, for confirmed publishes, by kind.",
			Buckets: o.confirmBuckets,
		}, []string{"kind"}),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "jobs_processed_total",
			Help: "Deliveries settled by worker pools, by queue, job type and outcome (succeeded, retried, dead_lettered, requeued, rejected, expired).",
		}, []string{"queue", "type", "outcome"}),
		handler: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "handler_duration_seconds",
			Help:    "Run time of handlers, by queue and job type.",
			Buckets: o.durationBuckets,
		}, []string{"queue", "type"}),
		rateWait: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "rate_limit_wait_seconds_total",
			Help: "Time deliveries waited for their pool's rate limits before they started, by queue and job type.",
		}, []string{"queue", "type"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "jobs_in_flight",
			Help: "Deliveries a pool has taken and not yet settled, by queue.",
		}, []string{"queue"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "replies_sent_total",
			Help: "Replies to requests sent, by outcome (ok: written to direct reply-to or confirmed; error).",
		}, []string{"outcome"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "calls_total",
			Help: "Calls (request-reply) ended, by job type and outcome (ok, remote_error, timeout, unavailable, error).",
		}, []string{"type", "outcome"}),
		callDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "call_duration_seconds",
			Help:    "Time from a call's start to its reply, for calls that got one (ok or remote_error), by job type.",
			Buckets: o.durationBuckets,
		}, []string{"type"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "reconnects_total",
			Help: "Connections re-established after a loss, by role.",
		}, []string{"role"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "queue_paused",
			Help: "1 while a queue a pool consumes is paused (warren queue pause), 0 once resumed, by queue.",
		}, []string{"queue"}),
		ticks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "schedule_ticks_total",
			Help: "Ticks of periodic jobs the leading scheduler came to, by schedule and outcome (fired; missed: older than the catch-up window; paused).",
		}, []string{"schedule", "outcome"}),
		leading: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "scheduler_leading",
			Help: "1 while this process's scheduler leads (fires the ticks of periodic jobs), 0 otherwise.",
		}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "breaker_state",
			Help: "State of a queue's circuit breaker in the pool: 0 closed, 1 open, 2 half-open, by queue.",
		}, []string{"queue"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "breaker_transitions_total",
			Help: "Changes of a queue's circuit breaker, by queue and the state entered (open, half-open, closed).",
		}, []string{"queue", "state"}),
		outboxRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "outbox_rows_total",
			Help: "Outbox rows this process's relay published, by outcome (sent: confirmed and marked sent; failed: to be tried again after a backoff).",
		}, []string{"outcome"}),
		outboxDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "outbox_relay_delay_seconds",
			Help:    "Time from an outbox row's write to its being marked sent, by the database's clock, for the rows this process's relay sent.",
			Buckets: o.durationBuckets,
		}),
		outboxBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "outbox_backlog",
			Help: "Outbox rows not yet sent, as the relay last read them.",
		}),
		outboxLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "outbox_lag_seconds",
			Help: "Age of the oldest unsent outbox row, as the relay last read it (0: none).",
		}),
		outboxDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "outbox_deleted_total",
			Help: "Sent outbox rows deleted by this process's relay past their retention.",
		}),
	}
	collectors := []prometheus.Collector{m.published, m.confirm, m.processed, m.handler, m.rateWait, m.inFlight,
		m.replies, m.calls, m.callDuration, m.reconnects, m.paused, m.ticks, m.leading, m.breaker, m.transitions,
		m.outboxRows, m.outboxDelay, m.outboxBacklog, m.outboxLag, m.outboxDeleted}
	for i, c := range collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range collectors[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("metrics: register on the registry (New called twice on it?): %w", err)
		}
	}
	return m, nil
}

// Metrics observes connections, publishes, calls and jobs: give it to
// broker.Dial with broker.WithObserver, and the Publishers, Senders,
// Callers and worker pools built on the connection are counted.
var (
	_ broker.Observer        = (*Metrics)(nil)
	_ worker.Observer        = (*Metrics)(nil)
	_ worker.PauseObserver   = (*Metrics)(nil)
	_ worker.BreakerObserver = (*Metrics)(nil)
	_ scheduler.Observer     = (*Metrics)(nil)
	_ outbox.Observer        = (*Metrics)(nil)
)

// OutboxBatch counts a relay's batch in warren_outbox_rows_total and each
// sent row's delay in warren_outbox_relay_delay_seconds; it is the
// outbox.Observer's. Give the Metrics to outbox.WithObserver.
func (m *Metrics) OutboxBatch(sent, failed int, delays []time.Duration) {
	if sent > 0 {
		m.outboxRows.WithLabelValues("sent").Add(float64(sent))
	}
	if failed > 0 {
		m.outboxRows.WithLabelValues("failed").Add(float64(failed))
	}
	for _, d := range delays {
		m.outboxDelay.Observe(d.Seconds())
	}
}

// OutboxStats sets warren_outbox_backlog and warren_outbox_lag_seconds;
// it is the outbox.Observer's.
func (m *Metrics) OutboxStats(s outbox.Stats) {
	m.outboxBacklog.Set(float64(s.Backlog))
	m.outboxLag.Set(s.Lag.Seconds())
}

// OutboxDeleted counts sent rows deleted past the retention
// (warren_outbox_deleted_total); it is the outbox.Observer's.
func (m *Metrics) OutboxDeleted(n int64) { m.outboxDeleted.Add(float64(n)) }

// SchedulerLeading sets warren_scheduler_leading; it is the
// scheduler.Observer's.
func (m *Metrics) SchedulerLeading(leading bool) {
	v := 0.0
	if leading {
		v = 1
	}
	m.leading.Set(v)
}

// ScheduleTicks counts ticks in warren_schedule_ticks_total; it is the
// scheduler.Observer's.
func (m *Metrics) ScheduleTicks(schedule string, outcome scheduler.Outcome, n int) {
	m.ticks.WithLabelValues(schedule, string(outcome)).Add(float64(n))
}

// BreakerChanged sets warren_breaker_state for queue and counts the change
// in warren_breaker_transitions_total.
func (m *Metrics) BreakerChanged(queue string, state worker.BreakerState) {
	m.breaker.WithLabelValues(queue).Set(float64(state))
	m.transitions.WithLabelValues(queue, state.String()).Inc()
}

// QueuePaused sets warren_queue_paused for queue.
func (m *Metrics) QueuePaused(queue string, paused bool) {
	v := 0.0
	if paused {
		v = 1
	}
	m.paused.WithLabelValues(queue).Set(v)
}

// Publish counts a publish (warren_jobs_published_total, or
// warren_replies_sent_total for a reply) and times its confirm; for a
// call's request (broker.KindRequest), it counts the call by outcome
// (warren_calls_total) and times those that got a reply. It is the
// broker.Observer's.
func (m *Metrics) Publish(ctx context.Context, info broker.PublishInfo, env *broker.Envelope) (context.Context, func(error)) {
	start := time.Now()
	if info.Kind == broker.KindRequest {
		jobType := m.types.label(env.Type)
		return ctx, func(err error) {
			outcome := CallOutcome(err)
			m.calls.WithLabelValues(jobType, outcome).Inc()
			if outcome == CallOK || outcome == CallRemoteError {
				m.callDuration.WithLabelValues(jobType).Observe(time.Since(start).Seconds())
			}
		}
	}
	jobType := env.Type
	return ctx, func(err error) {
		outcome := OutcomeOK
		if err != nil {
			outcome = OutcomeError
		}
		kind := info.Kind.String()
		if info.Kind == broker.KindReply {
			m.replies.WithLabelValues(outcome).Inc()
		} else {
			m.published.WithLabelValues(m.types.label(jobType), kind, outcome).Inc()
		}
		if err == nil && info.Confirmed {
			m.confirm.WithLabelValues(kind).Observe(time.Since(start).Seconds())
		}
	}
}

// Connection counts a re-established connection (warren_reconnects_total)
// under the connection's name (broker.WithName) as its role: name the
// connections after what they are for ("publisher", "consumer", "caller",
// …), a small fixed set, as each is a time series. It is the
// broker.Observer's.
func (m *Metrics) Connection(c broker.StateChange) {
	if c.State == broker.Connected && c.Reconnects > 0 {
		m.reconnects.WithLabelValues(c.Name).Inc()
	}
}

// Job keeps warren_jobs_in_flight, the deliveries a pool is handling by
// queue, and, once the delivery is settled, counts it
// (warren_jobs_processed_total), its handler's run time and its wait for
// rate limits (warren_rate_limit_wait_seconds_total). It is the
// worker.Observer's: a pool on a connection dialled with the Metrics uses
// it without being told.
func (m *Metrics) Job(ctx context.Context, job *worker.Job, _ worker.Source) (context.Context, func(worker.Outcome)) {
	g := m.inFlight.WithLabelValues(job.Queue)
	g.Inc()
	return ctx, func(o worker.Outcome) {
		g.Dec()
		if o.Status == 0 {
			return // settled already, elsewhere
		}
		jobType := m.types.label(o.JobType)
		m.processed.WithLabelValues(o.Queue, jobType, StatusLabel(o.Status)).Inc()
		if o.Duration > 0 { // a handler ran
			m.handler.WithLabelValues(o.Queue, jobType).Observe(o.Duration.Seconds())
		}
		if o.RateWait > 0 {
			m.rateWait.WithLabelValues(o.Queue, jobType).Add(o.RateWait.Seconds())
		}
	}
}

// CallOutcome returns the outcome label of a call that returned err.
func CallOutcome(err error) string {
	var re *broker.RemoteError
	switch {
	case err == nil:
		return CallOK
	case errors.As(err, &re):
		return CallRemoteError
	case errors.Is(err, broker.ErrReplyTimeout):
		return CallTimeout
	case errors.Is(err, broker.ErrNoConsumer):
		return CallUnavailable
	}
	return CallError
}

// StatusLabel returns the outcome label of a worker.Status:
// "succeeded", "retried", "dead_lettered", "requeued", "rejected",
// "expired", "quarantined".
func StatusLabel(s worker.Status) string {
	switch s {
	case worker.Succeeded:
		return "succeeded"
	case worker.Retried:
		return "retried"
	case worker.DeadLettered:
		return "dead_lettered"
	case worker.Requeued:
		return "requeued"
	case worker.Rejected:
		return "rejected"
	case worker.Expired:
		return "expired"
	case worker.Quarantined:
		return "quarantined"
	}
	return "unknown"
}

// typeSet bounds the job types used as label values.
type typeSet struct {
	fixed bool // only the known types; else up to max, first come
	max   int

	mu    sync.RWMutex
	known map[string]struct{}
}

func newTypeSet(o options) *typeSet {
	s := &typeSet{fixed: o.fixedTypes, max: o.maxJobTypes, known: make(map[string]struct{})}
	for _, t := range o.jobTypes {
		s.known[t] = struct{}{}
		if !strings.HasSuffix(t, broker.ReplyTypeSuffix) {
			s.known[t+broker.ReplyTypeSuffix] = struct{}{}
		}
	}
	return s
}

// label returns the label value for jobType.
func (s *typeSet) label(jobType string) string {
	if jobType == "" {
		return NoType
	}
	s.mu.RLock()
	_, ok := s.known[jobType]
	full := s.fixed || len(s.known) >= s.max
	s.mu.RUnlock()
	switch {
	case ok:
		return jobType
	case full:
		return OtherType
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.known[jobType]; !ok {
		if len(s.known) >= s.max {
			return OtherType
		}
		s.known[jobType] = struct{}{}
	}
	return jobType
}
