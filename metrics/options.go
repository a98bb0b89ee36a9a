package metrics

import (
	"errors"
	"fmt"
)

// Option configures New.
type Option func(*options) error

type options struct {
	jobTypes        []string
	fixedTypes      bool
	maxJobTypes     int
	durationBuckets []float64
	confirmBuckets  []float64
}

// DefaultMaxJobTypes is how many job types label the metrics, without
// WithJobTypes, before the rest are labelled OtherType.
const DefaultMaxJobTypes = 100

// Default histogram buckets, in seconds.
var (
	// DefaultDurationBuckets are those of handler and call durations:
	// 5 ms to 30 min, the default handler timeout's order of magnitude.
	DefaultDurationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}
	// DefaultConfirmBuckets are those of publish confirm latencies: 0.5 ms
	// to 10 s.
	DefaultConfirmBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

func defaultOptions() options {
	return options{
		maxJobTypes:     DefaultMaxJobTypes,
		durationBuckets: DefaultDurationBuckets,
		confirmBuckets:  DefaultConfirmBuckets,
	}
}

// WithJobTypes sets the job types that label the metrics, usually the
// topology's (topology.Topology.JobTypes); their replies ("<type>.reply")
// are included. Any other type is labelled OtherType. It may be given
// several times: the types add up.
func WithJobTypes(types ...string) Option {
	return func(o *options) error {
		for _, t := range types {
			if t == "" {
				return errors.New("metrics: WithJobTypes: empty job type")
			}
		}
		o.jobTypes = append(o.jobTypes, types...)
		o.fixedTypes = true
		return nil
	}
}

// WithMaxJobTypes sets how many distinct job types label the metrics when
// WithJobTypes is not given (default DefaultMaxJobTypes): the first n seen
// label themselves, the rest are labelled OtherType.
func WithMaxJobTypes(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("metrics: max job types %d must be at least 1", n)
		}
		o.maxJobTypes = n
		return nil
	}
}

// WithDurationBuckets sets the buckets, in seconds, of the handler and call
// duration histograms (default DefaultDurationBuckets).
func WithDurationBuckets(buckets ...float64) Option {
	return func(o *options) error {
		if err := checkBuckets(buckets); err != nil {
			return fmt.Errorf("metrics: WithDurationBuckets: %w", err)
		}
		o.durationBuckets = buckets
		return nil
	}
}

// WithConfirmBuckets sets the buckets, in seconds, of the publish confirm
// latency histogram (default DefaultConfirmBuckets).
func WithConfirmBuckets(buckets ...float64) Option {
	return func(o *options) error {
		if err := checkBuckets(buckets); err != nil {
			return fmt.Errorf("metrics: WithConfirmBuckets: %w", err)
		}
		o.confirmBuckets = buckets
		return nil
	}
}

func checkBuckets(b []float64) error {
	if len(b) == 0 {
		return errors.New("no buckets")
	}
	for i := 1; i < len(b); i++ {
		if b[i] <= b[i-1] {
			return fmt.Errorf("buckets must increase: %v then %v", b[i-1], b[i])
		}
	}
	return nil
}
