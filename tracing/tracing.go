package tracing

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.34.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/worker"
)

// ScopeName is the instrumentation scope of warren's spans.
const ScopeName = "github.com/warrenmq/warren/tracing"

// SemconvVersion is the version of the OpenTelemetry semantic conventions
// the spans follow.
const SemconvVersion = "1.34.0"

// Attributes of warren's own, beside the semantic conventions'.
const (
	// AttrJobType is the job type (a message's AMQP type property).
	AttrJobType = attribute.Key("warren.job.type")
	// AttrAttempt is the job's attempt number: 1 for the first delivery to
	// a handler, 2 for the first retry; on a retry's publish span, the
	// attempt it is for.
	AttrAttempt = attribute.Key("warren.job.attempt")
	// AttrPublishKind says why a message is published: job, retry,
	// dead_letter, reply, replay (broker.PublishKind).
	AttrPublishKind = attribute.Key("warren.publish.kind")
	// AttrOutcome is what became of a delivery: succeeded, retried,
	// dead-lettered, requeued, rejected, expired (worker.Status).
	AttrOutcome = attribute.Key("warren.job.outcome")
)

// Option configures New.
type Option func(*options) error

type options struct {
	tp   trace.TracerProvider
	prop propagation.TextMapPropagator
}

// WithTracerProvider sets the tracer provider (default: the global one,
// otel.GetTracerProvider, which makes no-op spans until one is set).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) error {
		if tp == nil {
			return errors.New("tracing: WithTracerProvider: nil provider")
		}
		o.tp = tp
		return nil
	}
}

// WithPropagator sets how span contexts are written into jobs and read
// from them (default propagation.TraceContext, the W3C traceparent and
// tracestate headers of the wire format). A propagator writing other
// fields, such as baggage, writes them as the job's own headers.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *options) error {
		if p == nil {
			return errors.New("tracing: WithPropagator: nil propagator")
		}
		o.prop = p
		return nil
	}
}

// Tracing makes the spans of publishes, calls and jobs. Build one with New;
// it is safe for concurrent use.
type Tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// New returns a Tracing.
func New(opts ...Option) (*Tracing, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.tp == nil {
		o.tp = otel.GetTracerProvider()
	}
	if o.prop == nil {
		o.prop = propagation.TraceContext{}
	}
	return &Tracing{
		tracer: o.tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		prop:   o.prop,
	}, nil
}

// Inject writes the span context of ctx into env (its traceparent and
// tracestate), replacing what env carried. Nothing is written when ctx has
// no valid span context.
func (t *Tracing) Inject(ctx context.Context, env *broker.Envelope) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		env.Traceparent, env.Tracestate = "", ""
	}
	t.prop.Inject(ctx, &carrier{env: env})
}

// Extract returns ctx with the span context env carries, for code that
// reads envelopes itself; ctx unchanged when env carries none.
func (t *Tracing) Extract(ctx context.Context, env *broker.Envelope) context.Context {
	return t.prop.Extract(ctx, &carrier{env: env})
}

// Tracing is a broker.Observer and a worker.Observer: give it to
// broker.Dial with broker.WithObserver, and the publishes, calls and jobs
// of everything built on the connection are traced.
var (
	_ broker.Observer = (*Tracing)(nil)
	_ worker.Observer = (*Tracing)(nil)
)

