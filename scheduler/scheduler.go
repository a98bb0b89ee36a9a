package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
	"github.com/warrenmq/warren/topology"
)

// Scheduler fires schedules: while it leads (see package doc), it
// publishes each schedule's job at every tick, confirmed, with a job id
// derived from the schedule's name and the tick, so that a tick fired
// twice is the same job twice.
type Scheduler struct {
	conn    *broker.Conn
	plans   []*plan
	o       options
	sender  *broker.Sender
	leading atomic.Bool
	running atomic.Bool

	// pauses caches the pause markers; used by Run's goroutine only.
	pauses map[string]pauseReading
}

type pauseReading struct {
	paused bool
	at     time.Time
}

// New checks the schedules and returns a Scheduler publishing on conn.
// Every problem is reported at once: a bad cron expression or interval,
// an unknown time zone, a missing job type, two schedules of one name, a
// schedule without a target and no router for its type.
func New(conn *broker.Conn, schedules []Schedule, opts ...Option) (*Scheduler, error) {
	if conn == nil {
		return nil, errors.New("scheduler: nil connection")
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	plans, err := compileAll(schedules)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, p := range plans {
		if p.Exchange != "" || p.RoutingKey != "" {
			continue
		}
		if o.router == nil {
			errs = append(errs, &ScheduleError{Name: p.Name, Problems: []string{"no Exchange or RoutingKey; set them, or give WithRouter to route the job type"}})
			continue
		}
		x, key, ok := o.router.Route(p.Type)
		if !ok {
			errs = append(errs, &ScheduleError{Name: p.Name, Problems: []string{fmt.Sprintf("job type %q has no route; add it to the topology's routes or set Exchange and RoutingKey", p.Type)}})
			continue
		}
		p.Exchange, p.RoutingKey = x, key
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sender, err := broker.NewSender(conn, broker.WithPublisherLogger(o.log))
	if err != nil {
		return nil, err
	}
	return &Scheduler{conn: conn, plans: plans, o: o, sender: sender, pauses: map[string]pauseReading{}}, nil
}

// Leading reports whether this scheduler leads: it holds the lease and
// fires the ticks.
func (s *Scheduler) Leading() bool { return s.leading.Load() }

// Status says, for the daemon's /readyz, whether the scheduler leads:
// "leading" or "standby".
func (s *Scheduler) Status() string {
	if s.Leading() {
		return "leading"
	}
	return "standby"
}

// Schedules returns the schedules, each with its target resolved.
func (s *Scheduler) Schedules() []Schedule {
	out := make([]Schedule, len(s.plans))
	for i, p := range s.plans {
		out[i] = p.Schedule
	}
	return out
}

func (s *Scheduler) setLeading(v bool) {
	if s.leading.Swap(v) != v && s.o.observer != nil {
		s.o.observer.SchedulerLeading(v)
	}
}

// JobID returns the id of the job of a schedule's tick: a UUIDv5 of the
// schedule's name and the tick in UTC, RFC 3339 with nanoseconds. Every
// replica derives the same id, so consumers drop a tick fired twice by
// de-duplicating on the job id.
func JobID(schedule string, tick time.Time) string {
	return uuid.NewSHA1(namespace, []byte(schedule+"\n"+tick.UTC().Format(time.RFC3339Nano))).String()
}

// namespace is the UUIDv5 namespace of tick job ids.
var namespace = uuid.MustParse("5e1d7c8a-2f0b-5c55-9a5e-7761727265e6")

// Run takes part in the election and, while it leads, fires the ticks.
// It blocks until ctx ends and returns nil then; a lost connection or
// lease is logged and Run consumes the lease queue again after the retry
// delay. It returns an error only when it cannot go on: the lease queue
// exists with other attributes. Run may be called once.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("scheduler: Run called twice")
	}
	defer s.sender.Close(context.WithoutCancel(ctx))
	for {
		err := s.session(ctx)
		s.setLeading(false)
		if ctx.Err() != nil {
			return nil
		}
		var conflict *topology.ConflictError
		if errors.As(err, &conflict) {
			return fmt.Errorf("scheduler: lease queue: %w", err)
		}
		s.o.log.Warn().Err(err).Str(logfield.Queue, s.o.queue).Dur(logfield.RetryIn, s.o.retry).Msg("scheduler: lost the lease queue")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.o.retry):
		}
	}
}

// leaseQueue is the lease queue as declared: quorum, so the token survives
// the loss of a node, and with a single active consumer, so that one
// consumer at a time receives it.
func leaseQueue(name string) topology.Queue {
	return topology.Queue{Name: name, Type: topology.Quorum, Durable: true, Args: topology.Table{
		"x-queue-type":             topology.Quorum,
		"x-single-active-consumer": true,
	}}
}

