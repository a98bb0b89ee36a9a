package main

import (
	"fmt"
	"time"

	"github.com/warrenmq/warren/topology"
)

// RabbitMQ's dead_letter_worker_publisher_confirm_timeout (3.x and 4.x):
// how long the at-least-once dead-letter worker of a quorum queue waits
// for the confirm of a message it moved (a retry leaving a level of the
// delay cascade) before it sends it again. After a leader failover the
// moves the old leader had started are confirmed to nobody, so they wait
// that long: retries run up to this much later than their delay.
const (
	brokerConfirmTimeoutDefault = 180 * time.Second
	// confirmTimeoutAdvised is what docs/reliability.md recommends.
	confirmTimeoutAdvised = 5 * time.Second
	// confirmTimeoutQuiet is the longest value plan accepts without a
	// warning.
	confirmTimeoutQuiet = 10 * time.Second
)

// failoverWarning returns what plan warns about a topology whose quorum
// queues dead-letter at-least-once (the quorum delay cascade does) on a
// broker of nodes nodes (0: unknown), whose confirm timeout the operator
// said is timeout (0: not said; the management API does not show it). It
// returns "" when a leader failover cannot make a retry late by more than
// confirmTimeoutQuiet.
func failoverWarning(t *topology.Topology, nodes int, timeout time.Duration) string {
	if nodes == 1 || !deadLettersAtLeastOnce(t) {
		return ""
	}
	set := fmt.Sprintf("set it to %d in advanced.config, [{rabbit, [{dead_letter_worker_publisher_confirm_timeout, %d}]}], on every node (rabbitmq.conf has no key for it) and pass --dead-letter-confirm-timeout %v; see docs/reliability.md, \"Retries across a leader failover\"",
		confirmTimeoutAdvised.Milliseconds(), confirmTimeoutAdvised.Milliseconds(), confirmTimeoutAdvised)
	switch {
	case timeout == 0:
		return fmt.Sprintf("after a quorum queue's leader fails over, a retry waiting in the delay cascade can run up to the broker's dead_letter_worker_publisher_confirm_timeout later than its delay: %v by default. The management API does not show the setting: read it on a node with `rabbitmqctl eval 'application:get_env(rabbit, dead_letter_worker_publisher_confirm_timeout).'` (milliseconds; undefined: the default) and %s",
			brokerConfirmTimeoutDefault, set)
	case timeout > confirmTimeoutQuiet:
		return fmt.Sprintf("after a quorum queue's leader fails over, a retry waiting in the delay cascade can run up to %v later than its delay (the broker's dead_letter_worker_publisher_confirm_timeout): %s",
			timeout, set)
	}
	return ""
}

// deadLettersAtLeastOnce reports whether a quorum queue of t dead-letters
// with the at-least-once strategy.
func deadLettersAtLeastOnce(t *topology.Topology) bool {
	for _, q := range t.Queues {
		if q.Type == topology.Quorum && q.Args["x-dead-letter-strategy"] == "at-least-once" {
			return true
		}
	}
	return false
}
