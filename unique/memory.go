package unique

import (
	"context"
	"sync"
	"time"
)

// Memory is a Store in memory, for tests: keys live as long as it does.
type Memory struct {
	mu   sync.Mutex
	keys map[string]memHold
	now  func() time.Time
}

type memHold struct {
	jobID   string
	expires time.Time
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{keys: make(map[string]memHold), now: time.Now} }

// Acquire takes key for jobID (see Store).
func (m *Memory) Acquire(_ context.Context, key, jobID string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if h, ok := m.keys[key]; ok && h.jobID != jobID && now.Before(h.expires) {
		return &DuplicateError{Key: key, JobID: h.jobID}
	}
	m.keys[key] = memHold{jobID: jobID, expires: now.Add(ttl)}
	return nil
}

// Release frees key if jobID holds it (see Store).
func (m *Memory) Release(_ context.Context, key, jobID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.keys[key]; ok && h.jobID == jobID {
		delete(m.keys, key)
	}
	return nil
}

// Holder returns the job holding key, unexpired, if any.
func (m *Memory) Holder(key string) (jobID string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.keys[key]
	if !ok || !m.now().Before(h.expires) {
		return "", false
	}
	return h.jobID, true
}
