// Package redisunique is a unique.Store in Redis (go-redis/v9): a key per
// unique key held, whose value is the job holding it and whose TTL is the
// key's.
package redisunique

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/warrenmq/warren/unique"
)

// DefaultPrefix starts every key the store writes.
const DefaultPrefix = "warren:unique:"

// Option configures New.
type Option func(*Store) error

// WithPrefix sets the prefix of the store's keys (default DefaultPrefix).
func WithPrefix(p string) Option {
	return func(s *Store) error {
		s.prefix = p
		return nil
	}
}

// Store holds unique keys in Redis. It is safe for concurrent use.
type Store struct {
	c      redis.UniversalClient
	prefix string
}

// New returns the store on c.
func New(c redis.UniversalClient, opts ...Option) (*Store, error) {
	if c == nil {
		return nil, errors.New("redisunique: New: nil client")
	}
	s := &Store{c: c, prefix: DefaultPrefix}
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("redisunique: New: nil option")
		}
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// acquireScript sets KEYS[1] to ARGV[1] for ARGV[2] ms unless another job
// holds it, and returns the other job, or "".
var acquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ''
`)

// releaseScript deletes KEYS[1] if ARGV[1] holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Acquire takes key for jobID (see unique.Store).
func (s *Store) Acquire(ctx context.Context, key, jobID string, ttl time.Duration) error {
	holder, err := acquireScript.Run(ctx, s.c, []string{s.prefix + key}, jobID, max(ttl.Milliseconds(), 1)).Text()
	if err != nil {
		return fmt.Errorf("redisunique: take key %q: %w", key, err)
	}
	if holder != "" {
		return &unique.DuplicateError{Key: key, JobID: holder}
	}
	return nil
}

// Release frees key if jobID holds it.
func (s *Store) Release(ctx context.Context, key, jobID string) error {
	if err := releaseScript.Run(ctx, s.c, []string{s.prefix + key}, jobID).Err(); err != nil {
		return fmt.Errorf("redisunique: release key %q: %w", key, err)
	}
	return nil
}
