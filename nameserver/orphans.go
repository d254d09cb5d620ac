package nameserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.etcd.io/bbolt"

	"depot"
	"depot/internal/httpx"
	"depot/nameserver/nsclient"
)

// Orphans: segments the S3 gateway stored but never committed (see doc.go,
// "Orphans"). This file keeps the index of referenced fids, the record of
// swept ones and the sweep command.

// CmdSweepOrphans queues for deletion the listed segments that no namespace
// entry references; its payload is nsclient.OrphanList and its result
// nsclient.SweepResult.
const CmdSweepOrphans CommandType = "sweep_orphans"

var (
	// bktRefs: fid text → owner: 'o', uint16 bucket length, bucket, key
	// (an object) or 'p' and the part's key in the parts bucket (a part of
	// a multipart upload).
	bktRefs = []byte("refs")
	// bktSwept: fid text → uint64 Unix nanoseconds of the sweep. Created
	// by the first sweep.
	bktSwept = []byte("swept")
	// bktQueued: fid text → uint64 sequence of its latest entry in the
	// delete queue, while it has one: fids no commit may reference.
	// Created by the first enqueueDeletes; entries queued by older
	// nameservers are not in it.
	bktQueued = []byte("queued")
)

// errQueued refuses a commit of a segment that waits in the delete queue:
// it was released (replaced, deleted, aborted) and its needles are about
// to go. Only a replay of a superseded change names it. It wraps no depot
// error: the S3 gateway answers 500.
var errQueued = errors.New("segment is queued for deletion")

// sweptRetention is how long a swept fid is remembered: a commit naming it
// within that time is refused. No upload's commit comes that late after
// its write plus the sweep's grace period.
const sweptRetention = 7 * 24 * time.Hour

// errSwept refuses a commit of a segment the orphan sweep already queued
// for deletion. It wraps no depot error: the S3 gateway answers 500 and
// the client retries the upload, which writes new segments.
var errSwept = errors.New("segment was swept as an orphan: its commit came after the grace period")

// refKey is the refs key of a fid: its canonical text.
func refKey(fid string) []byte {
	if f, err := depot.ParseFid(fid); err == nil {
		return []byte(f.String())
	}
	return []byte(fid)
}

func objectOwner(bucket, key string) []byte {
	b := append([]byte{'o'}, binary.BigEndian.AppendUint16(nil, uint16(len(bucket)))...)
	b = append(b, bucket...)
	return append(b, key...)
}

func partOwner(partKey []byte) []byte { return append([]byte{'p'}, partKey...) }

func refsOf(tx *bbolt.Tx) (*bbolt.Bucket, error) {
	b := tx.Bucket(bktRefs)
	if b == nil {
		return nil, &storageError{errors.New("refs index missing")}
	}
	return b, nil
}

// addRefs records that owner references segs.
func addRefs(tx *bbolt.Tx, segs []depot.Segment, owner []byte) error {
	b, err := refsOf(tx)
	if err != nil {
		return err
	}
	for _, sg := range segs {
		if err := put(b, refKey(sg.Fid), owner); err != nil {
			return err
		}
	}
	return nil
}

// dropRefs forgets the references to segs; enqueueDeletes calls it for
// every segment it queues.
func dropRefs(tx *bbolt.Tx, segs []depot.Segment) error {
	b, err := refsOf(tx)
	if err != nil {
		return err
	}
	for _, sg := range segs {
		if err := del(b, refKey(sg.Fid)); err != nil {
			return err
		}
	}
	return nil
}

// checkNotSwept refuses segments that the sweep already queued for
// deletion, and any segment waiting in the delete queue: so a segment is
// never referenced and queued at once, and the delete loop's check of the
// refs index (processDeletes) cannot race with a commit. It writes
// nothing; commits call it before their first write.
func checkNotSwept(tx *bbolt.Tx, segs []depot.Segment) error {
	swept, queued := tx.Bucket(bktSwept), tx.Bucket(bktQueued)
	for _, sg := range segs {
		if swept != nil && swept.Get(refKey(sg.Fid)) != nil {
			return fmt.Errorf("%s: %w", sg.Fid, errSwept)
		}
		if queued != nil && queued.Get(refKey(sg.Fid)) != nil {
			return fmt.Errorf("%s: %w", sg.Fid, errQueued)
		}
	}
	return nil
}

// ackDeletes removes done entries from the delete queue, and their fids
// from queued unless a later entry queued them again.
func ackDeletes(tx *bbolt.Tx, seqs []uint64) error {
	b, queued := tx.Bucket(bktDeletes), tx.Bucket(bktQueued)
	for _, seq := range seqs {
		if queued != nil {
			var pd nsclient.PendingDelete
			if raw := b.Get(u64(seq)); raw != nil && json.Unmarshal(raw, &pd) == nil {
				if k := refKey(pd.Fid); getU64(queued, k) == seq {
					if err := del(queued, k); err != nil {
						return err
					}
				}
			}
		}
		if err := del(b, u64(seq)); err != nil {
			return err
		}
	}
	return nil
}

// referencedDeletes returns the sequence numbers of the entries of list
// whose segment the refs index lists: segments that must not be deleted.
func (s *Server) referencedDeletes(ctx context.Context, list []nsclient.PendingDelete) (map[uint64]bool, error) {
	live := map[uint64]bool{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		refs, err := refsOf(tx)
		if err != nil {
			return err
		}
		for _, pd := range list {
			if refs.Get(refKey(pd.Fid)) != nil {
				live[pd.Seq] = true
			}
		}
		return nil
	})
	return live, err
}

