package bench

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/warrenmq/warren/broker"
)

// Workloads a run can measure (Config.Mode).
const (
	// ModeJobs: jobs published with confirms and consumed at the same
	// time, end to end.
	ModeJobs = "jobs"
	// ModeRPC: request-reply calls, each waiting for its reply.
	ModeRPC = "rpc"
)

// What the baselines' messages carry (Config.BaselineWire): the rpc
// baseline's requests any of them, the jobs baselines' jobs WireMinimal or
// WireProps.
const (
	// WireMinimal: a correlation id, reply_to, content type and delivery
	// mode, as a hand-written client sends them.
	WireMinimal = "minimal"
	// WireProps: a job id as message_id (no correlation id), type, app_id
	// and timestamp, as warren's Caller sends them.
	WireProps = "props"
	// WireDeadline: WireProps and the warren-deadline header.
	WireDeadline = "deadline"
	// WireWarren: all that warren's Caller sends (WireDeadline, published
	// mandatory), so that a comparison measures warren's code alone.
	WireWarren = "warren"
)

// wires lists the baseline's wires, each adding to the one before: what
// one part of warren's request contract costs is the difference between
// two runs.
var wires = []string{WireMinimal, WireProps, WireDeadline, WireWarren}

// jobWires lists the wires of the jobs baselines: a job has no deadline
// header, and every implementation publishes mandatory.
var jobWires = []string{WireMinimal, WireProps}

// Queue types a run can use.
const (
	Classic = "classic"
	Quorum  = "quorum"
)

// Defaults of Config's zero values.
const (
	DefaultMode         = ModeJobs
	DefaultJobs         = 50_000
	DefaultCalls        = 20_000
	DefaultCallers      = 1
	DefaultPayloadBytes = 200
	DefaultPrefetch     = 128
	DefaultConcurrency  = 16
	DefaultQueueType    = Classic
	DefaultQueues       = 1
	DefaultURL          = broker.DefaultURL
)

// PublishWindow is how many published jobs may await their confirms at once,
// in both implementations (warren's default batch window).
const PublishWindow = 512

// Bounds checked by Validate.
const (
	// MaxJobs bounds the latency table (8 bytes per job), and so the
	// calls of an rpc run too.
	MaxJobs = 10_000_000
	// MaxPayloadBytes keeps a run's messages small enough to stay in memory.
	MaxPayloadBytes = 1 << 20
	// MaxPrefetch is AMQP's limit: basic.qos carries a 16-bit count.
	MaxPrefetch = 65535
	// MaxConcurrency bounds the handler goroutines, and the callers of an
	// rpc run.
	MaxConcurrency = 10_000
	// MaxQueues bounds the queues of a run: each has its own channel and
	// handlers in every consumer.
	MaxQueues = 100
	// MaxWorkers bounds the consumer processes of a run.
	MaxWorkers = 64
)

// Config describes one run's workload. Every zero value means the default
// named beside it; negative values are errors.
type Config struct {
	// URL is the broker (default DefaultURL).
	URL string `json:"url"`
	// Mode is the workload: ModeJobs (the default) or ModeRPC.
	Mode string `json:"mode"`
	// Jobs is how many jobs are published and consumed (default 50000).
	// ModeJobs only.
	Jobs int `json:"jobs"`
	// Calls is how many calls an rpc run makes (default 20000). ModeRPC
	// only.
	Calls int `json:"calls"`
	// Callers is how many goroutines of an rpc run call at once, on one
	// connection (default 1: one call after another). ModeRPC only.
	Callers int `json:"callers"`
	// PayloadBytes is the approximate size of each MessagePack payload,
	// a job or a request (default 200). The payload holds a sequence
	// number and a timestamp, so it cannot be smaller than MinPayloadBytes.
	PayloadBytes int `json:"payload_bytes"`
	// Prefetch is the consumer's prefetch count (default 128).
	Prefetch int `json:"prefetch"`
	// Concurrency is the number of handler goroutines (default 16).
	Concurrency int `json:"concurrency"`
	// QueueType is Classic (the default) or Quorum.
	QueueType string `json:"queue_type"`
	// Queues is how many queues the jobs are published to, round-robin
	// (default 1). They share one direct exchange, each bound with a
	// routing key of its own; every consumer consumes them all, each
	// queue with Prefetch and Concurrency handlers. ModeJobs only.
	Queues int `json:"queues,omitempty"`
	// Workers is how many consumer processes a run starts (default 0:
	// the run consumes in its own process). Each runs the benchmark's own
	// executable as a worker (ServeWorker) consuming every queue; a run
	// adds their CPU time to its own and reports the peak RSS of the
	// largest. ModeJobs only.
	Workers int `json:"workers,omitempty"`
	// BaselineWire is what the baselines' messages carry besides their
	// body. ModeRPC: what both baselines' requests carry,
	// WireMinimal (the default), WireProps, WireDeadline or WireWarren.
	// ModeJobs: WireMinimal (the default: content type and delivery mode)
	// or WireProps (and the properties warren's Publisher sends with every
	// job: its id as message_id, type, app_id and timestamp). A
	// diagnostic: the targets are judged with the minimal wire.
	BaselineWire string `json:"baseline_wire,omitempty"`
	// BaselineDurable makes the rpc baselines' requests persistent instead
	// of transient: a diagnostic, the like-for-like comparison with a
	// Caller sending durable requests. ModeRPC only.
	BaselineDurable bool `json:"baseline_durable,omitempty"`
	// DirectReplyTo makes warren's Caller receive its replies through
	// direct reply-to instead of an exclusive queue of its own, its default
	// (broker.WithCallDirectReplyTo). The baselines are set by their
	// implementation. ModeRPC only.
	DirectReplyTo bool `json:"direct_reply_to,omitempty"`
	// DurableRequests asks warren's Caller for persistent requests.
	// ModeRPC only.
	DurableRequests bool `json:"durable_requests,omitempty"`
}

