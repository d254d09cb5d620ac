package testcluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"depot"
	"depot/dataserver"
	"depot/internal/node"
	"depot/nameserver/nsclient"
)

// Fsck compares the nameserver's metadata with what the dataservers hold
// and returns every difference, one line each (nil when all is well):
//
//   - a volume member that is not running, or a volume not at full width;
//   - a live needle that some member of its volume lacks, holds deleted or
//     holds with another size (needles still in the delete queue are left
//     out: their deletion is under way);
//   - a shard file on a dataserver that is no member of that slot;
//   - repair work still pending: jobs and missed or corrupt shards;
//   - a segment of a namespace object whose needle no member holds.
func (c *Cluster) Fsck(ctx context.Context) ([]string, error) {
	ns := c.NSClient()
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	running := make(map[string]*dataserver.Store)
	for i := range c.Dataservers() {
		if d := c.Dataserver(i); d != nil {
			running[node.DataserverID(i)] = d.Server.Store()
		}
	}
	vols, err := ns.Volumes(ctx)
	if err != nil {
		return nil, err
	}
	deleting := make(map[string]bool)
	pend, err := ns.PendingDeletes(ctx, 10000)
	if err != nil {
		return nil, err
	}
	for _, pd := range pend {
		deleting[pd.Fid] = true
	}
	slots := make(map[string]map[nsclient.ShardRef]bool) // node → slots it is a member of
	live := make(map[depot.Fid]bool)
	for _, v := range vols {
		if len(v.Members) != v.K+v.M {
			add("volume %d: %d members for %d+%d", v.ID, len(v.Members), v.K, v.M)
		}
		type held struct {
			size    int64
			deleted bool
		}
		per := make([]map[depot.NeedleID]held, len(v.Members))
		cookies := make(map[depot.NeedleID]depot.Cookie)
		for i, m := range v.Members {
			if slots[m.Node] == nil {
				slots[m.Node] = make(map[nsclient.ShardRef]bool)
			}
			slots[m.Node][nsclient.ShardRef{Volume: v.ID, Index: i}] = true
			st, ok := running[m.Node]
			if !ok {
				add("volume %d: member %d on %s is not running", v.ID, i, m.Node)
				continue
			}
			ns, err := st.List(ctx, v.ID, i)
			if errors.Is(err, depot.ErrNotFound) {
				ns, err = nil, nil
			}
			if err != nil {
				add("volume %d: member %d on %s: list: %v", v.ID, i, m.Node, err)
				continue
			}
			per[i] = make(map[depot.NeedleID]held, len(ns))
			for _, n := range ns {
				per[i][n.ID] = held{n.Size, n.Deleted}
				cookies[n.ID] = n.Cookie
			}
		}
		ids := make([]depot.NeedleID, 0, len(cookies))
		for id := range cookies {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			fid := depot.Fid{Volume: v.ID, Needle: id, Cookie: cookies[id]}
			if deleting[fid.String()] {
				continue
			}
			size, anyLive := int64(-1), false
			for i := range per {
				if h, ok := per[i][id]; ok && !h.deleted {
					anyLive = true
					if size < 0 {
						size = h.size
					}
				}
			}
			if !anyLive {
				continue
			}
			live[fid] = true
			for i := range per {
				if per[i] == nil {
					continue
				}
				h, ok := per[i][id]
				switch {
				case !ok:
					add("needle %s: missing on member %d (%s)", fid, i, v.Members[i].Node)
				case h.deleted:
					add("needle %s: deleted on member %d (%s), live elsewhere", fid, i, v.Members[i].Node)
				case h.size != size:
					add("needle %s: %d bytes on member %d (%s), %d elsewhere", fid, h.size, i, v.Members[i].Node, size)
				}
			}
		}
	}
	for id, st := range running {
		for _, f := range st.Status().Files {
			if !slots[id][nsclient.ShardRef{Volume: f.Volume, Index: f.Index}] {
				add("%s holds shard file %d/%d but is no member of that slot", id, f.Volume, f.Index)
			}
		}
	}
	rs, err := ns.RepairStatus(ctx)
	if err != nil {
		return nil, err
	}
	for _, j := range rs.Jobs {
		add("repair job pending: volume %d shard %d from %s to %s", j.Volume, j.Index, j.From, j.To)
	}
	if rs.Missed > 0 {
		add("%d missed or corrupt shards awaiting repair", rs.Missed)
	}
	buckets, err := ns.Buckets(ctx)
	if err != nil {
		return nil, err
	}
	// Every version of every object, current or not.
	for _, b := range buckets {
		var opts nsclient.VersionListOptions
		opts.Limit = 1000
		for range 100000 {
			res, err := ns.ListVersions(ctx, b.Name, opts)
			if err != nil {
				return nil, err
			}
			for _, o := range res.Versions {
				for _, sg := range o.Segments {
					fid, err := depot.ParseFid(sg.Fid)
					if err != nil || !live[fid] {
						add("object %s/%s version %q: segment %s held by no member", b.Name, o.Key, o.VersionID, sg.Fid)
					}
				}
			}
			if !res.Truncated {
				break
			}
			opts.KeyMarker, opts.VersionIDMarker = res.NextKeyMarker, res.NextVersionIDMarker
		}
	}
	return problems, nil
}

// MustFsck fails the test with every difference Fsck finds.
func (c *Cluster) MustFsck(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	problems, err := c.Fsck(ctx)
	if err != nil {
		t.Fatalf("fsck: %v", err)
	}
	for i, p := range problems {
		if i == 20 {
			t.Errorf("fsck: ... and %d more", len(problems)-i)
			break
		}
		t.Errorf("fsck: %s", p)
	}
}

// WaitHealed polls until Fsck finds nothing wrong, or fails the test
// after timeout with the last differences.
func (c *Cluster) WaitHealed(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		problems, err := c.Fsck(ctx)
		cancel()
		if err == nil && len(problems) == 0 {
			return
		}
		last = problems
		if err != nil {
			last = append(last, err.Error())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, p := range last {
		if i == 20 {
			break
		}
		t.Errorf("not healed: %s", p)
	}
	t.Fatalf("cluster not healed after %v: %d differences", timeout, len(last))
}
