package unique

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
)

// Store holds unique keys. Implementations: package pgunique
// (PostgreSQL), package redisunique (Redis) and Memory.
type Store interface {
	// Acquire takes key for jobID until Release, or until ttl has passed.
	// A key held by another job, unexpired, gives a *DuplicateError; one
	// held by jobID itself is taken again, its TTL renewed (a publish
	// retried with the same id).
	Acquire(ctx context.Context, key, jobID string, ttl time.Duration) error
	// Release frees key if jobID holds it, and does nothing otherwise
	// (the key expired and another job took it).
	Release(ctx context.Context, key, jobID string) error
}

// Publisher publishes unique jobs through a broker.Publisher.
type Publisher struct {
	pub   *broker.Publisher
	store Store
}

// NewPublisher returns a Publisher publishing through pub, with its keys
// in store.
func NewPublisher(pub *broker.Publisher, store Store) (*Publisher, error) {
	if pub == nil {
		return nil, errors.New("unique: NewPublisher: nil publisher")
	}
	if store == nil {
		return nil, errors.New("unique: NewPublisher: nil store")
	}
	return &Publisher{pub: pub, store: store}, nil
}

// Publish takes key for job in the store, for at most ttl, then publishes
// job (with opts, as broker.Publisher.Publish does) marked with its key
// (broker.UniqueKey). While another job holds key, it publishes nothing
// and returns a *DuplicateError (errors.Is ErrDuplicate).
//
// The job's ID is generated when empty; set it first (broker.NewJobID) to
// publish again with the same ID after an error. When the publish fails
// in a way that means the broker does not have the job (invalid, nacked,
// unroutable, no exchange or route), the key is released. After an
// ErrClosed or the end of ctx the job may have been stored: the key stays
// held, and publishing the job again with the same ID takes it again.
func (p *Publisher) Publish(ctx context.Context, job broker.Job, key string, ttl time.Duration, opts ...broker.PublishOption) error {
	if key == "" || len(key) > broker.MaxUniqueKey {
		return fmt.Errorf("unique: key %.40q: give 1 to %d bytes", key, broker.MaxUniqueKey)
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("unique: key %q: TTL %s: give at least 1ms, longer than the job can take from publish to its last retry", key, ttl)
	}
	if job.ID == "" {
		id, err := broker.NewJobID()
		if err != nil {
			return err
		}
		job.ID = id
	}
	if err := p.store.Acquire(ctx, key, job.ID, ttl); err != nil {
		var de *DuplicateError
		if errors.As(err, &de) {
			return err
		}
		return fmt.Errorf("unique: take key %q for job %s: %w", key, job.ID, err)
	}
	opts = append(opts[:len(opts):len(opts)], broker.UniqueKey(key))
	err := p.pub.Publish(ctx, job, opts...)
	if err != nil && notStored(err) {
		if rerr := p.store.Release(context.WithoutCancel(ctx), key, job.ID); rerr != nil {
			return fmt.Errorf("%w (and its unique key %q was not released: %v; it expires after its TTL)", err, key, rerr)
		}
	}
	return err
}

// notStored reports whether err, from a publish, means the broker does
// not have the job.
func notStored(err error) bool {
	for _, e := range []error{broker.ErrInvalidJob, broker.ErrInvalidOption, broker.ErrUnroutable, broker.ErrNacked, broker.ErrNoExchange, broker.ErrNoRoute} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Close closes the broker publisher.
func (p *Publisher) Close(ctx context.Context) error { return p.pub.Close(ctx) }
