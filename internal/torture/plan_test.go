//go:build torture

package torture_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// behaviour is what a job's handler does, drawn from the seed and carried
// in the job's payload, so that any worker process runs it the same way.
type behaviour string

const (
	succeed   behaviour = "succeed"   // returns nil
	slow      behaviour = "slow"      // sleeps Millis (below the handler timeout), returns nil
	failThen  behaviour = "fail-then" // fails while attempt ≤ K (K < max attempts), then returns nil
	fail      behaviour = "fail"      // always returns an error
	permanent behaviour = "permanent" // returns worker.Permanent(...)
	panics    behaviour = "panic"     // panics in the handler
	timeout   behaviour = "timeout"   // waits for its ctx to end (the handler timeout)
	kill      behaviour = "kill"      // os.Exit: kills the worker process running it
)

const (
	// killExit is the exit status of a worker a kill job ended.
	killExit = 3
	// handlerTimeout is the workers' WithHandlerTimeout: above the
	// slowest slow job, short enough for timeout jobs to end quickly.
	handlerTimeout = 1500 * time.Millisecond
)

// payload is a job's body.
type payload struct {
	B      behaviour `msgpack:"b"`
	K      int       `msgpack:"k,omitempty"`
	Millis int       `msgpack:"ms,omitempty"`
}

// succeeds says whether a job of behaviour b ends handled (else parked).
func (b behaviour) succeeds() bool { return b == succeed || b == slow || b == failThen }

// policy is a route's retry block.
type policy struct {
	MaxAttempts int
	Initial     time.Duration
	Multiplier  float64
	Jitter      float64
}

// jobType is a job type of the generated topology: its route and policy.
type jobType struct {
	Name   string
	Queue  string
	Policy policy
}

// plan is everything a run draws from its seed: the topology and each
// job's type and behaviour.
type plan struct {
	Seed      uint64
	DelayType string // the delay cascade's queue type
	Exchange  string
	Queues    []string // work queues, classic and quorum alternately
	Types     []jobType
	Jobs      []plannedJob
}

type plannedJob struct {
	Type    int // index into plan.Types
	Payload payload
}

// newPlan draws a plan of n jobs from seed; name makes the topology's
// names unique on the broker.
func newPlan(seed uint64, n int, name func(what string) string) *plan {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := &plan{Seed: seed, DelayType: []string{"classic", "quorum"}[r.IntN(2)], Exchange: name("jobs")}
	for i := range 4 {
		p.Queues = append(p.Queues, name(fmt.Sprintf("q%d-%s", i, queueType(i))))
	}
	for i := range 8 {
		p.Types = append(p.Types, jobType{
			Name:  fmt.Sprintf("torture.t%d", i),
			Queue: p.Queues[i%len(p.Queues)],
			Policy: policy{
				MaxAttempts: 2 + r.IntN(4),                                       // 2–5
				Initial:     time.Duration(1000+r.IntN(2001)) * time.Millisecond, // 1–3 s
				Multiplier:  1.5 + float64(r.IntN(6))/10,                         // 1.5–2
				Jitter:      float64(r.IntN(4)) / 10,                             // 0–0.3
			},
		})
	}
	// A few jobs kill their worker: each kills one 1 + crash limit times.
	kills := min(max(2, n/700), n)
	step := max(n/max(kills, 1), 1)
	for i := range n {
		j := plannedJob{Type: r.IntN(len(p.Types))}
		pol := p.Types[j.Type].Policy
		switch x := r.IntN(100); {
		case i%step == step/2 && i/step < kills:
			j.Payload.B = kill
		case x < 40:
			j.Payload.B = succeed
		case x < 50:
			j.Payload = payload{B: slow, Millis: 100 + r.IntN(901)}
		case x < 70:
			j.Payload = payload{B: failThen, K: 1 + r.IntN(pol.MaxAttempts-1)}
		case x < 80:
			j.Payload.B = fail
		case x < 88:
			j.Payload.B = permanent
		case x < 96:
			j.Payload.B = panics
		default:
			j.Payload.B = timeout
		}
		p.Jobs = append(p.Jobs, j)
	}
	return p
}

func queueType(i int) string {
	if i%2 == 0 {
		return "classic"
	}
	return "quorum"
}

// yaml is the plan's topology file.
func (p *plan) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\ndelay: {queue_type: %s}\nexchanges:\n  %s: {type: direct}\nqueues:\n", p.DelayType, p.Exchange)
	for i, q := range p.Queues {
		fmt.Fprintf(&b, "  %s: {type: %s}\n", q, queueType(i))
	}
	b.WriteString("bindings:\n")
	for _, q := range p.Queues {
		var keys []string
		for _, t := range p.Types {
			if t.Queue == q {
				keys = append(keys, t.Name)
			}
		}
		fmt.Fprintf(&b, "  - {exchange: %s, queue: %s, routing_keys: [%s]}\n", p.Exchange, q, strings.Join(keys, ", "))
	}
	b.WriteString("routes:\n")
	for _, t := range p.Types {
		fmt.Fprintf(&b, "  %s: {exchange: %s, retry: {max_attempts: %d, initial_interval: %dms, multiplier: %g, max_interval: 20s, jitter: %g}}\n",
			t.Name, p.Exchange, t.Policy.MaxAttempts, t.Policy.Initial.Milliseconds(), t.Policy.Multiplier, t.Policy.Jitter)
	}
	return b.String()
}

// counts returns how many jobs of each behaviour the plan holds.
func (p *plan) counts() map[behaviour]int {
	m := map[behaviour]int{}
	for _, j := range p.Jobs {
		m[j.Payload.B]++
	}
	return m
}
