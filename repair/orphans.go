package repair

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"depot"
	"depot/dataserver"
	"depot/nameserver/nsclient"
)

// DefaultOrphanGrace is Config.OrphanGrace's default.
const DefaultOrphanGrace = time.Hour

// orphanRescan is how often the sweep forgets what it decided and reads
// every tag again: a safety net for a needle rewritten in place between
// two passes, which the decided set cannot tell from the one it decided.
const orphanRescan = 24 * time.Hour

// orphanBatch is how many candidates go to the nameserver at once.
const orphanBatch = 1024

// orphanState is what the sweep remembers between passes: per shard slot,
// the ids of the live needles it decided (native, committed, member 0's
// to sweep, or sent to the nameserver), ascending. A needle live now and
// not in the set is looked at: a new write, but also one whose id is
// below others already decided (needle ids come from leases that writers
// may hold for long) and one that is live again after its delete (a late
// write or a repair copy reaching this member after the delete passed).
// The zero value is ready.
type orphanState struct {
	mu      sync.Mutex
	decided map[nsclient.ShardRef][]decidedNeedle
	reset   time.Time
	// restored is the nameserver's restore count (RepairTasks.Restored)
	// that the decisions were made under: a restore rewinds the
	// namespace, so a needle referenced then may be an orphan now.
	restored uint64
}

// decidedNeedle names a needle as the sweep decided it: the offset of its
// record tells a needle written again since (a late write or repair copy
// after its delete) from the one decided. A compaction moves every record,
// so the slot's needles are looked at once more after one.
type decidedNeedle struct {
	id     depot.NeedleID
	record int64
}

func decidedOf(ni dataserver.NeedleInfo) decidedNeedle {
	return decidedNeedle{id: ni.ID, record: ni.Record}
}

func cmpDecided(a, b decidedNeedle) int {
	if c := cmp.Compare(a.id, b.id); c != 0 {
		return c
	}
	return cmp.Compare(a.record, b.record)
}

// pendingTag is the part of a segment tag (client/doc.go) the sweep reads.
type pendingTag struct {
	Size    int64  `json:"s"`
	Pending bool   `json:"n"`
	Written int64  `json:"w"`
	Owner   string `json:"o"`
}

// readTag reads the tag of a needle's shard from the local store.
func (w *Worker) readTag(ctx context.Context, ref nsclient.ShardRef, n needleRef) (pendingTag, error) {
	var t pendingTag
	off := max(0, n.size-512)
	var buf bytes.Buffer
	if _, err := w.cfg.Store.ReadRange(ctx, ref.Volume, ref.Index, n.id, n.cookie, off, n.size-off, &buf); err != nil {
		return t, err
	}
	tail := buf.Bytes()
	l, err := tagSuffix(tail)
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal(tail[len(tail)-l:len(tail)-4], &t); err != nil {
		return t, depot.ErrCorrupt
	}
	return t, nil
}

// sweepOrphans looks for orphans in the shard slots this dataserver
// holds: live needles whose tag says they await a commit ("n") and whose
// write time ("w") is OrphanGrace old or more, and native needles as old
// that are leftovers of failed writes (nativeCheck). It sends them to the
// nameserver, which queues those that nothing references for deletion.
// Member 0 of a volume speaks for every needle it holds live (all members
// hold the same tags); another member speaks only for the needles member 0
// does not hold live — a write member 0 missed, or a needle that reached
// this member after its delete passed — so a needle is checked once in the
// steady state, yet none is left to nobody. See the package
// documentation, "Orphans".
//
// Everything decided is forgotten every orphanRescan, and when restored,
// the nameserver's count of restores from a backup, changed since the last
// pass: a restore rewinds the namespace, so segments committed after the
// backup are referenced no more.
func (w *Worker) sweepOrphans(ctx context.Context, ns *nsclient.Client, holds []nsclient.ShardRef, vols map[depot.VolumeID]depot.Volume, restored uint64) error {
	st := &w.orphans
	st.mu.Lock()
	defer st.mu.Unlock()
	now := time.Now()
	prev := st.decided
	if now.Sub(st.reset) >= orphanRescan || restored != st.restored {
		if restored != st.restored && st.decided != nil {
			w.log.Info("orphan sweep: the nameserver was restored from a backup; every needle is looked at again", "restores", restored)
		}
		prev, st.reset, st.restored = nil, now, restored
	}
	// Slots no longer held are forgotten.
	st.decided = make(map[nsclient.ShardRef][]decidedNeedle, len(holds))
	var errs []error
	for _, ref := range holds {
		if err := ctx.Err(); err != nil {
			return err
		}
		decided, err := w.sweepSlot(ctx, ns, ref, vols[ref.Volume], prev[ref], now)
		if err != nil {
			errs = append(errs, err)
		}
		st.decided[ref] = decided
	}
	return errors.Join(errs...)
}

