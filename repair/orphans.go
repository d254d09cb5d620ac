package repair

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"depot"
	"depot/nameserver/nsclient"
)

// DefaultOrphanGrace is Config.OrphanGrace's default.
const DefaultOrphanGrace = time.Hour

// orphanRescan is how often the sweep forgets its cursors and reads every
// tag again: needle ids come from leases that writers may hold for long, so
// a needle can appear below a cursor after the cursor passed it.
const orphanRescan = 24 * time.Hour

// orphanBatch is how many candidates go to the nameserver at once.
const orphanBatch = 1024

// orphanState is what the sweep remembers between passes: per shard slot,
// the highest needle id below which every needle was decided (native,
// committed, or queued for deletion). The zero value is ready.
type orphanState struct {
	mu      sync.Mutex
	cursors map[nsclient.ShardRef]depot.NeedleID
	reset   time.Time
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

// sweepOrphans looks for orphans in the shard slots this dataserver holds
// as member 0 (one member per volume does the work; all hold the same
// tags): live needles whose tag says they await a commit ("n") and whose
// write time ("w") is OrphanGrace old or more, and native needles as old
// that are leftovers of failed writes (nativeCheck). It sends them to the
// nameserver, which queues those that nothing references for deletion.
// See the package documentation, "Orphans".
func (w *Worker) sweepOrphans(ctx context.Context, ns *nsclient.Client, holds []nsclient.ShardRef) error {
	st := &w.orphans
	st.mu.Lock()
	defer st.mu.Unlock()
	now := time.Now()
	if st.cursors == nil || now.Sub(st.reset) >= orphanRescan {
		st.cursors, st.reset = make(map[nsclient.ShardRef]depot.NeedleID), now
	}
	var errs []error
	for _, ref := range holds {
		if ref.Index != 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		list, err := w.cfg.Store.List(ctx, ref.Volume, ref.Index)
		if errors.Is(err, depot.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cursor := st.cursors[ref]
		advance := true // every needle so far is decided
		native := nativeCheck{w: w, ns: ns}
		var cands []depot.Segment
		var candIDs []depot.NeedleID
		for _, ni := range list { // in id order
			if ni.ID <= cursor || ni.Deleted {
				continue
			}
			decided := true
			t, err := w.readTag(ctx, ref, needleRef{id: ni.ID, cookie: ni.Cookie, size: ni.Size})
			switch {
			case err != nil:
				// Corrupt or vanished: scrub and repair deal with it; look
				// again next pass.
				decided = false
			case !t.Pending && t.Written == 0:
				// Older than the "n" and "w" fields: never swept.
			case now.Sub(time.Unix(t.Written, 0)) < w.cfg.OrphanGrace:
				decided = false // its commit may be on its way
			case !t.Pending:
				// A native blob's needle: a leftover of a failed write
				// when it, or the manifest it names, cannot be read.
				fid := depot.Fid{Volume: ref.Volume, Needle: ni.ID, Cookie: ni.Cookie}
				failed, known := native.failed(ctx, fid, t.Owner)
				if !known {
					decided = false
				} else if failed {
					cands = append(cands, depot.Segment{Fid: fid.String(), Size: t.Size})
					candIDs = append(candIDs, ni.ID)
				}
			default:
				fid := depot.Fid{Volume: ref.Volume, Needle: ni.ID, Cookie: ni.Cookie}
				cands = append(cands, depot.Segment{Fid: fid.String(), Size: t.Size})
				candIDs = append(candIDs, ni.ID)
			}
			if !decided {
				advance = false
			}
			if advance {
				cursor = ni.ID
			}
		}
		sent := true
		for chunk := range slices.Chunk(cands, orphanBatch) {
			res, err := ns.SweepOrphans(ctx, chunk)
			if err != nil {
				errs = append(errs, err)
				sent = false
				break
			}
			if len(res.Queued) > 0 {
				w.differences.WithLabelValues("orphan").Add(float64(len(res.Queued)))
				w.log.Info("orphans queued for deletion", "volume", ref.Volume, "segments", len(res.Queued))
			}
		}
		if !sent && len(candIDs) > 0 {
			// Candidates not decided: keep the cursor below the first.
			cursor = min(cursor, candIDs[0]-1)
		}
		st.cursors[ref] = cursor
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
