package dataserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"depot"
)

// ScrubResult reports one pass of Scrub.
type ScrubResult struct {
	Needles int64 // needles read
	Bytes   int64 // needle bytes read and verified
	Corrupt int64 // needles whose checksums failed
}

// Scrub re-reads every live needle of every shard file and verifies its
// checksums, block by block, as a read does. Before each needle it calls
// throttle with the needle's size, which may wait to bound the rate (or
// fail to stop the pass). corrupt is called for each needle that failed
// its checksums, so that the caller can report it for repair. Scrub stops
// with ctx's error when ctx ends.
func (s *Store) Scrub(ctx context.Context, throttle func(ctx context.Context, n int64) error,
	corrupt func(vol depot.VolumeID, idx int, id depot.NeedleID, cookie depot.Cookie)) (ScrubResult, error) {
	var res ScrubResult
	for _, f := range s.allFiles() {
		ns, err := f.list(ctx)
		if err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return res, err
			}
			continue // dropped or compacted away meanwhile
		}
		for _, n := range ns {
			if n.Deleted {
				continue
			}
			if err := throttle(ctx, n.Size); err != nil {
				return res, err
			}
			nd, err := s.Open(ctx, f.key.vol, f.key.idx, n.ID, n.Cookie)
			if err == nil {
				var read int64
				read, err = nd.ReadRange(ctx, io.Discard, 0, nd.Size())
				nd.Close()
				res.Bytes += read
			}
			res.Needles++
			switch {
			case errors.Is(err, depot.ErrCorrupt):
				res.Corrupt++
				corrupt(f.key.vol, f.key.idx, n.ID, n.Cookie)
			case errors.Is(err, ErrClosed) || ctx.Err() != nil:
				return res, errors.Join(err, ctx.Err())
			}
		}
	}
	return res, nil
}

// DropShard closes shard file idx of volume vol and removes it and its
// index checkpoint from disk. Repair calls it for a stale copy: a shard
// file whose volume slot was rebuilt on another dataserver while this one
// was away. An unknown shard file is ErrNotFound.
func (s *Store) DropShard(ctx context.Context, vol depot.VolumeID, idx int) error {
	k, err := checkKey(vol, idx)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.createM.Lock()
	defer s.createM.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	f, ok := s.files[k]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("%v: %w", k, depot.ErrNotFound)
	}
	delete(s.files, k)
	s.mu.Unlock()

	f.ckptMu.Lock()
	defer f.ckptMu.Unlock()
	cerr := f.close()
	f.mu.RLock()
	size := f.fileBytes
	f.mu.RUnlock()
	var errs []error
	for _, p := range []string{f.path, f.idxPath()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	f.dir.used.Add(-size - f.ckptBytes)
	if err := syncDir(f.dir.path); err != nil {
		errs = append(errs, err)
	}
	s.log.Info("shard file dropped", "shard", k.String(), "bytes", size, "close_err", cerr)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dataserver: drop %v: %w", k, err)
	}
	return nil
}
