package inbox

import "errors"

// ErrProcessed is what a Store's Claim returns for a job the consumer
// processed before: the middleware skips it (the delivery is acked, the
// handler does not run).
var ErrProcessed = errors.New("inbox: job already processed")

// ErrBusy is what a Store's Claim returns for a job another worker is
// running now (it holds the job's lease). The middleware returns an error
// wrapping it, so the job is retried later; by then the other worker has
// marked it done, or given it up.
var ErrBusy = errors.New("inbox: job being processed by another worker")
