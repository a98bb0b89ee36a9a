package daemon

import "time"

// WithGrace replaces ShutdownGrace, so that a test of the shutdown
// deadline does not wait for the real one.
func WithGrace(d time.Duration) Option {
	return func(o *options) error {
		o.grace = d
		return nil
	}
}

// FromLookup is FromEnv reading from lookup.
var FromLookup = fromEnv
