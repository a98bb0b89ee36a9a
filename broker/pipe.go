package broker

import (
	"context"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"
)

// pipe is the way every message from an envelope goes out, whoever sends
// it (Publisher, Sender, Caller): the app id filled in, the job type's
// route, the observers, the wait for a connection that is not blocked, the
// check that the exchange exists, and the check that the message fits in
// one frame. Only the channel it is written to differs: a confirm channel
// (Sender, and the Publisher built on it) or a Caller's reply channel,
// each with the handling of the broker's returns its outcomes need.
type pipe struct {
	conn    *Conn
	router  Router // nil: every message names its target
	appID   string
	log     zerolog.Logger
	observe publishFunc // the Conn's observers chained; nil when there are none
	known   sync.Map    // exchange name -> struct{}: exchanges seen to exist
}

// inflight is a message on its way: its envelope and target, the
// observers' func for its outcome, and, once sent on a confirm channel, its pending
// confirm.
type inflight struct {
	// The job's id and type, for errors: not its envelope, whose body
	// would stay in memory until the confirm (a PublishBatch of large jobs
	// would hold a window of encoded bodies already written).
	id, jobType string
	target      publishTarget
	pending     *pending
	done        func(error) // the observers', called once with the outcome
}

// begin readies env for t: the app id filled in when empty, t resolved to
// the job type's route unless explicit, and the observers called (as
// kind; confirmed says whether the outcome they will see is a confirm). A
// job type without a route fails without calling the observers.
func (p *pipe) begin(ctx context.Context, kind PublishKind, env *Envelope, t publishTarget, confirmed bool) (*inflight, error) {
	f := &inflight{id: env.ID, jobType: env.Type, target: t}
	if env.AppID == "" {
		env.AppID = p.appID
	}
	if !t.explicit {
		if p.router == nil {
			return nil, f.fail(ErrNoRoute)
		}
		ex, key, ok := p.router.Route(env.Type)
		if !ok {
			return nil, f.fail(ErrNoRoute)
		}
		f.target = publishTarget{exchange: ex, key: key, explicit: true}
	}
	if p.observe != nil {
		_, f.done = p.observe(ctx, PublishInfo{Kind: kind, Exchange: f.target.exchange, RoutingKey: f.target.key, Confirmed: confirmed}, env)
	}
	return f, nil
}

// ready waits for a connection the broker does not block, then makes sure
// the target's exchange exists. Connected and not blocked first: the
// exchange check needs a channel.
func (p *pipe) ready(ctx context.Context, exchange string) error {
	if err := p.conn.waitUnblocked(ctx); err != nil {
		return err
	}
	return p.checkExchange(ctx, exchange)
}

// checkExchange makes sure exchange exists before the first publish to it,
// with a passive declare on a separate channel: a publish to a missing
// exchange would make the broker close the publishing channel and fail every
// other message awaiting its outcome on it.
func (p *pipe) checkExchange(ctx context.Context, exchange string) error {
	if _, ok := p.known.Load(exchange); ok {
		return nil
	}
	d := NewDeclarer(p.conn)
	defer d.Close(context.WithoutCancel(ctx))
	ok, err := d.ExchangeExists(ctx, exchange)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: no exchange %q", ErrNoExchange, exchange)
	}
	p.known.Store(exchange, struct{}{})
	return nil
}

// forgetExchanges makes every exchange checked again before its next use:
// the broker closed a channel, perhaps because one was deleted.
func (p *pipe) forgetExchanges() { p.known.Clear() }

// checkFrame makes sure msg's properties and headers fit in one frame of
// the connection: RabbitMQ would close the whole connection otherwise.
func (p *pipe) checkFrame(msg *amqp.Publishing, id string) error {
	return checkFrame(msg, int(p.conn.frameMax.Load()), id)
}

// settled reports whether f's outcome is in, so that wait returns at once.
func (f *inflight) settled() bool { return len(f.pending.result) > 0 }

// wait returns the outcome of a message sent on a confirm channel.
func (f *inflight) wait(ctx context.Context) error {
	select {
	case err := <-f.pending.result:
		if err != nil {
			return f.fail(err)
		}
		return f.end(nil)
	case <-ctx.Done():
		return f.fail(fmt.Errorf("gave up waiting for the broker's confirm; the job may or may not be stored, publish it again with the same id: %w", ctx.Err()))
	}
}

// fail ends f with err, wrapped in a *PublishError naming the job and its
// target.
func (f *inflight) fail(err error) error {
	return f.end(&PublishError{JobID: f.id, JobType: f.jobType, Exchange: f.target.exchange, RoutingKey: f.target.key, Err: err})
}

// end calls the observers' done func, once, with the outcome, and returns err.
func (f *inflight) end(err error) error {
	if done := f.done; done != nil {
		f.done = nil
		done(err)
	}
	return err
}
