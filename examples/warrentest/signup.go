// Package signup is a small service written with warren, and its tests
// (signup_test.go) show how a user tests a producer and a handler with
// warrentest, without a broker.
package signup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/worker"
)

// WelcomeEmail is the job type of the welcome email.
const WelcomeEmail = "email.welcome"

// Welcome is its payload.
type Welcome struct {
	To   string `json:"to"`
	Name string `json:"name"`
}

// Mailer sends mail; ErrBadAddress means retrying cannot help.
type Mailer interface {
	Send(ctx context.Context, to, body string) error
}

// ErrBadAddress is what a Mailer returns for an address that cannot exist.
var ErrBadAddress = errors.New("mailer: bad address")

// Register signs a user up and queues their welcome email.
func Register(ctx context.Context, pub *broker.Publisher, name, email string) error {
	if !strings.Contains(email, "@") {
		return fmt.Errorf("signup: %q is not an email address", email)
	}
	return pub.Publish(ctx, broker.Job{Type: WelcomeEmail, Payload: Welcome{To: email, Name: name}})
}

// Handlers returns the worker's handlers.
func Handlers(m Mailer) *worker.Mux {
	mux := worker.NewMux()
	mux.Handle(WelcomeEmail, worker.Typed(func(ctx context.Context, job *worker.Job, w Welcome) error {
		err := m.Send(ctx, w.To, "Welcome, "+w.Name+"!")
		if errors.Is(err, ErrBadAddress) {
			return worker.Permanent(err)
		}
		return err
	}))
	return mux
}
