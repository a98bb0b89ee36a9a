package topology

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	yaml "go.yaml.in/yaml/v3"
)

// Schedules: periodic jobs, fired by package scheduler. The file says
// when (cron or every, in a time zone), what (job type and payload) and
// where (the job type's route, or an exchange and routing key).

// Schedule is a periodic job as the file declares it, its target
// resolved: Exchange and RoutingKey are the route of JobType unless the
// file names them.
type Schedule struct {
	Name     string
	Cron     string        // empty when Every is set
	Every    time.Duration // zero when Cron is set
	TimeZone string        // IANA name; empty for UTC
	JobType  string
	Exchange string
	// RoutingKey is the file's routing_key, else the route's key (the
	// job type unless the route says otherwise).
	RoutingKey string
	// Payload is the YAML payload as Go values: maps, lists, strings,
	// numbers, booleans; nil when the file sets none.
	Payload any
	// CatchUp is how late a missed tick may still be fired; zero skips
	// missed ticks.
	CatchUp time.Duration
	Pos     Pos
}

// maxScheduleNameLen leaves room for the pause marker's prefix
// ("warren.paused-schedule.") within AMQP's 255 bytes.
const maxScheduleNameLen = 200

// maxCatchUp is the longest catch_up.
const maxCatchUp = 7 * 24 * time.Hour

// cronParser reads cron expressions as package scheduler does: five
// fields, or six with seconds first, or a descriptor.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

type scheduleSpec struct {
	entry
	name       string
	pos        Pos // of the name
	cron       opt[string]
	every      opt[time.Duration]
	timeZone   opt[string]
	jobType    opt[string]
	exchange   opt[string]
	routingKey opt[string]
	payload    opt[any]
	catchUp    opt[time.Duration]
}

type scheduleField func(d *decoder, s *scheduleSpec, key, val *yaml.Node)

var scheduleFields = map[string]scheduleField{
	"cron": func(d *decoder, s *scheduleSpec, _, v *yaml.Node) {
		s.cron = d.str("cron", v)
		if s.cron.set {
			if err := checkCron(s.cron.v); err != "" {
				d.p.add(s.cron.pos, "write five fields (minute hour day month weekday), six with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly",
					"cron %q %s", s.cron.v, err)
				s.cron = bad[string](s.cron.pos)
			}
		}
	},
	"every": func(d *decoder, s *scheduleSpec, _, v *yaml.Node) {
		o := d.duration("every", v)
		if o.set && (o.v < time.Second || o.v%time.Second != 0) {
			d.p.add(o.pos, "write whole seconds, at least 1s, e.g. 30s, 5m, 1h", "every %s is not a whole number of seconds of at least 1s", v.Value)
			o = bad[time.Duration](o.pos)
		}
		s.every = o
	},
	"time_zone": func(d *decoder, s *scheduleSpec, _, v *yaml.Node) {
		s.timeZone = d.str("time_zone", v)
		if s.timeZone.set {
			if _, err := time.LoadLocation(s.timeZone.v); err != nil || s.timeZone.v == "Local" || s.timeZone.v == "" {
				d.p.add(s.timeZone.pos, "use an IANA time zone name such as Europe/Paris or America/New_York, or UTC",
					"time zone %q is unknown", s.timeZone.v)
				s.timeZone = bad[string](s.timeZone.pos)
			}
		}
	},
	"type":        func(d *decoder, s *scheduleSpec, _, v *yaml.Node) { s.jobType = d.str("type", v) },
	"exchange":    func(d *decoder, s *scheduleSpec, _, v *yaml.Node) { s.exchange = d.str("exchange", v) },
	"routing_key": func(d *decoder, s *scheduleSpec, _, v *yaml.Node) { s.routingKey = d.str("routing_key", v) },
	"payload": func(d *decoder, s *scheduleSpec, _, v *yaml.Node) {
		var p any
		if err := v.Decode(&p); err != nil {
			d.p.add(d.pos(v), "", "payload: %v", err)
			s.payload = bad[any](d.pos(v))
			return
		}
		s.payload = opt[any]{v: p, set: true, pos: d.pos(v)}
	},
	"catch_up": func(d *decoder, s *scheduleSpec, _, v *yaml.Node) {
		o := d.duration("catch_up", v)
		if o.set && o.v > maxCatchUp {
			d.p.add(o.pos, "", "catch_up %s is longer than %s", v.Value, fmtDuration(maxCatchUp))
			o = bad[time.Duration](o.pos)
		}
		s.catchUp = o
	},
}

