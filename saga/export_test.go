package saga

// WithHook calls f at the stages of applying a reply: "applied" (in the
// transaction, not committed) and "committed" (before the ack).
func WithHook(f func(stage string)) Option {
	return func(o *options) error {
		o.hook = f
		return nil
	}
}