// nativeCheck decides, for one pass over one shard slot, whether native
// needles are leftovers of failed writes (the package documentation,
// "Failed native writes"). It lists each volume's members once.
type nativeCheck struct {
	w  *Worker
	ns *nsclient.Client
	// copies counts, per volume, the members that hold each needle live;
	// nil for a volume that could not be listed whole.
	copies map[depot.VolumeID]map[depot.Fid]int
	k      map[depot.VolumeID]int
}

// failed reports whether fid, a native needle, is garbage: fewer than k
// members of its volume hold it, or it names an owner (the manifest of its
// blob) that fewer than k members hold. known is false when that cannot be
// told now (a member did not answer, the volume is being repaired).
func (c *nativeCheck) failed(ctx context.Context, fid depot.Fid, owner string) (failed, known bool) {
	ok, known := c.readable(ctx, fid)
	if !known || !ok {
		return !ok, known
	}
	if owner == "" {
		return false, true
	}
	of, err := depot.ParseFid(owner)
	if err != nil {
		return false, false // a damaged tag: leave it to scrub
	}
	ok, known = c.readable(ctx, of)
	return !ok, known
}

// readable reports whether at least k members of fid's volume hold fid
// live, every member having answered.
func (c *nativeCheck) readable(ctx context.Context, fid depot.Fid) (ok, known bool) {
	if c.copies == nil {
		c.copies, c.k = make(map[depot.VolumeID]map[depot.Fid]int), make(map[depot.VolumeID]int)
	}
	counts, seen := c.copies[fid.Volume]
	if !seen {
		counts = c.list(ctx, fid.Volume)
		c.copies[fid.Volume] = counts
	}
	if counts == nil {
		return false, false
	}
	return counts[fid] >= c.k[fid.Volume], true
}

// list counts the live copies of every needle of vol over its members, or
// returns nil when a member cannot be listed or a member is being rebuilt.
func (c *nativeCheck) list(ctx context.Context, vol depot.VolumeID) map[depot.Fid]int {
	v, err := c.ns.Volume(ctx, vol)
	if err != nil || v.State == depot.VolumeRepairing || len(v.Members) != v.K+v.M {
		return nil
	}
	c.k[vol] = v.K
	counts := make(map[depot.Fid]int)
	for idx := range v.Members {
		if v.Members[idx].Index != idx {
			return nil
		}
		list, err := c.w.listPeer(ctx, v, idx)
		if err != nil {
			return nil
		}
		for _, n := range list {
			if !n.deleted {
				counts[depot.Fid{Volume: vol, Needle: n.id, Cookie: n.cookie}]++
			}
		}
	}
	return counts
}

