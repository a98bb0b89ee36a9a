package scheduler

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // time zones work in images without a zoneinfo database

	"github.com/robfig/cron/v3"
)

// Schedule is a job published periodically: at the times of a cron
// expression or every interval.
type Schedule struct {
	// Name identifies the schedule across replicas and restarts: its
	// tick ids, its state and its pause marker are keyed by it. Renaming
	// a schedule starts a new one.
	Name string
	// Cron is a cron expression: five fields (minute hour day-of-month
	// month day-of-week), or six with seconds first, or a descriptor
	// (@yearly, @monthly, @weekly, @daily, @hourly), read by
	// github.com/robfig/cron/v3 in TimeZone. Exactly one of Cron and
	// Every is set.
	Cron string
	// Every fires at every multiple of the interval since the Unix epoch
	// (every: 1h fires on the hour, UTC), whole seconds, at least 1s, so
	// that every replica computes the same ticks.
	Every time.Duration
	// TimeZone is an IANA time zone name ("Europe/Paris") for Cron; empty
	// means UTC. Every ignores it.
	TimeZone string
	// Type is the job type of the jobs published.
	Type string
	// Exchange and RoutingKey say where the jobs go. Both empty: the
	// route of Type (see WithRouter). An empty Exchange with a
	// RoutingKey is the default exchange, which routes to the queue of
	// that name.
	Exchange   string
	RoutingKey string
	// Payload is each job's payload, encoded as any job's.
	Payload any
	// CatchUp is how late a tick may be fired: after a failover or a
	// stall, ticks missed within CatchUp before now are fired, in order,
	// and older ones are skipped. Zero fires only ticks late by less
	// than Tolerance (see docs/flow-control.md, "Periodic jobs").
	CatchUp time.Duration
}

// Tolerance is how late a tick may always be fired: a tick whose time
// passed no longer ago than this (or CatchUp, when longer) is fired, an
// older one skipped.
const Tolerance = time.Second

// MaxCatchUp bounds a schedule's CatchUp.
const MaxCatchUp = 7 * 24 * time.Hour

// cronParser reads Cron. topology reads schedules with the same flags.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// plan is a checked Schedule with what computes its ticks.
type plan struct {
	Schedule
	loc  *time.Location
	spec *cron.SpecSchedule // nil for Every
}

// compile checks s and returns its plan; the error says what to change.
func compile(s Schedule) (*plan, error) {
	var problems []string
	switch {
	case s.Name == "":
		problems = append(problems, "Name is empty; name the schedule")
	case len(s.Name) > 200:
		problems = append(problems, fmt.Sprintf("Name is %d bytes; use at most 200", len(s.Name)))
	}
	if s.Type == "" {
		problems = append(problems, "Type is empty; set the job type of the jobs to publish")
	}
	p := &plan{Schedule: s, loc: time.UTC}
	if s.TimeZone != "" {
		loc, err := time.LoadLocation(s.TimeZone)
		if err != nil || s.TimeZone == "Local" {
			problems = append(problems, fmt.Sprintf("time zone %q is unknown; use an IANA name such as Europe/Paris, or UTC", s.TimeZone))
		} else {
			p.loc = loc
		}
	}
	switch {
	case s.Cron != "" && s.Every != 0:
		problems = append(problems, "both Cron and Every are set; keep one")
	case s.Cron == "" && s.Every == 0:
		problems = append(problems, "neither Cron nor Every is set; set one")
	case s.Cron != "":
		spec, err := parseCron(s.Cron)
		if err != nil {
			problems = append(problems, err.Error())
		} else {
			p.spec = spec
			p.spec.Location = p.loc
		}
	default:
		if err := checkEvery(s.Every); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if s.CatchUp < 0 || s.CatchUp > MaxCatchUp {
		problems = append(problems, fmt.Sprintf("CatchUp %s must be from 0 (skip missed ticks) to %s", s.CatchUp, MaxCatchUp))
	}
	if len(problems) > 0 {
		name := s.Name
		if name == "" {
			name = "(unnamed)"
		}
		return nil, &ScheduleError{Name: name, Problems: problems}
	}
	return p, nil
}

// parseCron reads a cron expression, refusing what would not give every
// replica the same ticks.
func parseCron(expr string) (*cron.SpecSchedule, error) {
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, fmt.Errorf("cron %q names its time zone; set the time zone apart (TimeZone, time_zone:)", expr)
	}
	if strings.HasPrefix(expr, "@every") {
		return nil, fmt.Errorf("cron %q: use an interval (Every, every:) instead of @every", expr)
	}
	sched, err := cronParser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("cron %q: %w; write five fields (minute hour day month weekday), six with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly", expr, err)
	}
	spec, ok := sched.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("cron %q is not a calendar expression", expr)
	}
	return spec, nil
}

