package broker

import "context"

// A conversation's correlation id travels through contexts: a job
// published with a ctx that carries one, and with no correlation id of
// its own, takes it (Publisher.Publish and PublishBatch, outbox.Publish).
// A worker pool's handlers run with the correlation id of their job in
// their ctx: its own, else its id. So every job and event a flow leads to
// carries the id of the job that started it, through every service, with
// no code in the handlers but passing their ctx on.
//
// A request is the exception: its correlation id is how its reply is
// matched, its own (Caller.Call, or a job with a ReplyTo), never
// inherited.

type correlationKey struct{}

// ContextWithCorrelationID returns a copy of ctx that carries id as the
// correlation id of the jobs published with it: at a flow's entry point,
// an HTTP request's id, say.
func ContextWithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationIDFromContext returns the correlation id ctx carries, or "".
func CorrelationIDFromContext(ctx context.Context) string {
	s, _ := ctx.Value(correlationKey{}).(string)
	return s
}

// CorrelationKey returns the context key of the correlation id, whose
// value is a string: for a context implementation that answers it
// without a context.WithValue (package worker's handler contexts).
func CorrelationKey() any { return correlationKey{} }

// inheritCorrelation gives job the correlation id of ctx when it has
// none of its own and is not a request.
func inheritCorrelation(ctx context.Context, job *Job) {
	if job.CorrelationID == "" && job.ReplyTo == "" {
		job.CorrelationID = CorrelationIDFromContext(ctx)
	}
}

// InheritCorrelation gives job the correlation id ctx carries
// (ContextWithCorrelationID) when it has none of its own and is not a
// request: what Publisher.Publish does, for code that builds envelopes
// itself (package outbox).
func InheritCorrelation(ctx context.Context, job *Job) { inheritCorrelation(ctx, job) }
