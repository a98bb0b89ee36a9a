// Package tracing traces jobs with OpenTelemetry, end to end: the trace
// context travels in each job's W3C traceparent and tracestate headers
// (broker.Envelope.Traceparent and Tracestate), and the spans follow the
// OpenTelemetry messaging semantic conventions for RabbitMQ (semconv
// v1.34.0).
//
// tracing only watches: it starts and ends spans around what broker and
// worker tell it, and writes nothing into a job but its trace context
// headers; it never publishes, settles or changes a job's fate, and
// imports no AMQP client. Exporting the spans is the tracer provider's
// job, which the program configures.
//
// A Tracing is a broker.Observer and a worker.Observer: give it to
// broker.Dial, once per connection, and everything built on the
// connection is traced — worker pools use it without being told:
//
//	tr, err := tracing.New(tracing.WithTracerProvider(tp))
//	conn, err := broker.Dial(ctx, urls, broker.WithObserver(tr))
//
// Its spans:
//
//   - a producer span ("publish <exchange>", kind Producer) per message
//     published, its context injected into the message, ended at the
//     broker's confirm;
//   - a client span ("call <exchange>", kind Client) around Caller.Call,
//     its context injected into the request;
//   - a consumer span ("process <queue>", kind Consumer) per delivery a
//     pool takes, a child of the context the job carries, spanning the
//     handler and the job's settlement. The retry, dead letter and reply
//     the pool publishes are its children when the pool's sender's
//     connection has the Tracing too, so one trace follows a job through
//     all its attempts to its reply.
//
// Without a configured tracer provider (otel.SetTracerProvider), the
// spans are no-ops and a job's trace context passes through unchanged;
// jobs without trace context are handled as any other.
//
// See docs/observability.md for the spans and their attributes.
package tracing