// held is a token delivery held unacknowledged, with its state.
type held struct {
	d  *broker.Delivery
	st state
}

// session consumes the lease queue until ctx ends or the consumer is lost,
// leading while it holds a token.
//
// Shutdown order: the firing stops first (sctx is cancelled, so a publish
// under way is abandoned), then the reader goroutines are waited for, then
// the consumer is cancelled and its channel closed: the tokens held go
// back to the queue, unacknowledged, for the next leader.
func (s *Scheduler) session(ctx context.Context) (err error) {
	d := broker.NewDeclarer(s.conn)
	defer d.Close(context.WithoutCancel(ctx))
	if err := d.DeclareQueue(ctx, leaseQueue(s.o.queue)); err != nil {
		return err
	}
	cons, err := broker.Consume(ctx, s.conn, s.o.queue, broker.WithPrefetch(2),
		broker.WithAckBatch(1, time.Millisecond), broker.WithConsumerLogger(s.o.log))
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer ccancel()
		_ = cons.Cancel(cctx)
		_ = cons.Close(cctx)
	}()
	// Unbuffered: the loop below takes each token as it comes, and a
	// token left in the reader when the session ends is returned to the
	// queue with the channel.
	deliveries := make(chan *broker.Delivery)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(deliveries)
		for {
			dl, ok := cons.Next(sctx)
			if !ok {
				return
			}
			select {
			case deliveries <- dl:
			case <-sctx.Done():
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		select {
		case <-cons.Done(): // lost: stop firing at once
			cancel()
		case <-sctx.Done():
		}
	}()

	if err := s.seedToken(sctx, d); err != nil {
		return err
	}
	check := time.NewTicker(s.o.tokenCheck)
	defer check.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	st := state{}
	var tokens []held
	leading := false
	for {
		var wake <-chan time.Time
		if leading {
			if next := s.nextTick(st); !next.IsZero() {
				timer.Reset(time.Until(next))
				wake = timer.C
			}
		}
		select {
		case <-sctx.Done():
			if ctx.Err() != nil {
				return nil
			}
			return cmpErr(cons.Err(), errLostLease)
		case dl, ok := <-deliveries:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return cmpErr(cons.Err(), errLostLease)
			}
			tok, terr := readToken(dl.Envelope)
			if dl.Err != nil {
				terr = dl.Err
			}
			if terr != nil {
				s.o.log.Warn().Err(terr).Str(logfield.Queue, s.o.queue).Msg("scheduler: a message in the lease queue is not a token; taken as an empty one")
				tok = state{}
			}
			st = st.merge(tok)
			tokens = append(tokens, held{dl, tok})
			if !leading {
				leading = true
				now := time.Now()
				for _, p := range s.plans {
					if _, ok := st[p.Name]; !ok {
						st[p.Name] = now // a new schedule starts now
					}
				}
				if st, err = s.fireDue(sctx, d, st, now); err != nil {
					return err
				}
				if tokens, err = s.commit(sctx, st, tokens); err != nil {
					return err
				}
				// Leading is reported once the takeover is committed: the
				// token in the queue has every watermark.
				s.setLeading(true)
				s.o.log.Info().Str(logfield.Queue, s.o.queue).Msg("scheduler: leading")
				continue
			}
			if tokens, err = s.settleTokens(sctx, st, tokens); err != nil {
				return err
			}
		case <-wake:
			if st, err = s.fireDue(sctx, d, st, time.Now()); err != nil {
				return err
			}
			if tokens, err = s.commit(sctx, st, tokens); err != nil {
				return err
			}
		case <-check.C:
			if !leading {
				if err := s.seedToken(sctx, d); err != nil {
					return err
				}
			}
		}
	}
}

func cmpErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

// seedToken puts an empty token in the lease queue when it has none
// ready: at the first start, one is needed; when a leader holds the
// token, the extra one reaches it and it keeps one of the two.
func (s *Scheduler) seedToken(ctx context.Context, d *broker.Declarer) error {
	info, err := d.QueueInfo(ctx, s.o.queue)
	if err != nil {
		return err
	}
	if info.Messages > 0 {
		return nil
	}
	return s.publishToken(ctx, state{})
}

func (s *Scheduler) publishToken(ctx context.Context, st state) error {
	env, err := broker.NewEnvelope(st.job())
	if err != nil {
		return err
	}
	if err := s.sender.Publish(ctx, broker.KindJob, env, "", s.o.queue); err != nil {
		return fmt.Errorf("scheduler: publish the lease token: %w", err)
	}
	return nil
}

