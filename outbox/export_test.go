package outbox

import "context"

// WithHook calls f at the stages of each batch: "claimed" (n rows),
// "sent" (n rows on the wire), "confirmed" (every outcome known),
// "marked" (updated, not committed).
func WithHook(f func(stage string, n int)) Option {
	return func(o *options) error {
		o.hook = f
		return nil
	}
}

// RelayBatch runs one batch, as Run does.
func (r *Relay) RelayBatch(ctx context.Context) (claimed, sent, failed int, err error) {
	res, err := r.relayBatch(ctx)
	return res.claimed, res.sent, res.failed, err
}

// CloseSender closes the relay's channel, as Run does when it returns,
// for tests that drive batches themselves.
func (r *Relay) CloseSender(ctx context.Context) error { return r.sender.Close(ctx) }