// checkCron returns what is wrong with a cron expression, or "".
func checkCron(expr string) string {
	switch {
	case strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ="):
		return "names its time zone; set it with time_zone: instead"
	case strings.HasPrefix(expr, "@every"):
		return "uses @every; write every: instead"
	}
	sched, err := cronParser.Parse(expr)
	if err != nil {
		return "is not a cron expression: " + err.Error()
	}
	if _, ok := sched.(*cron.SpecSchedule); !ok {
		return "is not a calendar expression"
	}
	return ""
}

func decodeSchedule(d *decoder, name string, k, v *yaml.Node) *scheduleSpec {
	s := &scheduleSpec{name: name, pos: d.pos(k)}
	s.entry = d.entry(func() bool {
		return objectOf(d, v, fmt.Sprintf("schedule %q", name), scheduleFields,
			func(f scheduleField, k, v *yaml.Node) { f(d, s, k, v) })
	})
	return s
}

// checkSchedules checks what relates a schedule to the rest of the file.
func (c *checker) checkSchedules() {
	routes := map[string]*routeSpec{}
	for _, r := range c.f.routes {
		routes[r.jobType] = r
	}
	for _, s := range c.f.schedules {
		switch {
		case s.name == "":
			c.p.add(s.pos, "", "schedule name is empty")
		case len(s.name) > maxScheduleNameLen:
			c.p.add(s.pos, "", "schedule name is %d bytes long; use at most %d", len(s.name), maxScheduleNameLen)
		}
		switch {
		case s.cron.present() && s.every.present():
			c.p.add(s.every.pos, "keep one of them", "schedule %q has both cron and every", s.name)
		case !s.cron.present() && !s.every.present() && !s.unsure("cron", "every"):
			c.p.add(s.pos, "add cron: (e.g. \"0 3 * * *\") or every: (e.g. 5m)", "schedule %q has no cron or every", s.name)
		}
		if s.every.set && s.timeZone.set {
			c.p.warn(s.timeZone.pos, "remove time_zone: intervals count from the Unix epoch, in UTC",
				"time_zone has no effect on an interval")
		}
		if !s.jobType.present() {
			if !s.unsure("type") {
				c.p.add(s.pos, "add type: with the job type workers dispatch on", "schedule %q has no type", s.name)
			}
		} else if s.jobType.set && (s.jobType.v == "" || len(s.jobType.v) > maxNameLen) {
			c.p.add(s.jobType.pos, "", "job type must be 1 to %d bytes", maxNameLen)
		}
		if len(s.routingKey.v) > maxNameLen {
			c.p.add(s.routingKey.pos, "", "routing key is %d bytes long, RabbitMQ allows at most %d", len(s.routingKey.v), maxNameLen)
		}
		switch {
		case s.exchange.set && s.exchange.v == "":
			// The default exchange routes to the queue the key names.
			if s.routingKey.set {
				c.refQueue(s.routingKey.v, s.routingKey.pos, "queue")
			} else if !s.routingKey.bad && !s.unsure("routing_key") {
				c.p.add(s.exchange.pos, "add routing_key: with the queue's name",
					"schedule %q publishes to the default exchange without a routing_key", s.name)
			}
		case s.exchange.set:
			c.refExchange(s.exchange.v, s.exchange.pos, "exchange")
		case s.exchange.bad || s.unsure("exchange") || !s.jobType.set || c.f.broken.routes:
		case s.routingKey.set:
			c.p.add(s.routingKey.pos, "add exchange: too (\"\" is the default exchange, which routes to the queue named by the key)",
				"schedule %q has a routing_key but no exchange", s.name)
		default:
			if _, ok := routes[s.jobType.v]; !ok {
				c.p.add(s.jobType.pos, "add a route for it under routes:, or give the schedule exchange: and routing_key:",
					"job type %q has no route", s.jobType.v)
			}
		}
	}
}

// deriveSchedules resolves each schedule's target.
func deriveSchedules(t *Topology, f *fileSpec) {
	for _, s := range f.schedules {
		out := Schedule{
			Name:       s.name,
			Cron:       s.cron.v,
			Every:      s.every.v,
			TimeZone:   s.timeZone.v,
			JobType:    s.jobType.v,
			Exchange:   s.exchange.v,
			RoutingKey: s.routingKey.v,
			Payload:    s.payload.v,
			CatchUp:    s.catchUp.v,
			Pos:        s.pos,
		}
		if !s.exchange.set {
			if r, ok := t.Routes[s.jobType.v]; ok {
				out.Exchange, out.RoutingKey = r.Exchange, r.RoutingKey
			}
		}
		t.Schedules = append(t.Schedules, out)
	}
}
