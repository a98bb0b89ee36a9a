package warrentest

import (
	"context"
	"testing"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// The state Drain sees between a lost connection and the pool consuming
// again: the broker has put the unacked job back in its queue, and no
// consumer is on that queue. The pool still consumes it, so the kit is
// not idle, whether or not Drain ever saw a consumer there. A queue the
// pool does not consume may hold jobs.
func TestIdleCountsThePoolsQueuesWithoutConsumer(t *testing.T) {
	topo, err := topology.Parse("idle.yaml", []byte(`
version: 1
exchanges: {jobs: {type: direct}}
queues:
  default: {type: classic}
  reports: {type: classic}
bindings:
  - {exchange: jobs, queue: default, routing_key: email.send}
  - {exchange: jobs, queue: reports, routing_key: report.render}
routes: {email.send: {exchange: jobs}, report.render: {exchange: jobs}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		jobType string
		opts    []worker.Option
		want    bool
	}{
		{name: "a job in a queue of the pool", jobType: "email.send", want: false},
		{name: "a job in a queue of the pool named by WithQueue", jobType: "email.send", opts: []worker.Option{worker.WithQueue("default")}, want: false},
		{name: "a job in a queue the pool does not consume", jobType: "report.render", opts: []worker.Option{worker.WithQueue("default")}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kit := New(t, topo)
			if err := kit.Publisher().Publish(context.Background(), broker.Job{Type: tc.jobType, Payload: "x"}); err != nil {
				t.Fatal(err)
			}
			pool, err := worker.NewPool(kit.Conn(), topo, worker.NewMux(), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := kit.idle(pool); got != tc.want {
				t.Errorf("idle with %s (%s): %v, want %v", tc.jobType, kit.describe(), got, tc.want)
			}
		})
	}
}
