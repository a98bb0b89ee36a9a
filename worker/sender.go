package worker

import (
	"context"

	"github.com/warrenmq/warren/broker"
)

// sender is what settling a delivery publishes through: the retries, dead
// letters, quarantine moves and replies. The pool's is a brokerSender;
// tests fake it.
type sender interface {
	// publish publishes env to exchange with routingKey and returns once
	// the broker confirmed it. kind says why, for the connection's observers
	// (metrics, tracing).
	publish(ctx context.Context, kind broker.PublishKind, env *broker.Envelope, exchange, routingKey string) error
	// reply publishes the reply to request: result on success, else
	// failure. The error wraps broker.ErrInvalidJob when the result cannot
	// be encoded, broker.ErrUnroutable when a reply queue is missing.
	reply(ctx context.Context, request *broker.Envelope, result any, failure *broker.Failure) error
	// send starts publishing env, without waiting for the confirm: many
	// are sent at once at shutdown (see Pool.requeueRest).
	send(ctx context.Context, env *broker.Envelope, exchange, routingKey string) (confirmation, error)
}

// confirmation is a publish's pending confirm.
type confirmation interface {
	// Wait returns nil once the broker has the message.
	Wait(ctx context.Context) error
}

// brokerSender is the sender of a *broker.Sender.
type brokerSender struct{ s *broker.Sender }

func (b brokerSender) publish(ctx context.Context, kind broker.PublishKind, env *broker.Envelope, exchange, routingKey string) error {
	return b.s.Publish(ctx, kind, env, exchange, routingKey)
}

func (b brokerSender) reply(ctx context.Context, request *broker.Envelope, result any, failure *broker.Failure) error {
	return b.s.Reply(ctx, request, result, failure)
}

func (b brokerSender) send(ctx context.Context, env *broker.Envelope, exchange, routingKey string) (confirmation, error) {
	conf, err := b.s.Send(ctx, broker.KindJob, env, exchange, routingKey)
	if err != nil {
		return nil, err // not a typed nil in an interface
	}
	return conf, nil
}
