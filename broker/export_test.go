package broker

import (
	"context"
	"crypto/tls"
	"time"
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

// NewEnvelopeAt is NewEnvelope with the clock at now.
var NewEnvelopeAt = newEnvelope

// NewReplyAt is NewReply with the clock at now.
var NewReplyAt = newReply

// ReplyAt is Reply with the clock at now.
func (s *Sender) ReplyAt(ctx context.Context, request *Envelope, result any, failure *Failure, now time.Time) error {
	return s.reply(ctx, request, result, failure, now)
}
