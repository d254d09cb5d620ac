package nameserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"depot"
	"depot/nameserver/nsclient"
)

// ErrClosed is returned by calls that need the committer when the server is
// not started or already closed.
var ErrClosed = errors.New("nameserver: not running")

// store is the bbolt database, its in-memory cache, and the committer that
// turns concurrent commands into group commits.
type store struct {
	db       *bbolt.DB
	log      *slog.Logger
	cache    *cache
	metrics  *metrics
	window   time.Duration
	maxBatch int

	reqs    chan *request
	waiting atomic.Int64 // proposers that are about to hand a request over
	running atomic.Bool
	stop    chan struct{} // closed to stop the committer
	done    chan struct{} // closed when the committer returned

	// pending holds the cache updates of the transaction being built; only
	// the committer goroutine touches it.
	pending []func(*cache)

	commands atomic.Uint64 // commands committed
	fsyncs   atomic.Uint64 // transactions committed

	// rep, when set, replicates commands through raft (raft.go) instead
	// of the committer; applied is the last raft index in the database.
	rep     replicator
	applied atomic.Uint64

	// fence is held shared by every proposal until it is applied (or
	// abandoned), and exclusively by a restore while it merges the
	// placement of now into the backup and installs it (backup.go).
	fence sync.RWMutex
}

type request struct {
	cmd   Command
	index uint64 // raft log index; 0 outside raft
	res   any
	err   error
	done  chan struct{} // closed once applied; nil for raft's FSM
}

func openStore(path string, window time.Duration, maxBatch int, m *metrics, log *slog.Logger) (*store, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, FreelistType: bbolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("nameserver: open %s: %w", path, err)
	}
	s := &store{
		db: db, log: log, cache: newCache(), metrics: m, window: window, maxBatch: maxBatch,
		reqs: make(chan *request),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bktMeta)
		switch v := meta.Get(keyVersion); {
		case v == nil || string(v) == "1":
			// New, or from before the refs index (orphans.go).
			if err := buildRefs(tx); err != nil {
				return err
			}
			return meta.Put(keyVersion, []byte(formatVersion))
		case string(v) != formatVersion:
			return fmt.Errorf("database format version %q, this nameserver reads %q", v, formatVersion)
		}
		return nil
	})
	if err == nil {
		err = db.View(func(tx *bbolt.Tx) error {
			s.applied.Store(getU64(tx.Bucket(bktMeta), keyRaftIndex))
			return s.cache.load(tx)
		})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("nameserver: open %s: %w", path, err)
	}
	return s, nil
}

// start runs the committer until close.
func (s *store) start() {
	s.running.Store(true)
	go s.run()
}

// close stops the committer (when started) and closes the database.
// Proposals after close fail with ErrClosed.
func (s *store) close() error {
	if s.running.Swap(false) {
		close(s.stop)
		<-s.done
	}
	return s.db.Close()
}

// afterCommit queues f to update the cache once the current transaction is
// durable. Only apply calls it.
func (s *store) afterCommit(f func(*cache)) { s.pending = append(s.pending, f) }

// propose submits a command and waits for its result. The command carries
// the request id of ctx (nsclient.RequestID), if any, and is then applied
// at most once per id (requests.go).
//
// An error from apply is a definite refusal: the command changed nothing.
// An error wrapping depot.ErrUnknownOutcome is not: ctx ended after the
// command was handed over (to the committer, or to raft), which may still
// apply it. The caller resolves such an outcome (a repeat under the same
// request id answers with the recorded result) and never takes it for a
// refusal.
func (s *store) propose(ctx context.Context, typ CommandType, payload any) (any, error) {
	data, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("nameserver: encode %s: %w", typ, err)
	}
	s.fence.RLock()
	defer s.fence.RUnlock()
	cmd := Command{Type: typ, Time: time.Now().UTC(), Data: data, ID: nsclient.RequestID(ctx)}
	if s.rep != nil {
		return s.rep.replicate(ctx, cmd)
	}
	r := &request{cmd: cmd, done: make(chan struct{})}
	if !s.running.Load() {
		return nil, ErrClosed
	}
	s.waiting.Add(1)
	select {
	case s.reqs <- r:
	case <-s.stop:
		s.waiting.Add(-1)
		return nil, ErrClosed
	case <-ctx.Done():
		s.waiting.Add(-1)
		return nil, ctx.Err()
	}
	select {
	case <-r.done:
		return r.res, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("nameserver: %s handed over: %w: %w", typ, depot.ErrUnknownOutcome, ctx.Err())
	}
}

