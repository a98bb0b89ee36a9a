// A Conn's supervision: the watch on each connection's close and blocked
// notifications, and the loop that dials again when one is lost.

package broker

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/internal/logfield"
)

// watch follows the connection's close and blocked notifications. Its
// goroutine ends when amqp091-go closes the notification channels, which it
// does when the connection shuts down for any reason; s.done is closed then.
func (s *session) watch(log zerolog.Logger) {
	// Buffer 1: amqp091-go sends at most one close error, then closes.
	closed := s.amqp.NotifyClose(make(chan *amqp.Error, 1))
	// Buffer 4: blocked/unblocked arrive rarely; the loop drains them at once.
	blocking := s.amqp.NotifyBlocked(make(chan amqp.Blocking, 4))
	go func() {
		for {
			select {
			case b, ok := <-blocking:
				if !ok {
					blocking = nil
					continue
				}
				s.setBlocked(b, log)
			case err, ok := <-closed:
				if ok && err != nil {
					s.err = &redactedError{msg: "broker: connection to " + s.url + " closed", err: err, secret: s.secret}
				}
				s.setBlocked(amqp.Blocking{Active: false}, log)
				close(s.done)
				// Drain what amqp091-go may still deliver, so its reader
				// never waits on us (blocking is nil once closed: ranging
				// over it would block for ever).
				if blocking != nil {
					for range blocking {
					}
				}
				return
			}
		}
	}()
}

func (s *session) setBlocked(b amqp.Blocking, log zerolog.Logger) {
	s.blockedMu.Lock()
	defer s.blockedMu.Unlock()
	switch {
	case b.Active && s.blocked == nil:
		s.blocked = make(chan struct{})
		log.Warn().Str(logfield.URL, s.url).Str(logfield.Reason, b.Reason).Msg("broker: publishing blocked by the broker (resource alarm)")
	case !b.Active && s.blocked != nil:
		close(s.blocked)
		s.blocked = nil
		log.Info().Str(logfield.URL, s.url).Msg("broker: publishing unblocked")
	}
}

// setSession makes s the current session.
func (c *Conn) setSession(s *session) {
	c.mu.Lock()
	c.sess = s
	c.frameMax.Store(int64(s.amqp.Config.FrameSize))
	close(c.up)
	c.mu.Unlock()
}

// supervise waits for the current session to end and dials again, until
// Close (or at once, closing the Conn for good, without reconnection).
func (c *Conn) supervise() {
	for {
		c.mu.Lock()
		s := c.sess
		c.mu.Unlock()
		select {
		case <-c.stop:
			return
		case <-s.done:
		}
		lost := s.err
		if lost == nil {
			lost = errors.New("broker: connection to " + s.url + " closed")
		}
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return
		}
		c.sess, c.up, c.lastErr = nil, make(chan struct{}), lost
		c.mu.Unlock()
		if !c.opts.reconnect {
			c.opts.log.Warn().Str(logfield.URL, s.url).Err(lost).Msg("broker: connection lost; reconnection is disabled")
			c.finish(lost)
			c.notify(StateChange{State: Closed, URL: s.url, Err: lost, Reconnects: c.reconnects.Load()})
			return
		}
		c.opts.log.Warn().Str(logfield.URL, s.url).Err(lost).Msg("broker: connection lost; reconnecting")
		c.notify(StateChange{State: Disconnected, URL: s.url, Err: lost, Reconnects: c.reconnects.Load()})
		next, ok := c.redial(s.index)
		if !ok {
			return // closed meanwhile
		}
		n := c.reconnects.Add(1)
		c.setSession(next)
		c.opts.log.Info().Str(logfield.URL, next.url).Uint64(logfield.Reconnects, n).Msg("broker: reconnected")
		c.notify(StateChange{State: Connected, URL: next.url, Reconnects: n})
	}
}

// redial tries the URLs in turn, starting after the one lost, with a
// capped exponential backoff between rounds, until one answers or Close.
func (c *Conn) redial(lost int) (*session, bool) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = c.opts.reconnectMin
	b.MaxInterval = c.opts.reconnectMax
	b.MaxElapsedTime = 0 // until Close
	b.Reset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for attempt := 1; ; attempt++ {
		// One URL after another, the lost one last: another node of the
		// cluster is likelier to answer.
		i := (lost + attempt) % len(c.urls)
		s, err := dialOne(ctx, c.urls[i], c.opts)
		if err == nil {
			s.index = i
			c.mu.Lock()
			closing := c.closing
			c.mu.Unlock()
			if closing {
				s.amqp.Close()
				return nil, false
			}
			return s, true
		}
		wait := b.NextBackOff()
		c.opts.log.Warn().Str(logfield.URL, RedactURL(c.urls[i])).Err(err).Int(logfield.Attempt, attempt).Dur(logfield.RetryIn, wait).Msg("broker: reconnection attempt failed")
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(wait):
		}
	}
}

func (c *Conn) notify(ch StateChange) {
	ch.Name = c.opts.name
	for _, o := range c.opts.observers {
		o.Connection(ch)
	}
}

// finish closes the Conn for good.
func (c *Conn) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return
	default:
	}
	c.closeErr = err
	c.closing = true
	close(c.done)
}
