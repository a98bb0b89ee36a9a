package signup_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	signup "github.com/warrenmq/warren/examples/warrentest"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/warrentest"
)

// flakyMailer fails the first failures sends to each address, and refuses
// addresses at example.invalid.
type flakyMailer struct {
	failures int
	mu       sync.Mutex
	tries    map[string]int
	sent     []string
}

func (m *flakyMailer) Send(ctx context.Context, to, body string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tries == nil {
		m.tries = map[string]int{}
	}
	m.tries[to]++
	switch {
	case len(to) > 16 && to[len(to)-16:] == "@example.invalid":
		return signup.ErrBadAddress
	case m.tries[to] <= m.failures:
		return errors.New("smtp: 421 try again later")
	}
	m.sent = append(m.sent, body)
	return nil
}

func newKit(t *testing.T) *warrentest.Kit {
	topo, err := topology.Load("topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return warrentest.New(t, topo)
}

func TestRegisterQueuesTheWelcomeEmail(t *testing.T) {
	kit := newKit(t)
	if err := signup.Register(context.Background(), kit.Publisher(), "Ada", "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	jobs := kit.RequireEnqueued(t, "emails", signup.WelcomeEmail)
	var w signup.Welcome
	if err := jobs[0].Decode(&w); err != nil || w.To != "ada@example.com" {
		t.Fatalf("payload %+v, %v", w, err)
	}
}

func TestWelcomeEmailIsRetriedUntilSent(t *testing.T) {
	kit := newKit(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := signup.Register(ctx, kit.Publisher(), "Ada", "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	mailer := &flakyMailer{failures: 3}
	// Three failures, three backoffs (30s, 1m, 2m on the kit's clock):
	// Drain returns in milliseconds.
	if err := kit.Drain(ctx, signup.Handlers(mailer)); err != nil {
		t.Fatal(err)
	}
	if len(mailer.sent) != 1 || mailer.sent[0] != "Welcome, Ada!" {
		t.Fatalf("sent %q", mailer.sent)
	}
	if dead := kit.DeadLettered("emails"); len(dead) != 0 {
		t.Fatalf("dead letters: %v", dead)
	}
}

func TestBadAddressIsDeadLetteredAtOnce(t *testing.T) {
	kit := newKit(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := signup.Register(ctx, kit.Publisher(), "Bob", "bob@example.invalid"); err != nil {
		t.Fatal(err)
	}
	if err := kit.Drain(ctx, signup.Handlers(&flakyMailer{})); err != nil {
		t.Fatal(err)
	}
	dead := kit.RequireDeadLettered(t, "emails", signup.WelcomeEmail)
	if dead[0].Attempts != 1 || dead[0].Class != "permanent" {
		t.Fatalf("dead letter: attempts %d, class %q, error %q", dead[0].Attempts, dead[0].Class, dead[0].Error)
	}
}