// checkEvery checks an interval.
func checkEvery(d time.Duration) error {
	switch {
	case d < time.Second:
		return fmt.Errorf("Every %s must be at least 1s", d)
	case d%time.Second != 0:
		return fmt.Errorf("Every %s must be whole seconds", d)
	}
	return nil
}

// next returns the first tick strictly after t, in the schedule's time
// zone; zero when there is none within five years (a cron expression such
// as "0 0 30 2 *" never fires).
func (p *plan) next(t time.Time) time.Time {
	if p.spec == nil {
		e := int64(p.Every)
		n := t.UnixNano()
		q := n / e
		if n < 0 && n%e != 0 {
			q-- // floor for times before 1970
		}
		return time.Unix(0, (q+1)*e).In(p.loc)
	}
	return p.spec.Next(t.In(p.loc))
}

// Next returns the schedule's next n ticks after after, in its time zone.
// An invalid schedule is an error saying what to change.
func (s Schedule) Next(after time.Time, n int) ([]time.Time, error) {
	p, err := compile(s)
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for t := after; len(out) < n; {
		t = p.next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out, nil
}

// Validate checks a set of schedules as New does: each one, and that no
// two share a name. It reports every problem at once.
func Validate(schedules []Schedule) error {
	_, err := compileAll(schedules)
	return err
}

func compileAll(schedules []Schedule) ([]*plan, error) {
	var errs []error
	seen := map[string]bool{}
	plans := make([]*plan, 0, len(schedules))
	for _, s := range schedules {
		p, err := compile(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[s.Name] {
			errs = append(errs, &ScheduleError{Name: s.Name, Problems: []string{"the name is used twice; give each schedule its own"}})
			continue
		}
		seen[s.Name] = true
		plans = append(plans, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return plans, nil
}

// window is how late a tick of p may be fired.
func (p *plan) window() time.Duration { return max(p.CatchUp, Tolerance) }

// maxCounted bounds the skipped ticks counted one by one.
const maxCounted = 100_000

// due returns the ticks of p to fire at now, in order, given that every
// tick up to watermark is settled: the ticks after watermark and up to
// now that are no older than the window. It also returns how many ticks
// it skips as too old (counted up to maxCounted) and the new watermark:
// the last tick fired or skipped, or watermark when none is due.
func (p *plan) due(watermark, now time.Time) (fire []time.Time, skipped int, mark time.Time) {
	mark = watermark
	oldest := now.Add(-p.window())
	t := p.next(watermark)
	for !t.IsZero() && t.Before(oldest) {
		skipped++
		mark = t
		if skipped == maxCounted {
			// Jump to the window: what lies before it is skipped, and
			// counting it one by one could take long.
			for t = p.next(oldest.Add(-time.Nanosecond)); !t.IsZero() && t.Before(oldest); t = p.next(t) {
				mark = t
			}
			break
		}
		t = p.next(t)
	}
	for ; !t.IsZero() && !t.After(now); t = p.next(t) {
		fire = append(fire, t)
		mark = t
	}
	return fire, skipped, mark
}