// buildRefs (re)builds the refs index from the objects, their non-current
// versions and the parts of multipart uploads: openStore runs it on databases of layout version 1,
// which had no index.
func buildRefs(tx *bbolt.Tx) error {
	if tx.Bucket(bktRefs) != nil {
		if err := tx.DeleteBucket(bktRefs); err != nil {
			return err
		}
	}
	refs, err := tx.CreateBucket(bktRefs)
	if err != nil {
		return err
	}
	var segs struct {
		Segments []depot.Segment `json:"segments"`
	}
	add := func(v, owner []byte) error {
		segs.Segments = segs.Segments[:0]
		if err := json.Unmarshal(v, &segs); err != nil {
			return nil // a damaged record references nothing we can read
		}
		for _, sg := range segs.Segments {
			if err := refs.Put(refKey(sg.Fid), owner); err != nil {
				return err
			}
		}
		return nil
	}
	if ob := tx.Bucket(bktObjects); ob != nil {
		err := ob.ForEachBucket(func(name []byte) error {
			return ob.Bucket(name).ForEach(func(k, v []byte) error {
				return add(v, objectOwner(string(name), string(k)))
			})
		})
		if err != nil {
			return err
		}
	}
	if vb := tx.Bucket(bktVersions); vb != nil {
		err := vb.ForEachBucket(func(name []byte) error {
			return vb.Bucket(name).ForEach(func(k, v []byte) error {
				key, _, ok := unescapeKey(k)
				if !ok {
					return nil
				}
				return add(v, objectOwner(string(name), key))
			})
		})
		if err != nil {
			return err
		}
	}
	if pb := tx.Bucket(bktParts); pb != nil {
		err := pb.ForEach(func(k, v []byte) error { return add(v, partOwner(bytes.Clone(k))) })
		if err != nil {
			return err
		}
	}
	return nil
}

// applyOrphans applies CmdSweepOrphans; ok is false for other types. The
// check of the references and the queueing happen in one transaction, and
// the swept record makes later commits of the same fids fail, so a commit
// racing the sweep either wins (the fid is referenced and kept) or is
// refused (the fid is gone).
func (s *store) applyOrphans(tx *bbolt.Tx, cmd Command) (res any, ok bool, err error) {
	if cmd.Type != CmdSweepOrphans {
		return nil, false, nil
	}
	var c nsclient.OrphanList
	if err := decode(cmd, &c); err != nil {
		return nil, true, err
	}
	refs, err := refsOf(tx)
	if err != nil {
		return nil, true, err
	}
	swept, err := tx.CreateBucketIfNotExists(bktSwept)
	if err != nil {
		return nil, true, &storageError{err}
	}
	out := nsclient.SweepResult{Queued: []string{}}
	var queue []depot.Segment
	seen := make(map[string]bool, len(c.Segments))
	queued := tx.Bucket(bktQueued)
	for _, sg := range c.Segments {
		fid, err := depot.ParseFid(sg.Fid)
		if err != nil || sg.Size < 0 {
			continue
		}
		k := fid.String()
		// A fid swept before whose delete is done is queued again: its
		// needle is back on some member (a write or a repair copy that
		// reached it after the delete passed), and the swept record keeps
		// any commit from naming it, so deleting it again is safe.
		if seen[k] || refs.Get([]byte(k)) != nil || (queued != nil && queued.Get([]byte(k)) != nil) {
			continue
		}
		seen[k] = true
		queue = append(queue, depot.Segment{Fid: k, Size: sg.Size})
		out.Queued = append(out.Queued, k)
	}
	now := u64(uint64(cmd.Time.UnixNano()))
	for _, sg := range queue {
		if err := put(swept, []byte(sg.Fid), now); err != nil {
			return nil, true, err
		}
	}
	if err := enqueueDeletes(tx, cmd, queue); err != nil {
		return nil, true, err
	}
	// Forget sweeps older than the retention.
	cutoff := cmd.Time.Add(-sweptRetention).UnixNano()
	var old [][]byte
	err = swept.ForEach(func(k, v []byte) error {
		if len(v) == 8 && int64(binary.BigEndian.Uint64(v)) < cutoff {
			old = append(old, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return nil, true, &storageError{err}
	}
	for _, k := range old {
		if err := del(swept, k); err != nil {
			return nil, true, err
		}
	}
	return out, true, nil
}

// SweepOrphans queues for deletion those of segs that nothing in the
// namespace references; see applyOrphans.
func (s *Server) SweepOrphans(ctx context.Context, segs []depot.Segment) (nsclient.SweepResult, error) {
	res, err := s.store.propose(ctx, CmdSweepOrphans, nsclient.OrphanList{Segments: segs})
	if err != nil {
		return nsclient.SweepResult{}, err
	}
	r := res.(nsclient.SweepResult)
	if len(r.Queued) > 0 {
		s.log.Info("orphans queued for deletion", "segments", len(r.Queued))
	}
	return r, nil
}

// maxSweep bounds the segments of one POST /orphans.
const maxSweep = 4096

func (s *Server) routeOrphans(api *http.ServeMux) {
	s.route(api, "POST /orphans", func(w http.ResponseWriter, r *http.Request) {
		var l nsclient.OrphanList
		if err := readJSON(w, r, maxObjectBody, &l); err != nil {
			httpx.WriteError(w, err)
			return
		}
		if len(l.Segments) > maxSweep {
			httpx.WriteError(w, fmt.Errorf("%w: %d segments, at most %d", depot.ErrBadRequest, len(l.Segments), maxSweep))
			return
		}
		res, err := s.SweepOrphans(r.Context(), l.Segments)
		s.answer(w, res, err)
	})
}
