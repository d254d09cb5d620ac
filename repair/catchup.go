package repair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"depot"
	"depot/erasure"
	"depot/nameserver/nsclient"
)

// Catch-up of missed writes, and how repair failures are made visible.
// See the package documentation, "Catch-up" and "Failures".

// Reasons of depot_repair_failures_total.
const (
	reasonPartial     = "partial"     // no k members hold the needle alike: never fully written
	reasonUnavailable = "unavailable" // too few members answered: retried
	reasonWrite       = "write"       // the local store refused the rebuilt needle
	reasonJob         = "job"         // a shard rebuild or move attempt failed as a whole
)

// errPartial is returned by rebuildShard for a needle that every other
// member answered for but that no k of them hold alike (same length, a
// valid tag suffix): a shard upload that was cut short and stored by an
// older dataserver, never acknowledged. Rebuilding it again cannot help.
var errPartial = errors.New("no k members hold the needle alike: never fully written")

// failureReason classifies a needle rebuild error for the metric and the
// logs.
func failureReason(err error) string {
	switch {
	case errors.Is(err, errPartial):
		return reasonPartial
	case errors.Is(err, erasure.ErrTooFewShards):
		return reasonUnavailable
	default:
		return reasonWrite
	}
}

// warnEvery is how often one repeated failure is logged at warn level; the
// repeats in between go to debug, so a failure that recurs every pass is
// seen without flooding the log.
const warnEvery = time.Minute

// failLog rate-limits failure logs per key (a fid, a job).
type failLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// logFailure counts a failure of the given reason and logs it: at warn
// level the first time and then at most every warnEvery per key.
func (w *Worker) logFailure(key, reason, msg string, args ...any) {
	w.failures.WithLabelValues(reason).Inc()
	level := slog.LevelDebug
	now := time.Now()
	w.failLog.mu.Lock()
	if w.failLog.last == nil || len(w.failLog.last) > 4096 {
		w.failLog.last = make(map[string]time.Time) // bounded: a fresh start warns again
	}
	if now.Sub(w.failLog.last[key]) >= warnEvery {
		w.failLog.last[key] = now
		level = slog.LevelWarn
	}
	w.failLog.mu.Unlock()
	w.log.Log(context.Background(), level, msg, append(args, "reason", reason)...)
}

// offerOrphan hands a needle that can never be rebuilt (errPartial) to the
// orphan sweep's nameserver side, which queues it for deletion on every
// member unless a namespace entry references it. A partial needle was
// never acknowledged, so none does; the check keeps the decision where
// references are known.
func (w *Worker) offerOrphan(ctx context.Context, ns *nsclient.Client, fid depot.Fid) {
	res, err := ns.SweepOrphans(ctx, []depot.Segment{{Fid: fid.String()}})
	if err != nil {
		w.log.Warn("partial needle not handed to the orphan sweep", "fid", fid.String(), "err", err)
		return
	}
	if len(res.Queued) > 0 {
		w.differences.WithLabelValues("orphan").Inc()
	}
}

// Rejoined tells the worker that its dataserver has just seen the cluster
// again after losing it (a partition healed, a long pause ended): the
// writes it missed meanwhile are caught up now, not at the next interval,
// and the time that takes is measured (depot_repair_catchup_seconds).
// Start counts as a return too. It never blocks.
func (w *Worker) Rejoined() {
	w.catchMu.Lock()
	if w.returned.IsZero() {
		w.returned = time.Now()
	}
	w.catchMu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// missedLoop repairs the missed writes of the shards this dataserver holds,
// apart from the task loop so that a long shard rebuild never delays them:
// at once on start and on Rejoined, again without pause while a pass
// finds work, else every Config.Interval.
func (w *Worker) missedLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		done, err := w.missedPass(ctx)
		if err != nil && ctx.Err() == nil {
			w.log.Debug("missed-write pass", "err", err)
		}
		if done > 0 {
			continue // progress: more may be queued than one answer lists
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.wake:
		}
	}
}