// Publish makes the span of a message about to be published (the
// broker.Observer's).
//
// For a call's request (broker.KindRequest), a client span around
// Caller.Call: named "call <exchange>", of kind Client, its context
// written into the request, so the worker's span is its child; ended when
// Call returns, with an error status when it fails (error.type
// remote_error, timeout, …).
//
// For any other message, a producer span: named "publish <exchange>"
// ("publish" through the default exchange), of kind Producer, its context
// written into the message, ended when the broker confirms (with an error
// status when the publish fails). Its parent is the span of the publish's
// ctx; without one, the trace context the envelope already carries (a job
// passed on keeps its trace).
func (t *Tracing) Publish(ctx context.Context, info broker.PublishInfo, env *broker.Envelope) (context.Context, func(error)) {
	operation, kind, parent := "publish", trace.SpanKindProducer, ctx
	if info.Kind == broker.KindRequest {
		operation, kind = "call", trace.SpanKindClient
	} else if env.Traceparent != "" && !trace.SpanContextFromContext(ctx).IsValid() {
		parent = t.Extract(ctx, env)
	}
	attrs := append(make([]attribute.KeyValue, 0, 12),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName(operation),
		AttrPublishKind.String(info.Kind.String()),
	)
	attrs = messageAttributes(attrs, info.Exchange, info.RoutingKey, env)
	ctx, span := t.tracer.Start(parent, spanName(operation, info.Exchange),
		trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	t.Inject(ctx, env)
	return ctx, func(err error) {
		if err != nil {
			fail(span, err, errorType(err))
		}
		span.End()
	}
}

// Connection does nothing: a connection's state is not traced. It makes
// Tracing a broker.Observer.
func (t *Tracing) Connection(broker.StateChange) {}

// Job makes the consumer span of a delivery a worker pool takes (the
// worker.Observer's): named "process <queue>", of kind Consumer, a child
// of the trace context the job carries (a root span when it carries
// none), covering the handler and the settlement, and ending with the
// outcome (warren.job.outcome; an error status, the error recorded and
// error.type set to its class when the attempt failed). The retry, dead
// letter and reply of the job are published with its ctx. A pool on a
// connection dialled with the Tracing uses it without being told.
func (t *Tracing) Job(ctx context.Context, job *worker.Job, from worker.Source) (context.Context, func(worker.Outcome)) {
	env := job.Envelope
	parent := t.Extract(ctx, env)
	attrs := append(make([]attribute.KeyValue, 0, 12),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationSubscriptionName(job.Queue),
	)
	attrs = messageAttributes(attrs, from.Exchange, from.RoutingKey, env)
	ctx, span := t.tracer.Start(parent, spanName("process", job.Queue),
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
	return ctx, func(o worker.Outcome) {
		span.SetAttributes(AttrOutcome.String(o.Status.String()))
		switch {
		case o.Status == worker.Succeeded || o.Status == worker.Expired:
			if o.Err != nil {
				span.RecordError(o.Err)
			}
		case o.Err != nil:
			class := o.Class
			if class == "" {
				class = o.Status.String()
			}
			fail(span, o.Err, class)
		default:
			span.SetStatus(codes.Error, o.Status.String())
		}
		span.End()
	}
}

// messageAttributes appends the semantic conventions' attributes of a
// message published to, or delivered from, exchange with routingKey.
func messageAttributes(attrs []attribute.KeyValue, exchange, routingKey string, env *broker.Envelope) []attribute.KeyValue {
	attrs = append(attrs,
		semconv.MessagingSystemRabbitMQ,
		semconv.MessagingDestinationName(exchange), // "" is the default exchange
		semconv.MessagingMessageBodySize(len(env.Body)),
		AttrJobType.String(env.Type),
		AttrAttempt.Int(max(env.Attempt, 1)),
	)
	if routingKey != "" {
		attrs = append(attrs, semconv.MessagingRabbitMQDestinationRoutingKey(routingKey))
	}
	if env.ID != "" {
		attrs = append(attrs, semconv.MessagingMessageID(env.ID))
	}
	// A request without a correlation id of its own is answered under its
	// id (as warren's Caller sends them).
	if conv := env.CorrelationID; conv != "" || env.ReplyTo != "" {
		attrs = append(attrs, semconv.MessagingMessageConversationID(cmp.Or(conv, env.ID)))
	}
	return attrs
}

// spanName is "<operation> <destination>", or the operation alone when
// the destination is the default exchange.
func spanName(operation, destination string) string {
	if destination == "" {
		return operation
	}
	return operation + " " + destination
}

// fail records err on span, with its error.type.
func fail(span trace.Span, err error, errType string) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(semconv.ErrorTypeKey.String(errType))
}

// errorType returns the error.type of a publish's or call's error: a
// small fixed set, as the conventions ask.
func errorType(err error) string {
	var re *broker.RemoteError
	switch {
	case errors.As(err, &re):
		return "remote_error"
	case errors.Is(err, broker.ErrReplyTimeout):
		return "timeout"
	case errors.Is(err, broker.ErrUnroutable):
		return "unroutable"
	case errors.Is(err, broker.ErrNacked):
		return "nacked"
	case errors.Is(err, broker.ErrNoExchange):
		return "no_exchange"
	case errors.Is(err, broker.ErrInvalidJob):
		return "invalid_job"
	case errors.Is(err, broker.ErrClosed), errors.Is(err, broker.ErrDisconnected):
		return "closed"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return semconv.ErrorTypeOther.Value.AsString()
}

// carrier reads and writes a job's trace context for a propagator:
// traceparent and tracestate are the envelope's fields, any other key is
// one of the job's own headers (string values only).
type carrier struct {
	env    *broker.Envelope
	copied bool // env.Headers is this carrier's own copy
}

func (c *carrier) Get(key string) string {
	switch strings.ToLower(key) {
	case broker.HeaderTraceparent:
		return c.env.Traceparent
	case broker.HeaderTracestate:
		return c.env.Tracestate
	}
	switch v := c.env.Headers[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

func (c *carrier) Set(key, value string) {
	switch strings.ToLower(key) {
	case broker.HeaderTraceparent:
		c.env.Traceparent = value
		return
	case broker.HeaderTracestate:
		c.env.Tracestate = value
		return
	}
	if !c.copied {
		// The map may be shared with the delivery or the producer's job.
		c.env.Headers = maps.Clone(c.env.Headers)
		if c.env.Headers == nil {
			c.env.Headers = make(map[string]any, 1)
		}
		c.copied = true
	}
	c.env.Headers[key] = value
}

func (c *carrier) Keys() []string {
	keys := make([]string, 0, 2+len(c.env.Headers))
	if c.env.Traceparent != "" {
		keys = append(keys, broker.HeaderTraceparent)
	}
	if c.env.Tracestate != "" {
		keys = append(keys, broker.HeaderTracestate)
	}
	for k, v := range c.env.Headers {
		switch v.(type) {
		case string, []byte:
			keys = append(keys, k)
		}
	}
	return keys
}
