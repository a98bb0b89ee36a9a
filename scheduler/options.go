package scheduler

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
)

// DefaultLeaseQueue is the queue whose single active consumer leads: the
// one scheduler that fires ticks.
const DefaultLeaseQueue = "warren.scheduler"

// PauseRecheck is how old the leader's reading of a schedule's pause
// marker may be when it fires a tick.
const PauseRecheck = time.Second

// Option configures New. Options can fail: a bad value is an error from
// New.
type Option func(*options) error

type options struct {
	log        zerolog.Logger
	router     broker.Router
	queue      string
	observer   Observer
	retry      time.Duration
	tokenCheck time.Duration
}

func defaultOptions() options {
	return options{
		log:        zerolog.Nop(),
		queue:      DefaultLeaseQueue,
		retry:      time.Second,
		tokenCheck: 30 * time.Second,
	}
}

// WithLogger sets the scheduler's logger (default: none). Ticks are
// logged at Debug, leadership changes and skipped ticks at Info and Warn.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}

// WithRouter routes the jobs of schedules that name no Exchange and no
// RoutingKey by their Type; *topology.Topology is a Router.
func WithRouter(r broker.Router) Option {
	return func(o *options) error {
		if r == nil {
			return errors.New("scheduler: WithRouter: nil router")
		}
		o.router = r
		return nil
	}
}

// WithLeaseQueue sets the lease queue (default DefaultLeaseQueue). The
// schedulers that share it elect one leader among them; give each set of
// schedulers that fire different schedules a queue of its own, or a
// leader would fire only the schedules it knows.
func WithLeaseQueue(name string) Option {
	return func(o *options) error {
		if name == "" || len(name) > 255 {
			return fmt.Errorf("scheduler: lease queue name %q must be 1 to 255 bytes", name)
		}
		o.queue = name
		return nil
	}
}

// WithObserver tells o of leadership changes and of every tick's outcome;
// *metrics.Metrics is one.
func WithObserver(obs Observer) Option {
	return func(o *options) error {
		if obs == nil {
			return errors.New("scheduler: WithObserver: nil observer")
		}
		o.observer = obs
		return nil
	}
}

// WithRetryDelay sets how long Run waits before consuming the lease queue
// again after it lost it (default 1s).
func WithRetryDelay(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("scheduler: retry delay %s must be above 0", d)
		}
		o.retry = d
		return nil
	}
}

// Outcome is what became of a tick.
type Outcome string

// Outcomes of ticks.
const (
	// Fired: the tick's job was published and confirmed.
	Fired Outcome = "fired"
	// Missed: the tick was older than its schedule's window when the
	// leader came to it (after a failover or a stall), and was skipped.
	Missed Outcome = "missed"
	// Paused: the schedule was paused at the tick; it was skipped.
	Paused Outcome = "paused"
)

// Observer hears what a scheduler does. Its methods are called from the
// scheduler's goroutine and must not block.
type Observer interface {
	// SchedulerLeading says whether this scheduler leads.
	SchedulerLeading(leading bool)
	// ScheduleTicks counts n ticks of a schedule with an outcome.
	ScheduleTicks(schedule string, outcome Outcome, n int)
}