// missedPass fetches the missed writes of this dataserver's shards and
// repairs them; it returns how many shards it cleared. A pass that finds
// none ends a catch-up under way.
func (w *Worker) missedPass(ctx context.Context) (int, error) {
	ns, err := w.cfg.Nameserver()
	if err != nil {
		return 0, err
	}
	tasks, err := ns.RepairTasks(ctx, w.cfg.Node)
	if err != nil {
		return 0, err
	}
	if len(tasks.Missed) == 0 {
		w.caughtUp()
		return 0, nil
	}
	vols := make(map[depot.VolumeID]depot.Volume, len(tasks.Volumes))
	for _, v := range tasks.Volumes {
		vols[v.ID] = v
	}
	return w.repairMissed(ctx, ns, tasks.Missed, vols)
}

// caughtUp records the end of the catch-up after a return, if one is
// under way.
func (w *Worker) caughtUp() {
	w.catchMu.Lock()
	since := w.returned
	w.returned = time.Time{}
	w.catchMu.Unlock()
	if since.IsZero() {
		return
	}
	d := time.Since(since)
	w.catchUpTime.Set(d.Seconds())
	w.catchUps.Inc()
	w.log.Info("caught up with missed writes", "took", d.Round(time.Millisecond))
}

// jobFailed makes a failed attempt of job j visible: counted, logged at
// warn level (rate-limited) and recorded with the job on the nameserver,
// where `depot admin status` shows it.
func (w *Worker) jobFailed(ctx context.Context, ns *nsclient.Client, j nsclient.RepairJob, err error) {
	w.logFailure(fmt.Sprintf("job %d/%d", j.Volume, j.Index), reasonJob, "repair job failed; retried from its cursor",
		"volume", j.Volume, "index", j.Index, "from", j.From, "to", j.To, "move", j.Move, "cursor", j.Cursor,
		"failures", j.Failures+1, "err", err)
	msg := err.Error()
	if len(msg) > 512 {
		msg = msg[:512]
	}
	if j.Failures > 0 && j.Error == msg && time.Since(j.Updated) < warnEvery {
		return // recorded already: one command a minute per failing job at most
	}
	p := nsclient.RepairProgress{Volume: j.Volume, Index: j.Index, To: j.To, Error: msg, Failures: j.Failures + 1}
	if rerr := ns.RepairProgress(ctx, p); rerr != nil && !errors.Is(rerr, depot.ErrNotFound) {
		w.log.Debug("report job failure", "volume", j.Volume, "index", j.Index, "err", rerr)
	}
}

// switched is a shard slot switched to this dataserver (a rebuild or a
// move done), compared with its peers again once Config.MoveSettle passed.
type switched struct {
	v   depot.Volume // members as after the switch
	idx int
	at  time.Time
}

// afterSwitch is called once shard idx of v (members as before the
// switch) became this dataserver's: every live needle its peers hold and
// it lacks is recorded as a missed write of the slot at once, so needle-
// level repair fetches it, instead of waiting for anti-entropy. Those are
// writes that reached the old member (back, or alive for a move) while the
// job ran; a writer that still used the old member list for up to its
// VolumeTTL after the switch is caught by the second comparison, made
// MoveSettle later (recheckSwitched).
func (w *Worker) afterSwitch(ctx context.Context, v depot.Volume, idx int) {
	v.Members = append([]depot.Member(nil), v.Members...)
	v.Members[idx] = depot.Member{Index: idx, Node: w.cfg.Node}
	if err := w.reportMissing(ctx, v, idx); err != nil {
		w.log.Warn("catch-up after the switch failed; compared again later", "volume", v.ID, "index", idx, "err", err)
	}
	w.switchMu.Lock()
	w.switched = append(w.switched, switched{v: v, idx: idx, at: time.Now()})
	w.switchMu.Unlock()
}

