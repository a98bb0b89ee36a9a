package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TLSConfigOf returns the TLS configuration an amqps connection dialled
// with opts is given, as Dial builds it.
func TLSConfigOf(opts ...Option) (*tls.Config, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return clientTLS(o.tls), nil
}

// FromDelivery reads the envelope of a delivery as a Consumer does.
func FromDelivery(d *amqp.Delivery) (*Envelope, error) {
	if d == nil {
		return nil, fmt.Errorf("%w: nil delivery", ErrMalformedEnvelope)
	}
	m := messageOf(d)
	return fromMessage(&m)
}

// FromReturn reads the envelope of a returned message as FromDelivery
// does.
func FromReturn(r *amqp.Return) (*Envelope, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil return", ErrMalformedEnvelope)
	}
	m := messageOfReturn(r)
	return fromMessage(&m)
}

// Publishing is the message amqp091-go sends for e.
func (e *Envelope) Publishing() amqp.Publishing { return e.publishing() }

// WireTable is a Table as amqp091-go sends it.
func WireTable(t Table) amqp.Table { return wireTable(t) }

// TableOf is a table amqp091-go read, in warren's types.
func TableOf(t amqp.Table) Table { return tableOf(t) }

// NewEnvelopeAt is NewEnvelope with the clock at now.
var NewEnvelopeAt = newEnvelope

// NewReplyAt is NewReply with the clock at now.
var NewReplyAt = newReply

// ReplyAt is Reply with the clock at now.
func (s *Sender) ReplyAt(ctx context.Context, request *Envelope, result any, failure *Failure, now time.Time) error {
	return s.reply(ctx, request, result, failure, now)
}

// ClientPropertiesOf returns the client properties Dial would send with
// opts.
func ClientPropertiesOf(opts ...Option) (amqp.Table, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return clientProperties(o.props), nil
}
