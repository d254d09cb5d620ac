package repair

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"depot"
	"depot/dataserver"
	"depot/nameserver/nsclient"
)

// Moves of healthy shards (rebalance and drain); see the package
// documentation, "Moves".

// maxCatchUp bounds the catch-up passes before a switch.
const maxCatchUp = 5

// runMove copies shard j.Index of v from its member j.From to the local
// store, catches up with what was written meanwhile, and reports the job
// done, which switches the member list. When From cannot be listed it
// falls back to a rebuild from k peers (runJob).
func (w *Worker) runMove(ctx context.Context, ns *nsclient.Client, j nsclient.RepairJob, v depot.Volume) error {
	if j.Index >= len(v.Members) || v.Members[j.Index].Node != j.From {
		return fmt.Errorf("move %d/%d: %s is no longer the member", j.Volume, j.Index, j.From)
	}
	refs, err := w.listPeer(ctx, v, j.Index)
	if err != nil {
		w.log.Info("move: source unreachable, rebuilding from peers", "volume", v.ID, "index", j.Index, "from", j.From, "err", err)
		return w.runJob(ctx, ns, j, v, 1)
	}
	todo, total := pending(slices.Values(refs), j.Cursor)
	prog := nsclient.RepairProgress{Volume: j.Volume, Index: j.Index, To: j.To, Cursor: j.Cursor,
		Needles: j.Needles, Bytes: j.Bytes, Total: max(total, j.Bytes)}
	w.log.Info("moving shard", "volume", v.ID, "index", j.Index, "from", j.From, "needles", len(todo), "cursor", j.Cursor)
	last := time.Now()
	for batch := range slices.Chunk(todo, w.cfg.Parallel*4) {
		n, err := w.copyNeedles(ctx, v, j.Index, batch)
		prog.Needles += int64(len(batch))
		prog.Bytes += n
		if err != nil {
			return err // resumed from the last reported cursor
		}
		prog.Cursor = batch[len(batch)-1].id
		if time.Since(last) >= time.Second {
			last = time.Now()
			if err := ns.RepairProgress(ctx, prog); err != nil {
				return fmt.Errorf("progress: %w", err)
			}
		}
	}
	// Writes that reached From while it was copied.
	for range maxCatchUp {
		n, changed, err := w.catchUp(ctx, v, j.Index, true)
		if err != nil {
			return err
		}
		prog.Bytes += n
		if changed == 0 {
			break
		}
	}
	prog.Done = true
	prog.Total = max(prog.Total, prog.Bytes)
	if err := ns.RepairProgress(ctx, prog); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	w.log.Info("shard moved: member switched", "volume", v.ID, "index", j.Index, "from", j.From, "bytes", prog.Bytes)
	w.afterSwitch(ctx, v, j.Index)
	return nil
}

// copyNeedles copies the listed needles of shard idx from its member in v
// (a whole needle, tag suffix included), or rebuilds one from k peers when
// the member fails to give it; it returns the bytes written.
func (w *Worker) copyNeedles(ctx context.Context, v depot.Volume, idx int, refs []needleRef) (int64, error) {
	type result struct {
		n   int64
		err error
	}
	res := make([]result, len(refs))
	sem := make(chan struct{}, w.cfg.Parallel)
	var wg sync.WaitGroup
	for i, r := range refs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			res[i].err = ctx.Err()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			res[i].n, res[i].err = w.copyNeedle(ctx, v, idx, r)
		})
	}
	wg.Wait()
	var total int64
	var errs []error
	for i, r := range res {
		total += r.n
		if r.err != nil {
			w.failures.WithLabelValues(failureReason(r.err)).Inc()
			errs = append(errs, fmt.Errorf("needle %x: %w", uint64(refs[i].id), r.err))
		}
	}
	return total, errors.Join(errs...)
}

