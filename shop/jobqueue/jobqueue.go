// Package jobqueue owns a small persistent work queue in a service's own
// bbolt file: jobs are written in the same transaction as the record they
// belong to, run by a fixed pool of worker goroutines, retried with
// exponential backoff when they fail, and survive a restart (a job is
// deleted only once its handler succeeded or failed permanently).
//
// bbolt layout (bucket name chosen by the caller, "jobs" by default):
//
//	jobs/<8-byte big-endian sequence> -> JSON {"payload": ..., "attempts": n,
//	                                           "not_before": time, "last_error": "..."}
package jobqueue

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Handler runs one job. An error wrapped with Permanent drops the job;
// any other error retries it later.
type Handler func(ctx context.Context, payload json.RawMessage) error

type permanentError struct{ error }

func (p permanentError) Unwrap() error { return p.error }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return permanentError{err} }

// Config configures a Queue. Zero fields take the defaults beside them.
type Config struct {
	DB     *bolt.DB // Required.
	Bucket string   // default "jobs"
	Handle Handler  // Required.
	// Workers is how many jobs run at once. Default 2.
	Workers int
	// MinBackoff is the wait after a first failure, doubled each time up
	// to MaxBackoff. Defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// JobTimeout bounds one run of a handler. Default 2m.
	JobTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

type record struct {
	Payload   json.RawMessage `json:"payload"`
	Attempts  int             `json:"attempts"`
	NotBefore time.Time       `json:"not_before"`
	LastError string          `json:"last_error,omitempty"`
}

// Queue is a running queue; Close stops its workers.
type Queue struct {
	cfg    Config
	wake   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	inflight map[uint64]bool
}

// New creates the queue's bucket and starts its workers.
func New(cfg Config) (*Queue, error) {
	if cfg.DB == nil || cfg.Handle == nil {
		return nil, errors.New("jobqueue: DB and Handle are required")
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "jobs"
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.JobTimeout == 0 {
		cfg.JobTimeout = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.DB.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(cfg.Bucket))
		return err
	}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &Queue{cfg: cfg, wake: make(chan struct{}, 1), cancel: cancel, inflight: map[uint64]bool{}}
	for range cfg.Workers {
		q.wg.Go(func() { q.work(ctx) })
	}
	return q, nil
}

// Close stops the workers and waits for them; unfinished jobs stay
// queued for the next start.
func (q *Queue) Close() {
	q.cancel()
	q.wg.Wait()
}

// Add queues a job inside tx (so it commits with the caller's records).
// Call Notify after the transaction committed.
func Add(tx *bolt.Tx, bucket string, payload any) error {
	p, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	b := tx.Bucket([]byte(bucket))
	if b == nil {
		return errors.New("jobqueue: no bucket " + bucket)
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	v, err := json.Marshal(record{Payload: p})
	if err != nil {
		return err
	}
	return b.Put(binary.BigEndian.AppendUint64(nil, seq), v)
}

// Enqueue queues a job in its own transaction.
func (q *Queue) Enqueue(payload any) error {
	err := q.cfg.DB.Update(func(tx *bolt.Tx) error { return Add(tx, q.cfg.Bucket, payload) })
	if err == nil {
		q.Notify()
	}
	return err
}

// Notify wakes a worker to look for due jobs.
func (q *Queue) Notify() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Len is how many jobs are queued (running ones included).
func (q *Queue) Len() int {
	n := 0
	q.cfg.DB.View(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte(q.cfg.Bucket)).Stats().KeyN
		return nil
	})
	return n
}

// claim picks a due job that no worker runs; otherwise it returns how
// long until the next one is due (0 when there is none).
func (q *Queue) claim() (uint64, record, time.Duration, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	var (
		id    uint64
		rec   record
		found bool
		next  time.Duration
	)
	q.cfg.DB.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(q.cfg.Bucket)).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			if q.inflight[seq] {
				continue
			}
			var r record
			if json.Unmarshal(v, &r) != nil {
				continue
			}
			if r.NotBefore.After(now) {
				if d := r.NotBefore.Sub(now); next == 0 || d < next {
					next = d
				}
				continue
			}
			id, rec, found = seq, r, true
			return nil
		}
		return nil
	})
	if found {
		q.inflight[id] = true
	}
	return id, rec, next, found
}

func (q *Queue) work(ctx context.Context) {
	for ctx.Err() == nil {
		id, rec, next, ok := q.claim()
		if !ok {
			var (
				timer <-chan time.Time
				t     *time.Timer
			)
			if next > 0 {
				t = time.NewTimer(next)
				timer = t.C
			}
			select {
			case <-ctx.Done():
			case <-q.wake:
			case <-timer:
			}
			if t != nil {
				t.Stop()
			}
			continue
		}
		q.Notify() // another due job may be waiting for another worker
		q.run(ctx, id, rec)
	}
}

func (q *Queue) run(ctx context.Context, id uint64, rec record) {
	defer func() {
		q.mu.Lock()
		delete(q.inflight, id)
		q.mu.Unlock()
	}()
	jctx, cancel := context.WithTimeout(ctx, q.cfg.JobTimeout)
	err := q.cfg.Handle(jctx, rec.Payload)
	cancel()
	if err != nil && ctx.Err() != nil {
		return // shutting down: the job stays as it was
	}
	key := binary.BigEndian.AppendUint64(nil, id)
	var perm permanentError
	if err == nil || errors.As(err, &perm) {
		if err != nil {
			q.cfg.Logger.Warn("job dropped", "job", id, "err", err)
		}
		if derr := q.cfg.DB.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(q.cfg.Bucket)).Delete(key) }); derr != nil {
			q.cfg.Logger.Error("job delete", "job", id, "err", derr)
		}
		return
	}
	rec.Attempts++
	wait := q.cfg.MinBackoff << min(rec.Attempts-1, 20)
	if wait > q.cfg.MaxBackoff || wait <= 0 {
		wait = q.cfg.MaxBackoff
	}
	rec.NotBefore, rec.LastError = time.Now().Add(wait), err.Error()
	q.cfg.Logger.Info("job failed, retrying", "job", id, "attempts", rec.Attempts, "in", wait, "err", err)
	v, _ := json.Marshal(rec)
	if uerr := q.cfg.DB.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(q.cfg.Bucket))
		if b.Get(key) == nil {
			return nil
		}
		return b.Put(key, v)
	}); uerr != nil {
		q.cfg.Logger.Error("job requeue", "job", id, "err", uerr)
	}
}
