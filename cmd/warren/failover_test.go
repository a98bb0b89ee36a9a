package main

import (
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/topology"
)

func TestFailoverWarning(t *testing.T) {
	parse := func(text string) *topology.Topology {
		t.Helper()
		topo, err := topology.Parse("t.yaml", []byte("version: 1\n"+text))
		if err != nil {
			t.Fatal(err)
		}
		return topo
	}
	quorumCascade := parse("queues: {a: {type: classic}}\n")
	classicCascade := parse("delay: {queue_type: classic}\nqueues: {a: {type: classic}}\n")
	for _, tc := range []struct {
		name    string
		topo    *topology.Topology
		nodes   int
		timeout time.Duration
		want    []string // in the warning; nil: no warning
	}{
		{"cluster, timeout unknown", quorumCascade, 3, 0,
			[]string{"3m0s by default", "rabbitmqctl eval 'application:get_env(rabbit, dead_letter_worker_publisher_confirm_timeout).'", "{dead_letter_worker_publisher_confirm_timeout, 5000}", "--dead-letter-confirm-timeout 5s"}},
		{"cluster size unknown", quorumCascade, 0, 0, []string{"3m0s by default"}},
		{"cluster, RabbitMQ's default", quorumCascade, 3, 3 * time.Minute, []string{"up to 3m0s later", "advanced.config"}},
		{"cluster, 30 s", quorumCascade, 3, 30 * time.Second, []string{"up to 30s later"}},
		{"cluster, the advised 5 s", quorumCascade, 3, 5 * time.Second, nil},
		{"cluster, 10 s", quorumCascade, 3, 10 * time.Second, nil},
		{"single node: no failover", quorumCascade, 1, 0, nil},
		{"classic cascade: no dead-letter worker", classicCascade, 3, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := failoverWarning(tc.topo, tc.nodes, tc.timeout)
			if tc.want == nil {
				if got != "" {
					t.Errorf("warning %q, want none", got)
				}
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("warning lacks %q:\n%s", w, got)
				}
			}
		})
	}
}
