package inbox

import (
	"context"
	"sync"
)

// Memory is a Store in memory, for tests: records live as long as it
// does. A job being run holds it until committed or rolled back; a
// second claim meanwhile gets ErrBusy. It shares no transaction with
// anything. It keeps results (ResultClaim).
type Memory struct {
	mu   sync.Mutex
	jobs map[memKey]*memRecord // present: claimed or processed
}

type memKey struct{ consumer, jobID string }

type memRecord struct {
	done   bool // processed; else claimed, running
	result []byte
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{jobs: make(map[memKey]*memRecord)} }

// Claim claims jobID for consumer (see Store).
func (m *Memory) Claim(ctx context.Context, consumer, jobID string) (context.Context, Claim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey{consumer, jobID}
	switch r := m.jobs[k]; {
	case r != nil && r.done:
		return nil, nil, &ProcessedError{Result: r.result}
	case r != nil:
		return nil, nil, ErrBusy
	}
	m.jobs[k] = &memRecord{}
	return ctx, &memClaim{m: m, k: k}, nil
}

// Processed reports whether consumer processed jobID.
func (m *Memory) Processed(consumer, jobID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.jobs[memKey{consumer, jobID}]
	return r != nil && r.done
}

type memClaim struct {
	m       *Memory
	k       memKey
	settled bool // guarded by m.mu
}

func (c *memClaim) Commit(ctx context.Context) error { return c.CommitResult(ctx, nil) }

func (c *memClaim) CommitResult(_ context.Context, result []byte) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	if !c.settled {
		c.settled = true
		c.m.jobs[c.k] = &memRecord{done: true, result: result}
	}
	return nil
}

func (c *memClaim) Rollback(context.Context) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	if !c.settled {
		c.settled = true
		delete(c.m.jobs, c.k)
	}
	return nil
}
