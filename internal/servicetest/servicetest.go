// Package servicetest is how tests find a server they need besides the
// broker (PostgreSQL, Redis): its *_URL variable when set, else the local
// default when it answers, else the test fails saying how to start one.
package servicetest

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Service is one kind of server the tests use.
type Service struct {
	Name       string // "PostgreSQL", in messages
	Env        string // the variable that names one: "DATABASE_URL"
	Default    string // the local default's URL
	HowToStart string // how to start one, in the message of a test that found none
	// Ping returns nil when the server at url answers within timeout.
	Ping func(url string, timeout time.Duration) error

	once  sync.Once
	found string
	err   error
}

// URL returns the server's URL, found once per test binary, failing t
// when there is none.
func (s *Service) URL(t testing.TB) string {
	t.Helper()
	s.once.Do(func() { s.found, s.err = s.find() })
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.found
}

func (s *Service) find() (string, error) {
	if u := os.Getenv(s.Env); u != "" {
		if err := s.Ping(u, 10*time.Second); err != nil {
			return "", fmt.Errorf("%s is set but its %s does not answer: %v\nstart it, or unset %s to use the local default %s", s.Env, s.Name, err, s.Env, s.Default)
		}
		return u, nil
	}
	if err := s.Ping(s.Default, 3*time.Second); err != nil {
		return "", fmt.Errorf("no %s for the tests: nothing answers at %s (%v).\nStart one (%s), or point %s at one", s.Name, s.Default, err, s.HowToStart, s.Env)
	}
	return s.Default, nil
}