// commit publishes a token with st, confirmed, then acks the tokens held:
// st covers them all, and the new token reaches this scheduler next.
func (s *Scheduler) commit(ctx context.Context, st state, tokens []held) ([]held, error) {
	if err := s.publishToken(ctx, st); err != nil {
		return tokens, err
	}
	for _, t := range tokens {
		if err := t.d.Ack(); err != nil {
			return nil, fmt.Errorf("scheduler: ack an old token: %w", err)
		}
	}
	return nil, nil
}

// settleTokens keeps one token when several are held: the last one that
// covers st, acking the others; when none does, it commits st.
func (s *Scheduler) settleTokens(ctx context.Context, st state, tokens []held) ([]held, error) {
	if len(tokens) < 2 {
		if len(tokens) == 1 && !tokens[0].st.covers(st) {
			return s.commit(ctx, st, tokens)
		}
		return tokens, nil
	}
	keep := -1
	for i, t := range tokens {
		if t.st.covers(st) {
			keep = i
		}
	}
	if keep < 0 {
		return s.commit(ctx, st, tokens)
	}
	for i, t := range tokens {
		if i == keep {
			continue
		}
		if err := t.d.Ack(); err != nil {
			return nil, fmt.Errorf("scheduler: ack an extra token: %w", err)
		}
	}
	return []held{tokens[keep]}, nil
}

// nextTick returns the earliest tick to come of any schedule.
func (s *Scheduler) nextTick(st state) time.Time {
	var first time.Time
	for _, p := range s.plans {
		t := p.next(st[p.Name])
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

// fireDue fires the ticks due at now, schedule by schedule, and returns
// the state with their watermarks moved on. A failed publish ends the
// session: the ticks not yet fired stay due, for this scheduler or the
// next leader.
func (s *Scheduler) fireDue(ctx context.Context, d *broker.Declarer, st state, now time.Time) (state, error) {
	for _, p := range s.plans {
		fire, skipped, mark := p.due(st[p.Name], now)
		if skipped > 0 {
			s.o.log.Warn().Str(logfield.Schedule, p.Name).Int(logfield.Ticks, skipped).Dur(logfield.CatchUp, p.CatchUp).
				Msg("scheduler: skipped ticks older than the schedule's catch-up window")
			s.observe(p.Name, Missed, skipped)
		}
		if len(fire) > 0 && s.paused(ctx, d, p.Name, now) {
			s.o.log.Debug().Str(logfield.Schedule, p.Name).Int(logfield.Ticks, len(fire)).Msg("scheduler: schedule paused; ticks skipped")
			s.observe(p.Name, Paused, len(fire))
			fire = nil
		}
		for _, t := range fire {
			if err := s.publish(ctx, p, t); err != nil {
				return st, err
			}
			st[p.Name] = t
			s.observe(p.Name, Fired, 1)
		}
		if mark.After(st[p.Name]) {
			st[p.Name] = mark
		}
	}
	return st, nil
}

func (s *Scheduler) observe(name string, o Outcome, n int) {
	if s.o.observer != nil {
		s.o.observer.ScheduleTicks(name, o, n)
	}
}

// paused reads the schedule's pause marker, at most PauseRecheck old. A
// marker that cannot be read counts as absent: a failed read does not
// stop work.
func (s *Scheduler) paused(ctx context.Context, d *broker.Declarer, name string, now time.Time) bool {
	if r, ok := s.pauses[name]; ok && now.Sub(r.at) < PauseRecheck && now.Sub(r.at) >= 0 {
		return r.paused
	}
	ok, err := d.QueueExists(ctx, PausedMarker(name))
	if err != nil {
		s.o.log.Warn().Err(err).Str(logfield.Schedule, name).Msg("scheduler: cannot read the pause marker; taken as not paused")
		return false
	}
	s.pauses[name] = pauseReading{paused: ok, at: now}
	return ok
}

// publish publishes the job of one tick, confirmed.
func (s *Scheduler) publish(ctx context.Context, p *plan, tick time.Time) error {
	id := JobID(p.Name, tick)
	env, err := broker.NewEnvelope(broker.Job{ID: id, Type: p.Type, Payload: p.Payload})
	if err != nil {
		return fmt.Errorf("scheduler: schedule %q: %w", p.Name, err)
	}
	if env.Headers == nil {
		env.Headers = map[string]any{}
	}
	env.Headers[broker.HeaderSchedule] = p.Name
	env.Headers[broker.HeaderScheduleTick] = tick.UTC().Format(time.RFC3339Nano)
	if err := s.sender.Publish(ctx, broker.KindJob, env, p.Exchange, p.RoutingKey); err != nil {
		return fmt.Errorf("scheduler: schedule %q, tick %s: %w", p.Name, tick.UTC().Format(time.RFC3339), err)
	}
	s.o.log.Debug().Str(logfield.Schedule, p.Name).Time(logfield.Tick, tick).Str(logfield.JobID, id).Msg("scheduler: fired")
	return nil
}
