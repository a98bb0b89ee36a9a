package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
)

func TestAdvice(t *testing.T) {
	for _, c := range []struct {
		name       string
		err        error
		want       string
		wantImport string
	}{
		{"none", errors.New("boom"), "boom", "boom"},
		{"no queue named", deadletter.ErrNoQueueNamed, "the record names no queue; import it with --to QUEUE", ""},
		{"unknown origin", fmt.Errorf("x: %w", deadletter.ErrUnknownOrigin), "x: the job's origin is unknown (no warren headers, no x-death); replay it with --to", ""},
		{"not a job", fmt.Errorf("%w (%w)", deadletter.ErrNotAJob, broker.ErrMissingType), "; inspect it with warren dlq show, fix the producer, and replay with --to only if a worker can take it as it is", ""},
		{"headers lost", fmt.Errorf("job j: %w", deadletter.ErrHeadersLost), "; look at it with warren dlq show, and delete it with warren dlq purge --id, without --export, once it is not needed", ""},
		{"no exchange", fmt.Errorf("%w: no exchange %q", broker.ErrNoExchange, "x"), `no exchange "x"; apply it with warren topology apply -f FILE`, ""},
		{"no queue", fmt.Errorf("%w: no queue %q", broker.ErrNoQueue, "q"),
			`no queue "q"; apply it with warren topology apply -f FILE`, `no queue "q"; declare it (warren topology apply -f FILE) or import with --to QUEUE`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := advised(c.err); !strings.HasSuffix(got, c.want) {
				t.Errorf("advised = %q, want it to end with %q", got, c.want)
			}
			want := c.wantImport
			if want == "" {
				want = c.want
			}
			if got := importAdvised(c.err); !strings.HasSuffix(got, want) {
				t.Errorf("importAdvised = %q, want it to end with %q", got, want)
			}
		})
	}
}
