// Package redisinbox is an inbox.Store in Redis (go-redis/v9).
//
// Claiming a job sets its key with a lease (SET NX with a TTL, the lease)
// while the handler runs, so a second worker given the same job meanwhile
// gets inbox.ErrBusy and retries later; once the handler returned nil the
// key is marked done, kept for the retention (WithKeep), and later
// deliveries are skipped.
//
// Redis cannot share a transaction with the handler's own database
// writes: a worker that dies after the handler's effects and before the
// done mark leaves the job to run again once the lease expires, and a
// handler that outlives its lease may run beside a second copy. This
// store narrows the duplicate window to those two cases; it does not
// close it. Where the effects are in PostgreSQL, use package pginbox.
package redisinbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/warrenmq/warren/inbox"
)

// Defaults.
const (
	// DefaultPrefix starts every key the store writes.
	DefaultPrefix = "warren:inbox:"
	// DefaultLease is how long a claim keeps other workers off a job: the
	// worker's default handler timeout (worker.DefaultHandlerTimeout) and
	// a margin.
	DefaultLease = 16 * time.Minute
	// DefaultKeep is how long a done mark is kept.
	DefaultKeep = 7 * 24 * time.Hour
)

// done is the value of a processed job's key; a claimed job's holds
// "lease:" and the claim's token.
const done = "done"

// Option configures New.
type Option func(*Store) error

// WithPrefix sets the prefix of the store's keys (default DefaultPrefix).
// The key of a job is the prefix, the consumer, ':' and the job id.
func WithPrefix(p string) Option {
	return func(s *Store) error {
		s.prefix = p
		return nil
	}
}

// WithLease sets how long a claim keeps other workers off a job (default
// DefaultLease). Make it longer than the handler timeout: a handler still
// running when its lease expires may run beside a second copy.
func WithLease(d time.Duration) Option {
	return func(s *Store) error {
		if d < time.Millisecond {
			return fmt.Errorf("redisinbox: WithLease(%s): give at least 1ms", d)
		}
		s.lease = d
		return nil
	}
}

// WithKeep sets how long a job is remembered as done (default
// DefaultKeep). Keep it longer than a job can be delivered again: its
// retries, its time in a dead-letter queue before a replay.
func WithKeep(d time.Duration) Option {
	return func(s *Store) error {
		if d < time.Millisecond {
			return fmt.Errorf("redisinbox: WithKeep(%s): give at least 1ms", d)
		}
		s.keep = d
		return nil
	}
}

// Store is the inbox in Redis. It is safe for concurrent use.
type Store struct {
	c      redis.UniversalClient
	prefix string
	lease  time.Duration
	keep   time.Duration
}

// New returns the store on c.
func New(c redis.UniversalClient, opts ...Option) (*Store, error) {
	if c == nil {
		return nil, errors.New("redisinbox: New: nil client")
	}
	s := &Store{c: c, prefix: DefaultPrefix, lease: DefaultLease, keep: DefaultKeep}
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("redisinbox: New: nil option")
		}
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Store) key(consumer, jobID string) string { return s.prefix + consumer + ":" + jobID }

// claimScript sets KEYS[1] to ARGV[1] for ARGV[2] ms unless it is set, and
// says what it found.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
	redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
	return 'claimed'
end
if string.sub(v, 1, 4) == 'done' then return v end
return 'busy'
`)

// releaseScript deletes KEYS[1] if it still holds ARGV[1] (the claim's
// lease, not another's, nor a done mark).
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Claim takes the job's lease (see the package doc).
func (s *Store) Claim(ctx context.Context, consumer, jobID string) (context.Context, inbox.Claim, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	token := "lease:" + hex.EncodeToString(b[:])
	k := s.key(consumer, jobID)
	got, err := claimScript.Run(ctx, s.c, []string{k}, token, s.lease.Milliseconds()).Text()
	if err != nil {
		return nil, nil, fmt.Errorf("redisinbox: claim %s: %w", k, err)
	}
	switch {
	case got == "busy":
		return nil, nil, inbox.ErrBusy
	case strings.HasPrefix(got, done):
		pe := &inbox.ProcessedError{}
		if r, ok := strings.CutPrefix(got, done+":"); ok {
			pe.Result = []byte(r)
		}
		return nil, nil, pe
	}
	return ctx, &claim{s: s, key: k, token: token}, nil
}

type claim struct {
	s          *Store
	key, token string
	settled    bool // claims are settled by the goroutine that made them
}

// Commit marks the job done, whoever holds its key now: a handler that
// outlived its lease has had its effects, and the mark keeps later copies
// off.
func (c *claim) Commit(ctx context.Context) error { return c.CommitResult(ctx, nil) }

// CommitResult is Commit, keeping result in the done mark ("done:" and
// its bytes).
func (c *claim) CommitResult(ctx context.Context, result []byte) error {
	if c.settled {
		return nil
	}
	mark := done
	if result != nil {
		mark = done + ":" + string(result)
	}
	if err := c.s.c.Set(ctx, c.key, mark, c.s.keep).Err(); err != nil {
		return fmt.Errorf("redisinbox: mark %s done: %w", c.key, err)
	}
	c.settled = true
	return nil
}

// Rollback releases the lease, if the claim still holds it.
func (c *claim) Rollback(ctx context.Context) error {
	if c.settled {
		return nil
	}
	c.settled = true
	if err := releaseScript.Run(ctx, c.s.c, []string{c.key}, c.token).Err(); err != nil {
		return fmt.Errorf("redisinbox: release %s: %w", c.key, err)
	}
	return nil
}