// run is the committer: it takes one request, gathers the ones that arrive
// within the window (waiting only while other proposers are about to hand
// theirs over), applies them all in one transaction and commits it with one
// fsync.
func (s *store) run() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	batch := make([]*request, 0, s.maxBatch)
	for {
		select {
		case r := <-s.reqs:
			s.waiting.Add(-1)
			batch = append(batch[:0], r)
		case <-s.stop:
			return
		}
		timer.Reset(s.window)
	gather:
		for len(batch) < s.maxBatch {
			select {
			case r := <-s.reqs:
				s.waiting.Add(-1)
				batch = append(batch, r)
				continue
			default:
			}
			if s.waiting.Load() <= 0 || s.window <= 0 {
				break
			}
			select {
			case r := <-s.reqs:
				s.waiting.Add(-1)
				batch = append(batch, r)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		s.commit(batch)
		clear(batch) // drop references for the GC
	}
}

func (s *store) commit(batch []*request) {
	start := time.Now()
	err := s.applyBatch(batch)
	if err != nil && len(batch) > 1 {
		// A storage failure spoiled the transaction: retry each command
		// alone so that only the culprit fails.
		s.log.Warn("group commit failed; retrying one by one", "commands", len(batch), "err", err)
		for _, r := range batch {
			if err := s.applyBatch([]*request{r}); err != nil {
				r.res, r.err = nil, err
			}
		}
	} else if err != nil {
		batch[0].res, batch[0].err = nil, err
	}
	s.metrics.commitSeconds.Observe(time.Since(start).Seconds())
	s.metrics.batchSize.Observe(float64(len(batch)))
	for _, r := range batch {
		if r.done != nil {
			close(r.done)
		}
	}
}

// applyBatch applies batch in one transaction and commits it. It returns an
// error only when the transaction as a whole failed.
//
// A command that apply refuses (an ordinary error) leaves nothing behind,
// whatever it wrote before it failed: the pass stops at the refusal, the
// transaction is rolled back and the batch applied again without the
// commands refused so far, until a pass refuses none; only that pass
// commits. The refused commands keep the error of the pass that refused
// them. Since a pass stops at its first refusal, every command is judged
// on the state that the commands before it in the log left — never on a
// refused command's partial writes — so the outcome does not depend on
// how the log is cut into batches: raft members, whose fsm.ApplyBatch
// batches differ from node to node and on replay, agree. A batch that
// refuses nothing — the usual case — takes one pass.
func (s *store) applyBatch(batch []*request) error {
	refused := make([]bool, len(batch))
	for {
		tx, again, err := s.applyPass(batch, refused)
		if err != nil {
			return err
		}
		if again {
			tx.Rollback()
			continue
		}
		return s.commitPass(tx, batch, refused)
	}
}

// applyPass applies the commands of batch not yet refused in a new
// transaction. again is set, and the refusal marked in refused, when a
// command was refused: the pass stops there, and the transaction, which
// holds the refused command's partial writes, must be rolled back.
func (s *store) applyPass(batch []*request, refused []bool) (tx *bbolt.Tx, again bool, err error) {
	s.pending = s.pending[:0]
	tx, err = s.db.Begin(true)
	if err != nil {
		return nil, false, fmt.Errorf("nameserver: begin: %w", err)
	}
	for i, r := range batch {
		if refused[i] {
			continue
		}
		mark := len(s.pending)
		r.res, r.err = s.apply(tx, r.cmd)
		if r.err == nil {
			continue
		}
		r.res = nil
		s.pending = s.pending[:mark]
		var se *storageError
		if errors.As(r.err, &se) {
			tx.Rollback()
			return nil, false, r.err
		}
		// Stop here: the commands after it must not see its partial
		// writes (see applyBatch).
		refused[i] = true
		return tx, true, nil
	}
	return tx, false, nil
}

// commitPass commits a pass that refused nothing new and runs the cache
// updates of its commands.
func (s *store) commitPass(tx *bbolt.Tx, batch []*request, refused []bool) error {
	last := batch[len(batch)-1].index
	if last == 0 && !slices.Contains(refused, false) {
		// Nothing to write: every command was refused, and no raft
		// index to record.
		tx.Rollback()
	} else {
		if last != 0 {
			if err := put(tx.Bucket(bktMeta), keyRaftIndex, u64(last)); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("nameserver: commit: %w", err)
		}
		s.fsyncs.Add(1)
		s.metrics.fsyncs.Inc()
	}
	s.commands.Add(uint64(len(batch)))
	for _, r := range batch {
		s.metrics.commands.WithLabelValues(string(r.cmd.Type)).Inc()
	}
	if len(s.pending) > 0 {
		s.cache.mu.Lock()
		for _, f := range s.pending {
			f(s.cache)
		}
		s.cache.mu.Unlock()
		clear(s.pending)
	}
	return nil
}