// recheckSwitched makes the second comparison of the slots switched here
// MoveSettle ago or more.
func (w *Worker) recheckSwitched(ctx context.Context) error {
	w.switchMu.Lock()
	var due []switched
	keep := w.switched[:0]
	for _, s := range w.switched {
		if time.Since(s.at) >= w.cfg.MoveSettle {
			due = append(due, s)
		} else {
			keep = append(keep, s)
		}
	}
	w.switched = keep
	w.switchMu.Unlock()
	var errs []error
	for _, s := range due {
		if err := w.reportMissing(ctx, s.v, s.idx); err != nil {
			errs = append(errs, fmt.Errorf("recheck %d/%d: %w", s.v.ID, s.idx, err))
		}
	}
	return errors.Join(errs...)
}

// reportMissing lists the other members of v and records as missed writes
// of shard idx the live needles (deleted on none) that some of them hold
// and the local store lacks. Needle-level repair then rebuilds each, or
// clears it when too few members have it (a write under way, or never
// acknowledged).
func (w *Worker) reportMissing(ctx context.Context, v depot.Volume, idx int) error {
	type listed struct {
		refs []needleRef
		err  error
	}
	lists := make([]listed, len(v.Members))
	var wg sync.WaitGroup
	for i := range v.Members {
		if i != idx {
			wg.Go(func() {
				refs, err := w.listPeer(ctx, v, i)
				lists[i] = listed{refs, err}
			})
		}
	}
	wg.Wait()
	union := make(map[depot.NeedleID]needleRef)
	deleted := make(map[depot.NeedleID]bool)
	answered := 0
	for i, l := range lists {
		if i == idx || l.err != nil {
			continue
		}
		answered++
		for _, r := range l.refs {
			if r.deleted {
				deleted[r.id] = true
			} else {
				union[r.id] = r
			}
		}
	}
	if answered == 0 {
		return fmt.Errorf("%w: no other member of volume %d answered", erasure.ErrTooFewShards, v.ID)
	}
	ours, err := w.cfg.Store.List(ctx, v.ID, idx)
	if err != nil && !errors.Is(err, depot.ErrNotFound) {
		return err
	}
	have := make(map[depot.NeedleID]bool, len(ours))
	for _, n := range ours {
		have[n.ID] = true
	}
	var missing []nsclient.MissedWrite
	for id, r := range union {
		if !have[id] && !deleted[id] {
			fid := depot.Fid{Volume: v.ID, Needle: id, Cookie: r.cookie}
			missing = append(missing, nsclient.MissedWrite{Fid: fid.String(), Shards: []int{idx}})
		}
	}
	if len(missing) == 0 {
		return nil
	}
	w.differences.WithLabelValues("missing_needle").Add(float64(len(missing)))
	w.log.Info("needles missing here after a member switch: queued for needle repair", "volume", v.ID, "index", idx,
		"count", len(missing))
	return w.report(ctx, missing)
}

// dropCancelled drops the partial copies of jobs that targeted this
// dataserver in the last pass and are gone now without the slot becoming
// its own: cancelled (the lost member came back, nameserver
// cancelReturned) or moved to another target. Anti-entropy would drop
// them too, minutes later; fsck would count them meanwhile.
func (w *Worker) dropCancelled(ctx context.Context, tasks nsclient.RepairTasks) error {
	now := make(map[nsclient.ShardRef]bool, len(tasks.Jobs))
	for _, j := range tasks.Jobs {
		now[nsclient.ShardRef{Volume: j.Volume, Index: j.Index}] = true
	}
	keep := make(map[nsclient.ShardRef]bool, len(tasks.Holds)+len(tasks.Retired))
	for _, r := range tasks.Holds {
		keep[r] = true
	}
	for _, r := range tasks.Retired {
		keep[r] = true
	}
	w.switchMu.Lock()
	prev := w.targets
	w.targets = now
	w.switchMu.Unlock()
	var errs []error
	for ref := range prev {
		if now[ref] || keep[ref] {
			continue
		}
		w.log.Info("repair job cancelled or moved away: dropping its partial copy", "volume", ref.Volume, "index", ref.Index)
		w.differences.WithLabelValues("stale").Inc()
		if err := w.cfg.Store.DropShard(ctx, ref.Volume, ref.Index); err != nil && !errors.Is(err, depot.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
