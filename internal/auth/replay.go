package auth

import (
	"fmt"
	"sync"
	"time"
)

// DefaultReplayCapacity is the number of nonces a ReplayCache made by
// Middleware holds: about 10 MB, and at 400 requests a second every token
// of the full acceptance window (2 × MaxSkew).
const DefaultReplayCapacity = 1 << 18

// ReplayCache remembers the nonces of the tokens accepted within their
// lifetime, so that no token is accepted twice. It holds at most capacity
// nonces, grouped by the second their token was made. When full it drops
// the oldest second and from then on refuses every token made at or before
// it (the horizon): a token whose nonce was forgotten can no longer pass,
// so the bound costs at worst a refused token, never an accepted replay.
// The zero value is not usable; a nil *ReplayCache refuses everything.
type ReplayCache struct {
	mu       sync.Mutex
	capacity int
	n        int
	bySec    map[int64]map[[nonceBytes]byte]struct{}
	horizon  int64 // tokens made at or before this second are refused
	swept    int64 // the second expire last ran
}

// NewReplayCache returns a cache of at most capacity nonces (at least 1).
func NewReplayCache(capacity int) *ReplayCache {
	return &ReplayCache{capacity: max(capacity, 1), bySec: map[int64]map[[nonceBytes]byte]struct{}{}, horizon: -1 << 62}
}

// spend records nonce, made at second sec, as used; it fails, wrapping
// ErrBadToken, when the nonce was used before or the token is older than
// what the cache can vouch for.
func (c *ReplayCache) spend(nonce [nonceBytes]byte, sec int64, now time.Time) error {
	if c == nil {
		return fmt.Errorf("%w: no replay cache", ErrBadToken)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if sec <= c.horizon {
		return fmt.Errorf("%w: token older than the replay cache's horizon", ErrBadToken)
	}
	set := c.bySec[sec]
	if _, dup := set[nonce]; dup {
		return fmt.Errorf("%w: token replayed", ErrBadToken)
	}
	if set == nil {
		set = map[[nonceBytes]byte]struct{}{}
		c.bySec[sec] = set
	}
	set[nonce] = struct{}{}
	c.n++
	for c.n > c.capacity {
		c.dropOldest()
	}
	return nil
}

// expire forgets the seconds whose tokens the skew check refuses anyway.
// It runs at most once a second: the map holds one entry per second.
func (c *ReplayCache) expire(now time.Time) {
	if now.Unix() == c.swept {
		return
	}
	c.swept = now.Unix()
	limit := now.Add(-MaxSkew).Unix() - 1
	for sec, set := range c.bySec {
		if sec < limit {
			c.n -= len(set)
			delete(c.bySec, sec)
		}
	}
}

// dropOldest forgets the oldest second and moves the horizon to it.
func (c *ReplayCache) dropOldest() {
	oldest := int64(1<<63 - 1)
	for sec := range c.bySec {
		oldest = min(oldest, sec)
	}
	c.n -= len(c.bySec[oldest])
	delete(c.bySec, oldest)
	c.horizon = max(c.horizon, oldest)
}

// Len returns the number of nonces held.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
