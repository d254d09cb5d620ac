package dataserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"depot"
	"depot/internal/httpx"
)

// Reader holds: a needle being read is not deleted by a DELETE that asks
// for idle needles only (?ifidle=1, what the nameserver's delete queue
// sends within its hold bound). See the package documentation, "Open
// readers and holds".
const (
	// MaxHoldTTL caps the time-to-live of one hold; a reader renews its
	// holds well within it.
	MaxHoldTTL = 5 * time.Minute
	// maxHolds bounds the holds one dataserver keeps, so that holds cannot
	// exhaust its memory; past it POST /holds answers 413.
	maxHolds = 1 << 18
	// maxHoldBatch bounds the needles of one POST /holds.
	maxHoldBatch = 4096
)

// needleKey names one needle of one shard slot.
type needleKey struct {
	vol    depot.VolumeID
	idx    int
	needle depot.NeedleID
}

// readers tracks, per needle, the GET requests being served and the
// holds readers registered. It lives in memory only: a restart cuts every
// stream, and readers renew their holds.
type readers struct {
	mu    sync.Mutex
	open  map[needleKey]int
	holds map[needleKey]map[uint64]time.Time // hold id → expiry
	n     int                                // holds in the table
	// swept is when expired holds were last dropped; hold drops them
	// every expireEvery, so holds that are never released nor asked
	// about do not pile up.
	swept time.Time
}

// expireEvery is how often hold drops expired holds.
const expireEvery = time.Minute

func newReaders() *readers {
	return &readers{open: make(map[needleKey]int), holds: make(map[needleKey]map[uint64]time.Time)}
}

// start records a GET of k being served; the returned func ends it.
func (rs *readers) start(k needleKey) func() {
	rs.mu.Lock()
	rs.open[k]++
	rs.mu.Unlock()
	return func() {
		rs.mu.Lock()
		if rs.open[k]--; rs.open[k] <= 0 {
			delete(rs.open, k)
		}
		rs.mu.Unlock()
	}
}

// busy reports whether k is being read or held by an unexpired hold.
func (rs *readers) busy(k needleKey, now time.Time) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.open[k] > 0 {
		return true
	}
	for id, exp := range rs.holds[k] {
		if now.Before(exp) {
			return true
		}
		rs.dropLocked(k, id)
	}
	return false
}

func (rs *readers) dropLocked(k needleKey, id uint64) {
	m := rs.holds[k]
	if _, ok := m[id]; !ok {
		return
	}
	delete(m, id)
	rs.n--
	if len(m) == 0 {
		delete(rs.holds, k)
	}
}

// hold sets (release false) or drops (release true) hold id on keys.
func (rs *readers) hold(id uint64, keys []needleKey, exp time.Time, release bool) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if release {
		for _, k := range keys {
			rs.dropLocked(k, id)
		}
		return nil
	}
	// A full table is swept at most once a second: a table full of live
	// holds must not make every hold request walk it under the lock that
	// every GET takes.
	now := time.Now()
	full := rs.n+len(keys) > maxHolds
	if now.Sub(rs.swept) > expireEvery || full && now.Sub(rs.swept) > time.Second {
		rs.expireLocked(now)
		rs.swept = now
		full = rs.n+len(keys) > maxHolds
	}
	if full {
		return fmt.Errorf("%w: %d holds already kept", depot.ErrTooLarge, rs.n)
	}
	for _, k := range keys {
		m := rs.holds[k]
		if m == nil {
			m = make(map[uint64]time.Time)
			rs.holds[k] = m
		}
		if _, ok := m[id]; !ok {
			rs.n++
		}
		m[id] = exp
	}
	return nil
}

// expireLocked drops every expired hold.
func (rs *readers) expireLocked(now time.Time) {
	for k, m := range rs.holds {
		for id, exp := range m {
			if !now.Before(exp) {
				rs.dropLocked(k, id)
			}
		}
	}
}

// HoldRequest is the JSON body of POST /holds (doc.go, "Open readers and
// holds").
type HoldRequest struct {
	ID      string       `json:"id"`      // the reader's hold id, 16 hex digits
	TTLms   int64        `json:"ttl_ms"`  // time to live, capped at MaxHoldTTL
	Release bool         `json:"release"` // drop the hold instead of setting it
	Needles []HoldNeedle `json:"needles"`
}

// HoldNeedle names one needle of a hold.
type HoldNeedle struct {
	Vol    uint32 `json:"vol"`
	Idx    int    `json:"idx"`
	Needle string `json:"needle"` // lower-case hex
}

func (s *Server) handleHolds(w http.ResponseWriter, r *http.Request) {
	var req HoldRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		s.fail(w, r, fmt.Errorf("%w: hold request: %v", depot.ErrBadRequest, err))
		return
	}
	id, err := strconv.ParseUint(req.ID, 16, 64)
	if err != nil || len(req.Needles) > maxHoldBatch || (!req.Release && req.TTLms <= 0) {
		s.fail(w, r, fmt.Errorf("%w: hold id %q, %d needles, ttl %dms", depot.ErrBadRequest, req.ID, len(req.Needles), req.TTLms))
		return
	}
	keys := make([]needleKey, len(req.Needles))
	for i, n := range req.Needles {
		nid, err := strconv.ParseUint(n.Needle, 16, 64)
		if err != nil {
			s.fail(w, r, fmt.Errorf("%w: needle %q is not hex", depot.ErrBadRequest, n.Needle))
			return
		}
		keys[i] = needleKey{vol: depot.VolumeID(n.Vol), idx: n.Idx, needle: depot.NeedleID(nid)}
	}
	ttl := min(time.Duration(req.TTLms)*time.Millisecond, MaxHoldTTL)
	if err := s.readers.hold(id, keys, time.Now().Add(ttl), req.Release); err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]int{"held": len(keys)})
}