func (w *Worker) copyNeedle(ctx context.Context, v depot.Volume, idx int, r needleRef) (int64, error) {
	f := w.fetchShard(ctx, v, idx, r.id, r.cookie)
	if f.notFound {
		return 0, nil // deleted meanwhile
	}
	if f.err == nil {
		if _, err := tagSuffix(f.b); err != nil {
			f.err = err
		}
	}
	if f.err != nil {
		w.log.Debug("move: copy failed, rebuilding the needle", "volume", v.ID, "index", idx, "needle", uint64(r.id), "err", f.err)
		n, _, err := w.rebuildNeedle(ctx, v, idx, r.id, r.cookie)
		if errors.Is(err, errPartial) {
			// Never written whole, on From as elsewhere: nothing to move;
			// the orphan sweep takes the pieces.
			fid := depot.Fid{Volume: v.ID, Needle: r.id, Cookie: r.cookie}
			w.logFailure(fid.String(), reasonPartial, "move skipped a needle never written whole", "fid", fid.String(),
				"shard", idx, "err", err)
			if ns, nerr := w.cfg.Nameserver(); nerr == nil {
				w.offerOrphan(ctx, ns, fid)
			}
			return 0, nil
		}
		if err == nil {
			w.repairNeedles.WithLabelValues("move").Inc()
		}
		return n, err
	}
	if err := w.rate.wait(ctx, int64(len(f.b))); err != nil {
		return 0, err
	}
	if _, err := w.cfg.Store.Rewrite(ctx, v.ID, idx, r.id, r.cookie, bytes.NewReader(f.b), int64(len(f.b))); err != nil {
		return 0, fmt.Errorf("write shard %d: %w", idx, err)
	}
	w.repairBytes.Add(float64(len(f.b)))
	w.repairNeedles.WithLabelValues("move").Inc()
	return int64(len(f.b)), nil
}

// catchUp lists shard idx on its member in v and makes the local copy
// follow it: needles it has live and the local store lacks are copied,
// needles it deleted are deleted here. With mirror (before the switch,
// when every local needle came from the member), a local needle the member
// no longer lists at all (deleted, then compacted away) is deleted too.
// It returns the bytes copied and how many needles changed.
func (w *Worker) catchUp(ctx context.Context, v depot.Volume, idx int, mirror bool) (int64, int, error) {
	theirs, err := w.listPeer(ctx, v, idx)
	if err != nil {
		return 0, 0, err
	}
	ours, err := w.cfg.Store.List(ctx, v.ID, idx)
	if err != nil && !errors.Is(err, depot.ErrNotFound) {
		return 0, 0, err
	}
	have := make(map[depot.NeedleID]dataserver.NeedleInfo, len(ours))
	for _, n := range ours {
		have[n.ID] = n
	}
	var todo []needleRef
	changed := 0
	for _, r := range theirs {
		h, ok := have[r.id]
		switch {
		case !ok && !r.deleted:
			todo = append(todo, r)
		case ok && r.deleted && !h.Deleted:
			if err := w.cfg.Store.Delete(ctx, v.ID, idx, r.id, r.cookie); err != nil && !errors.Is(err, depot.ErrNotFound) {
				return 0, changed, fmt.Errorf("delete needle %x: %w", uint64(r.id), err)
			}
			changed++
		}
	}
	if mirror && len(theirs) > 0 {
		listed := make(map[depot.NeedleID]bool, len(theirs))
		for _, r := range theirs {
			listed[r.id] = true
		}
		for _, h := range ours {
			if h.Deleted || listed[h.ID] {
				continue
			}
			if err := w.cfg.Store.Delete(ctx, v.ID, idx, h.ID, h.Cookie); err != nil && !errors.Is(err, depot.ErrNotFound) {
				return 0, changed, fmt.Errorf("delete needle %x: %w", uint64(h.ID), err)
			}
			changed++
		}
	}
	changed += len(todo)
	n, err := w.copyNeedles(ctx, v, idx, todo)
	return n, changed, err
}

// settleMoves finishes switched moves to this dataserver once
// Config.MoveSettle passed since the switch: a last catch-up from the old
// copy (writers with a stale member list may have written there), then
// POST /rebalance/settled, after which the old member drops its copy.
func (w *Worker) settleMoves(ctx context.Context, ns *nsclient.Client, settle []nsclient.RepairJob, vols map[depot.VolumeID]depot.Volume) error {
	var errs []error
	for _, j := range settle {
		if time.Since(j.Updated) < w.cfg.MoveSettle {
			continue
		}
		v, ok := vols[j.Volume]
		if !ok || j.Index >= len(v.Members) {
			continue
		}
		if j.FromAddr != "" {
			old := v
			old.Members = slices.Clone(v.Members)
			old.Members[j.Index] = depot.Member{Index: j.Index, Node: j.From, Addr: j.FromAddr}
			if _, _, err := w.catchUp(ctx, old, j.Index, false); err != nil {
				// The old copy is unreachable: what it alone took is caught
				// up by anti-entropy and needle-level repair.
				w.log.Info("move: final catch-up failed", "volume", v.ID, "index", j.Index, "from", j.From, "err", err)
			}
		}
		err := ns.MoveSettled(ctx, nsclient.SettledRequest{Volume: j.Volume, Index: j.Index, To: j.To})
		if err != nil && !errors.Is(err, depot.ErrNotFound) {
			errs = append(errs, fmt.Errorf("settle %d/%d: %w", j.Volume, j.Index, err))
			continue
		}
		w.log.Info("move settled", "volume", v.ID, "index", j.Index, "from", j.From)
	}
	return errors.Join(errs...)
}
