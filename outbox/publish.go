package outbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/warrenmq/warren/broker"
)

// PublishOption configures one Publish. Options can fail: a bad value is
// an error from Publish, and nothing is written.
type PublishOption func(*publishOptions) error

type publishOptions struct {
	exchange, key string
	explicit      bool
	router        broker.Router
	orderingKey   *string
	marks         []broker.PublishOption
}

// Marks marks the job as the broker options given would: broker.UniqueKey,
// broker.RoutingSlip (a chain started in a transaction), broker.BatchMember
// (package batch), broker.AsCloudEvent (a domain event CloudEvents tooling
// reads). Options that route or schedule the job (broker.To, At,
// In), and broker.Expire (the relay publishes later), are refused.
func Marks(opts ...broker.PublishOption) PublishOption {
	return func(o *publishOptions) error {
		o.marks = append(o.marks, opts...)
		return nil
	}
}

// To sends the job to exchange with routingKey; the empty exchange is the
// default exchange, which routes by queue name. It wins over a Router.
func To(exchange, routingKey string) PublishOption {
	return func(o *publishOptions) error {
		if len(exchange) > 255 || len(routingKey) > 255 {
			return errors.New("outbox: To: exchange names and routing keys are at most 255 bytes")
		}
		o.exchange, o.key, o.explicit = exchange, routingKey, true
		return nil
	}
}

// Router routes the job by its type, as broker.WithRouter does for a
// Publisher; *topology.Topology is a broker.Router. The route is resolved
// now, when the row is written: the relay sends the job where the
// topology said at that moment.
func Router(r broker.Router) PublishOption {
	return func(o *publishOptions) error {
		if r == nil {
			return errors.New("outbox: Router: nil router")
		}
		o.router = r
		return nil
	}
}

// OrderingKey makes the job one of a sequence: the jobs of one key (an
// aggregate's id, say) are published in the order of their rows, each
// only once the one before it is confirmed, whatever the number of
// relays. A job that fails to publish holds back the later jobs of its
// key until it is sent. Jobs without a key are sent in any order, in
// parallel.
func OrderingKey(key string) PublishOption {
	return func(o *publishOptions) error {
		if key == "" {
			return errors.New("outbox: OrderingKey: empty key; leave the option out for a job without order")
		}
		o.orderingKey = &key
		return nil
	}
}

// Publish writes job into the outbox in tx, the caller's transaction: the
// job is published to RabbitMQ by a Relay once, and only if, tx commits.
// The job is validated and encoded now, as broker.NewEnvelope does (an id
// generated when it has none — set job.ID with broker.NewJobID first to
// know it), and the row keeps the message exactly: every time the relay
// sends it, it is the same message with the same id, so a consumer can
// de-duplicate on the id.
//
// Like Publisher.Publish, a job without a correlation id (and not a
// request) takes the one ctx carries, and the job takes ctx's trace
// context when OpenTelemetry is configured: the relay's publish continues
// the writer's conversation and trace.
//
// Where the job goes is To, else the Router's route for its type; neither
// is an error wrapping ErrNoRoute. Scheduling (broker.At, broker.In) is
// not supported: the relay publishes at once.
//
// The insert is one statement; the table's trigger notifies the listening
// relays at commit.
func Publish(ctx context.Context, tx pgx.Tx, job broker.Job, opts ...PublishOption) error {
	var o publishOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return err
		}
	}
	if !o.explicit {
		if o.router == nil {
			return fmt.Errorf("outbox: publish %s: %w", job.Type, ErrNoRoute)
		}
		ex, key, ok := o.router.Route(job.Type)
		if !ok {
			return fmt.Errorf("outbox: publish %s: %w", job.Type, ErrNoRoute)
		}
		o.exchange, o.key = ex, key
	}
	broker.InheritCorrelation(ctx, &job)
	env, err := broker.NewEnvelope(job)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if len(o.marks) > 0 {
		if err := broker.MarkEnvelope(env, o.marks...); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		if env.Expiration != "" {
			return fmt.Errorf("outbox: %w: broker.Expire: the relay publishes the job later, and its time to live would start then", broker.ErrInvalidOption)
		}
	}
	if env.Traceparent == "" {
		// The trace of ctx (the handler's, the request's) goes on when the
		// relay publishes the row: the relay's publish span, and what
		// follows, are its children. Without OpenTelemetry configured
		// (otel.SetTextMapPropagator), nothing is written.
		c := propagation.MapCarrier{}
		otel.GetTextMapPropagator().Inject(ctx, c)
		env.Traceparent, env.Tracestate = c[broker.HeaderTraceparent], c[broker.HeaderTracestate]
	}
	msg := env.Message()
	var headers []byte
	if msg.Headers != nil {
		if headers, err = msg.Headers.MarshalJSON(); err != nil {
			return fmt.Errorf("outbox: job %s: headers: %w", env.ID, err)
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO warren_outbox
		(job_id, job_type, exchange, routing_key, ordering_key, priority, correlation_id, reply_to, job_timestamp, headers, body)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		msg.MessageID, msg.Type, o.exchange, o.key, o.orderingKey, int16(msg.Priority), msg.CorrelationID, msg.ReplyTo,
		msg.Timestamp, jsonText(headers), msg.Body)
	if err != nil {
		return fmt.Errorf("outbox: publish %s %s: %w", env.Type, env.ID, tableErr(err))
	}
	return nil
}

// jsonText is b as a json parameter: NULL when empty.
func jsonText(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// tableErr turns PostgreSQL's "relation does not exist" for the outbox's
// table into ErrNoTable.
func tableErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table
		return fmt.Errorf("%w (%w)", ErrNoTable, err)
	}
	return err
}
