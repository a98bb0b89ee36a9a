package daemon

import (
	"io"
	"time"
)

// WithGrace replaces ShutdownGrace, so that a test of the shutdown
// deadline does not wait for the real one.
func WithGrace(d time.Duration) Option {
	return func(o *options) error {
		o.grace = d
		return nil
	}
}

// FromLookup is FromEnv reading from lookup, its warnings discarded.
func FromLookup(lookup func(string) (string, bool)) (Config, error) {
	return fromEnv(lookup, io.Discard)
}

// FromLookupWarn is FromEnv reading from lookup and warning to warn.
var FromLookupWarn = fromEnv
