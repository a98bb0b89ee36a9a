package broker

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A publish whose write fails because the socket went (the broker reset
// the connection under it) fails with ErrClosed, as one whose channel was
// closed does: the fault suite saw "write: connection reset by peer"
// reach a PublishBatch caller unwrapped.
func TestClosedOnWrite(t *testing.T) {
	reset := &net.OpError{Op: "write", Net: "tcp", Err: &os.SyscallError{Syscall: "write", Err: syscall.ECONNRESET}}
	for _, tc := range []struct {
		name   string
		err    error
		closed bool
	}{
		{"channel closed", amqp.ErrClosed, true},
		{"connection reset while writing", reset, true},
		{"broken pipe", &os.SyscallError{Syscall: "write", Err: syscall.EPIPE}, true},
		{"EOF", io.EOF, true},
		{"refused by the broker", &amqp.Error{Code: amqp.NotFound, Reason: "no exchange"}, false},
		{"another error", errors.New("frame too large"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := closedOnWrite(tc.err)
			if errors.Is(got, ErrClosed) != tc.closed {
				t.Errorf("closedOnWrite(%v) = %v; wraps ErrClosed: %v, want %v", tc.err, got, errors.Is(got, ErrClosed), tc.closed)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("closedOnWrite(%v) = %v, which no longer wraps the cause", tc.err, got)
			}
		})
	}
}
