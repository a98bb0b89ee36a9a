package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/mgmt"
)

// The queue page's chart: the last chartAge of rates, a point every
// chartStep.
const (
	chartAge  = 10 * time.Minute
	chartStep = 10 * time.Second
)

type queueData struct {
	Q        *mgmt.QueueDetail
	DLQ      string // its .dlq, when the broker has one
	Args     string
	Policy   string
	Chart    chart
	Declared bool
	Paused   bool // warren queue pause: its marker queue exists
}

func (s *Server) queuePage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q, err := s.mgmt.QueueDetail(r.Context(), name, chartAge, chartStep)
	if err != nil {
		var se *mgmt.StatusError
		if errors.As(err, &se) && se.Status == http.StatusNotFound {
			s.fail(w, r, http.StatusNotFound, fmt.Errorf("no queue %q on vhost %s: is it declared (warren topology apply)?", name, s.mgmt.Vhost()))
			return
		}
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	d := queueData{Q: q, Args: argsString(q.Arguments), Policy: argsString(q.EffectivePolicy)}
	if _, err := s.mgmt.QueueDetail(r.Context(), broker.PausedMarker(name), 0, chartStep); err == nil {
		d.Paused = true
	}
	if !strings.HasSuffix(name, ".dlq") {
		if _, err := s.mgmt.QueueDetail(r.Context(), name+".dlq", 0, chartStep); err == nil {
			d.DLQ = name + ".dlq"
		}
	}
	var lines []series
	if st := q.MessageStats; st != nil {
		lines = []series{
			{Name: "publish", Class: "s-publish", samples: samplesOf(st.PublishDetails)},
			{Name: "deliver", Class: "s-deliver", samples: samplesOf(st.DeliverGetDetails)},
			{Name: "ack", Class: "s-ack", samples: samplesOf(st.AckDetails)},
		}
	}
	d.Chart = drawChart(lines)
	s.render(w, r, http.StatusOK, "queue", "Queue "+name, d)
}

// queuePause pauses or resumes a queue for every worker (as warren queue
// pause does), then shows its page again.
func (s *Server) queuePause(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	if action != "pause" && action != "resume" {
		s.fail(w, r, http.StatusNotFound, fmt.Errorf("no action %q: pause or resume", action))
		return
	}
	if _, err := s.mgmt.QueueDetail(r.Context(), name, 0, chartStep); err != nil {
		var se *mgmt.StatusError
		if errors.As(err, &se) && se.Status == http.StatusNotFound {
			s.fail(w, r, http.StatusNotFound, fmt.Errorf("no queue %q on vhost %s", name, s.mgmt.Vhost()))
			return
		}
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	conn, err := s.dial(r)
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	if err := broker.SetPaused(r.Context(), conn, name, action == "pause"); err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	s.opts.Logger.Info().Str("queue", name).Str("action", action).Msg("dashboard: queue " + action + "d")
	http.Redirect(w, r, s.opts.Prefix+"/queues/"+url.PathEscape(name), http.StatusSeeOther)
}

func samplesOf(r *mgmt.Rate) []mgmt.Sample {
	if r == nil {
		return nil
	}
	return r.Samples
}

func argsString(m map[string]any) string {
	t := make(map[string]any, len(m))
	for k, v := range m {
		t[k] = v
	}
	return tableString(t)
}

// series is one line of a chart: a counter's samples, drawn as rates.
type series struct {
	Name    string
	Class   string
	Points  string // the SVG polyline's points
	Last    float64
	samples []mgmt.Sample
}

// chart is an inline SVG line chart of rates per second.
type chart struct {
	Width, Height int
	Series        []series
	Max           float64 // the rate at the top
	Span          string  // the time it covers, e.g. "10m0s"
	Empty         bool
}

// drawChart turns counters' samples (newest first, as the management API
// sends them) into rates between successive samples, scaled to the chart.
func drawChart(in []series) chart {
	c := chart{Width: 600, Height: 160, Empty: true}
	type pt struct {
		t    int64
		rate float64
	}
	rates := make([][]pt, len(in))
	var first, last int64
	seen := false
	for i, s := range in {
		for j := len(s.samples) - 1; j > 0; j-- {
			a, b := s.samples[j], s.samples[j-1] // older, newer
			dt := float64(b.Timestamp-a.Timestamp) / 1000
			if dt <= 0 {
				continue
			}
			r := max(0, float64(b.Sample-a.Sample)/dt)
			rates[i] = append(rates[i], pt{b.Timestamp, r})
			c.Max = max(c.Max, r)
			if !seen || a.Timestamp < first {
				first, seen = a.Timestamp, true
			}
			last = max(last, b.Timestamp)
		}
	}
	if last <= first {
		return c
	}
	c.Empty = false
	if c.Max == 0 {
		c.Max = 1
	}
	c.Span = (time.Duration(last-first) * time.Millisecond).String()
	for i, s := range in {
		var b strings.Builder
		for j, p := range rates[i] {
			if j > 0 {
				b.WriteByte(' ')
			}
			x := float64(p.t-first) / float64(last-first) * float64(c.Width)
			y := float64(c.Height) - p.rate/c.Max*float64(c.Height-10)
			b.WriteString(strconv.FormatFloat(x, 'f', 1, 64) + "," + strconv.FormatFloat(y, 'f', 1, 64))
		}
		s.Points = b.String()
		if n := len(rates[i]); n > 0 {
			s.Last = rates[i][n-1].rate
		}
		c.Series = append(c.Series, s)
	}
	return c
}