// sweepSlot is sweepOrphans for one shard slot of volume v, given the ids
// decided at the last pass; it returns those decided now.
func (w *Worker) sweepSlot(ctx context.Context, ns *nsclient.Client, ref nsclient.ShardRef, v depot.Volume, prev []decidedNeedle, now time.Time) ([]decidedNeedle, error) {
	list, err := w.cfg.Store.List(ctx, ref.Volume, ref.Index)
	if errors.Is(err, depot.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return prev, err
	}
	// Live needles not decided before, and those still live that were.
	var todo []dataserver.NeedleInfo
	decided := make([]decidedNeedle, 0, len(prev))
	for _, ni := range list { // in id order, as prev
		if ni.Deleted {
			continue
		}
		if _, ok := slices.BinarySearchFunc(prev, decidedOf(ni), cmpDecided); ok {
			decided = append(decided, decidedOf(ni))
		} else {
			todo = append(todo, ni)
		}
	}
	if len(todo) == 0 {
		return decided, nil
	}
	// Needles member 0 holds live are its to sweep. Asked only when this
	// slot has needles to look at. Without the answer (member 0 down), or
	// while a member is being rebuilt (member 0 may be the one, empty so
	// far), they wait for a later pass, as anti-entropy's comparison does.
	var first map[depot.NeedleID]bool
	if ref.Index != 0 {
		if len(v.Members) == 0 || v.State == depot.VolumeRepairing {
			return decided, nil
		}
		theirs, err := w.listPeer(ctx, v, 0)
		if err != nil {
			return decided, nil // see above: not this slot's error
		}
		first = make(map[depot.NeedleID]bool, len(theirs))
		for _, r := range theirs {
			if !r.deleted {
				first[r.id] = true
			}
		}
	}
	native := nativeCheck{w: w, ns: ns}
	var cands []depot.Segment
	var candIDs []decidedNeedle
	for _, ni := range todo {
		if first[ni.ID] {
			decided = append(decided, decidedOf(ni))
			continue
		}
		t, err := w.readTag(ctx, ref, needleRef{id: ni.ID, cookie: ni.Cookie, size: ni.Size})
		switch {
		case err != nil:
			// Corrupt or vanished: scrub and repair deal with it; look
			// again next pass.
		case !t.Pending && t.Written == 0:
			// Older than the "n" and "w" fields: never swept.
			decided = append(decided, decidedOf(ni))
		case now.Sub(time.Unix(t.Written, 0)) < w.cfg.OrphanGrace:
			// Its commit may be on its way: look again next pass.
		case !t.Pending:
			// A native blob's needle: a leftover of a failed write when
			// it, or the manifest it names, cannot be read.
			fid := depot.Fid{Volume: ref.Volume, Needle: ni.ID, Cookie: ni.Cookie}
			failed, known := native.failed(ctx, fid, t.Owner)
			switch {
			case !known: // look again next pass
			case failed:
				cands = append(cands, depot.Segment{Fid: fid.String(), Size: t.Size})
				candIDs = append(candIDs, decidedOf(ni))
			default:
				decided = append(decided, decidedOf(ni))
			}
		default:
			fid := depot.Fid{Volume: ref.Volume, Needle: ni.ID, Cookie: ni.Cookie}
			cands = append(cands, depot.Segment{Fid: fid.String(), Size: t.Size})
			candIDs = append(candIDs, decidedOf(ni))
		}
	}
	var errs []error
	for i, chunk := range slices.Collect(slices.Chunk(cands, orphanBatch)) {
		res, err := ns.SweepOrphans(ctx, chunk)
		if err != nil {
			// Not decided: looked at again next pass.
			errs = append(errs, err)
			break
		}
		// Referenced (kept) or queued for deletion: decided either way.
		decided = append(decided, candIDs[i*orphanBatch:i*orphanBatch+len(chunk)]...)
		if len(res.Queued) > 0 {
			w.differences.WithLabelValues("orphan").Add(float64(len(res.Queued)))
			w.log.Info("orphans queued for deletion", "volume", ref.Volume, "index", ref.Index, "segments", len(res.Queued))
		}
	}
	slices.SortFunc(decided, cmpDecided)
	return decided, errors.Join(errs...)
}
