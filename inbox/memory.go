package inbox

import (
	"context"
	"sync"
)

// Memory is a Store in memory, for tests: records live as long as it
// does. A job being run holds it until committed or rolled back; a
// second claim meanwhile gets ErrBusy. It shares no transaction with
// anything.
type Memory struct {
	mu   sync.Mutex
	jobs map[memKey]bool // true: processed; false: claimed, running
}

type memKey struct{ consumer, jobID string }

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{jobs: make(map[memKey]bool)} }

// Claim claims jobID for consumer (see Store).
func (m *Memory) Claim(ctx context.Context, consumer, jobID string) (context.Context, Claim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey{consumer, jobID}
	done, ok := m.jobs[k]
	switch {
	case ok && done:
		return nil, nil, ErrProcessed
	case ok:
		return nil, nil, ErrBusy
	}
	m.jobs[k] = false
	return ctx, &memClaim{m: m, k: k}, nil
}

// Processed reports whether consumer processed jobID.
func (m *Memory) Processed(consumer, jobID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.jobs[memKey{consumer, jobID}]
}

type memClaim struct {
	m       *Memory
	k       memKey
	settled bool // guarded by m.mu
}

func (c *memClaim) Commit(context.Context) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	if !c.settled {
		c.settled = true
		c.m.jobs[c.k] = true
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