func (c *Config) setDefaults() {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	if c.Jobs == 0 {
		c.Jobs = DefaultJobs
	}
	if c.Calls == 0 {
		c.Calls = DefaultCalls
	}
	if c.Callers == 0 {
		c.Callers = DefaultCallers
	}
	if c.PayloadBytes == 0 {
		c.PayloadBytes = DefaultPayloadBytes
	}
	if c.Prefetch == 0 {
		c.Prefetch = DefaultPrefetch
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.QueueType == "" {
		c.QueueType = DefaultQueueType
	}
	if c.Queues == 0 && c.Mode == ModeJobs {
		c.Queues = DefaultQueues
	}
	if c.BaselineWire == "" {
		c.BaselineWire = WireMinimal
	}
}

// WithDefaults returns c with its zero values replaced by the defaults.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

// Validate reports every problem of c (after defaults) at once.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("bench: "+format, args...))
		}
	}
	check(c.Mode == ModeJobs || c.Mode == ModeRPC, "mode %q: want %q or %q", c.Mode, ModeJobs, ModeRPC)
	check(c.Jobs >= 1 && c.Jobs <= MaxJobs, "jobs %d: want 1 to %d", c.Jobs, MaxJobs)
	check(c.Calls >= 1 && c.Calls <= MaxJobs, "calls %d: want 1 to %d", c.Calls, MaxJobs)
	check(c.Callers >= 1 && c.Callers <= MaxConcurrency, "callers %d: want 1 to %d", c.Callers, MaxConcurrency)
	check(c.PayloadBytes >= MinPayloadBytes && c.PayloadBytes <= MaxPayloadBytes,
		"payload bytes %d: want %d to %d (the payload carries a sequence number and a timestamp)", c.PayloadBytes, MinPayloadBytes, MaxPayloadBytes)
	check(c.Prefetch >= 1 && c.Prefetch <= MaxPrefetch, "prefetch %d: want 1 to %d", c.Prefetch, MaxPrefetch)
	check(c.Concurrency >= 1 && c.Concurrency <= MaxConcurrency, "concurrency %d: want 1 to %d", c.Concurrency, MaxConcurrency)
	check(c.QueueType == Classic || c.QueueType == Quorum, "queue type %q: want %q or %q", c.QueueType, Classic, Quorum)
	if c.Mode == ModeJobs {
		check(c.Queues >= 1 && c.Queues <= MaxQueues, "queues %d: want 1 to %d", c.Queues, MaxQueues)
		check(c.Workers >= 0 && c.Workers <= MaxWorkers, "workers %d: want 0 (consume in this process) to %d", c.Workers, MaxWorkers)
	}
	check(c.Queues == 0 || c.Mode == ModeJobs, "queues %d: only with mode %q", c.Queues, ModeJobs)
	check(c.Workers == 0 || c.Mode == ModeJobs, "workers %d: only with mode %q", c.Workers, ModeJobs)
	check(!c.DirectReplyTo || c.Mode == ModeRPC, "direct reply-to: only with mode %q", ModeRPC)
	check(!c.BaselineDurable || c.Mode == ModeRPC, "baseline durable: only with mode %q", ModeRPC)
	check(!c.DurableRequests || c.Mode == ModeRPC, "durable requests: only with mode %q", ModeRPC)
	switch c.Mode {
	case ModeRPC:
		check(slices.Contains(wires, c.BaselineWire), "baseline wire %q: want one of %s, with mode %q", c.BaselineWire, strings.Join(wires, ", "), ModeRPC)
	case ModeJobs:
		check(slices.Contains(jobWires, c.BaselineWire), "baseline wire %q: want one of %s, with mode %q", c.BaselineWire, strings.Join(jobWires, ", "), ModeJobs)
	}
	return errors.Join(errs...)
}
