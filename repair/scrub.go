package repair

import (
	"context"
	"errors"
	"fmt"
	"time"

	"depot"
	"depot/dataserver"
	"depot/nameserver/nsclient"
)

// scrubLoop scrubs the local store, one pass every ScrubInterval.
func (w *Worker) scrubLoop(ctx context.Context) {
	scrubRate := newLimiter(w.cfg.ScrubRate)
	for {
		t := time.NewTimer(w.cfg.ScrubInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		res, err := w.Scrub(ctx, scrubRate)
		if err != nil && ctx.Err() == nil {
			w.log.Warn("scrub", "err", err)
		}
		if res.Corrupt > 0 {
			w.log.Warn("scrub found corrupt needles", "needles", res.Needles, "corrupt", res.Corrupt)
		}
	}
}

// Scrub runs one scrub pass at the given rate (nil: unbounded) and records
// every corrupt needle with the nameserver for repair.
func (w *Worker) Scrub(ctx context.Context, rate *limiter) (dataserver.ScrubResult, error) {
	var errs []error
	res, err := w.cfg.Store.Scrub(ctx, func(ctx context.Context, n int64) error {
		w.scrubBytes.Add(float64(n))
		return rate.wait(ctx, n)
	}, func(vol depot.VolumeID, idx int, id depot.NeedleID, cookie depot.Cookie) {
		// Reported at once, so the repair starts while the pass goes on.
		fid := depot.Fid{Volume: vol, Needle: id, Cookie: cookie}
		errs = append(errs, w.report(ctx, []nsclient.MissedWrite{{Fid: fid.String(), Shards: []int{idx}}}))
		w.scrubCorrupt.Inc()
	})
	if err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// report records shards to rebuild with the nameserver, as missed writes.
func (w *Worker) report(ctx context.Context, list []nsclient.MissedWrite) error {
	ns, err := w.cfg.Nameserver()
	if err != nil {
		return err
	}
	var errs []error
	for _, mw := range list {
		fid, err := depot.ParseFid(mw.Fid)
		if err != nil {
			continue
		}
		if err := ns.Missed(ctx, fid, mw.Shards); err != nil && !errors.Is(err, depot.ErrNotFound) {
			errs = append(errs, fmt.Errorf("report %s: %w", mw.Fid, err))
		}
	}
	// Shards of this dataserver among them are repaired now, not at the
	// missed-write loop's next interval.
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return errors.Join(errs...)
}

// antiEntropy compares the local shard files (listed before tasks was
// fetched) with the nameserver's view; see the package documentation.
func (w *Worker) antiEntropy(ctx context.Context, ns *nsclient.Client, files []dataserver.FileStatus, tasks nsclient.RepairTasks) error {
	keep := make(map[nsclient.ShardRef]bool, len(tasks.Holds)+len(tasks.Jobs))
	for _, h := range tasks.Holds {
		keep[h] = true
	}
	for _, j := range tasks.Jobs {
		keep[nsclient.ShardRef{Volume: j.Volume, Index: j.Index}] = true
	}
	for _, r := range tasks.Retired {
		keep[r] = true // the old copy of a move that has not settled
	}
	// The nameserver's volumes first: a file is dropped only when its
	// volume is known there and its slot is held elsewhere. A volume the
	// nameserver does not know means the nameserver lost state (a wiped
	// or wrongly restored database), not that the data is garbage: those
	// files are kept and reported. Without the list nothing is dropped.
	all, err := ns.Volumes(ctx)
	if err != nil {
		return err
	}
	vols := make(map[depot.VolumeID]depot.Volume, len(all))
	for _, v := range all {
		vols[v.ID] = v
	}
	var errs []error
	for _, f := range files {
		ref := nsclient.ShardRef{Volume: f.Volume, Index: f.Index}
		if keep[ref] {
			continue
		}
		if _, known := vols[f.Volume]; !known {
			w.differences.WithLabelValues("unknown_volume").Inc()
			w.log.Warn("shard file of a volume the nameserver does not know: kept", "volume", f.Volume, "index", f.Index,
				"needles", f.Needles)
			continue
		}
		w.differences.WithLabelValues("stale").Inc()
		w.log.Info("dropping stale shard file: its slot is held elsewhere", "volume", f.Volume, "index", f.Index,
			"needles", f.Needles)
		if err := w.cfg.Store.DropShard(ctx, f.Volume, f.Index); err != nil && !errors.Is(err, depot.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	// Needles the next member has and this one lacks.
	var missing []nsclient.MissedWrite
	for _, h := range tasks.Holds {
		v, ok := vols[h.Volume]
		if !ok || h.Index >= len(v.Members) || v.State == depot.VolumeRepairing {
			continue
		}
		peer := (h.Index + 1) % len(v.Members)
		theirs, err := w.listPeer(ctx, v, peer)
		if err != nil {
			continue
		}
		ours, err := w.cfg.Store.List(ctx, h.Volume, h.Index)
		if err != nil && !errors.Is(err, depot.ErrNotFound) {
			continue
		}
		have := make(map[depot.NeedleID]bool, len(ours))
		for _, n := range ours {
			have[n.ID] = true
		}
		for _, r := range theirs {
			if !r.deleted && !have[r.id] {
				fid := depot.Fid{Volume: h.Volume, Needle: r.id, Cookie: r.cookie}
				missing = append(missing, nsclient.MissedWrite{Fid: fid.String(), Shards: []int{h.Index}})
			}
		}
	}
	if len(missing) > 0 {
		w.differences.WithLabelValues("missing_needle").Add(float64(len(missing)))
		w.log.Info("anti-entropy: needles missing here", "count", len(missing))
		errs = append(errs, w.report(ctx, missing))
	}
	errs = append(errs, w.sweepOrphans(ctx, ns, tasks.Holds, vols, tasks.Restored))
	// Compaction of files with much garbage.
	for _, f := range w.cfg.Store.Status().Files {
		if f.GarbageBytes < 1<<20 || float64(f.GarbageBytes) < w.cfg.CompactGarbage*float64(f.FileBytes) {
			continue
		}
		res, err := w.cfg.Store.Compact(ctx, f.Volume, f.Index)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		w.compactions.Inc()
		w.log.Info("compacted", "volume", f.Volume, "index", f.Index, "reclaimed", res.Reclaimed)
	}
	return errors.Join(errs...)
}
