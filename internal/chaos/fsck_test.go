package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"depot"
	"depot/dataserver"
	"depot/nameserver/nsclient"
)

// fsck over the wire: what internal/testcluster's Fsck checks in-process,
// asked of separate processes through the nameserver API and the
// dataservers' shard API (dataserver/doc.go, "HTTP API").

// fsckResult is one pass.
type fsckResult struct {
	problems []string // anything short of full redundancy
	// Space: live needle bytes the dataservers hold, those no object
	// references and no delete is queued for (leaked), and the bytes of
	// the shard files.
	liveBytes, leakedBytes, fileBytes, garbageBytes int64
	leaked                                          []string
	objects                                         int
}

func (c *cluster) getJSON(ctx context.Context, addr, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	c.key.Sign(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{what: "GET " + addr + path, code: resp.StatusCode}
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *cluster) fsck(ctx context.Context) (fsckResult, error) {
	var r fsckResult
	add := func(format string, args ...any) { r.problems = append(r.problems, fmt.Sprintf(format, args...)) }
	running := map[string]*node{}
	for _, d := range c.nodes("dataserver") {
		if d.getState() == stateUp {
			running[d.id] = d
		}
	}
	st, err := c.nsc.Status(ctx)
	if err != nil {
		return r, err
	}
	alive := map[string]bool{}
	for _, d := range st.Dataservers {
		// Suspect counts as alive: on a loaded machine the failure detector
		// suspects members that answer; the listing below asks them anyway.
		alive[d.ID] = d.State == "alive" || d.State == "suspect"
	}
	vols, err := c.nsc.Volumes(ctx)
	if err != nil {
		return r, err
	}
	pend, err := c.nsc.PendingDeletes(ctx, 100000)
	if err != nil {
		return r, err
	}
	deleting := map[string]bool{}
	for _, pd := range pend {
		deleting[pd.Fid] = true
	}
	// References: every object's segments, and the parts of uploads in
	// progress.
	refs := map[depot.Fid]bool{}
	after := ""
	for range 10000 {
		res, err := c.nsc.List(ctx, bucket, nsclient.ListOptions{After: after, Limit: 1000})
		if err != nil {
			return r, err
		}
		for _, o := range res.Objects {
			r.objects++
			for _, sg := range o.Segments {
				fid, err := depot.ParseFid(sg.Fid)
				if err != nil {
					add("object %s: bad segment fid %q", o.Key, sg.Fid)
					continue
				}
				refs[fid] = true
			}
		}
		if !res.Truncated {
			break
		}
		after = res.Next
	}
	ups, err := c.nsc.Uploads(ctx, bucket, nsclient.UploadListOptions{})
	if err != nil {
		return r, err
	}
	for _, u := range ups.Uploads {
		info, err := c.nsc.Upload(ctx, bucket, u.Key, u.ID)
		if err != nil {
			continue
		}
		for _, p := range info.Parts {
			for _, sg := range p.Segments {
				if fid, err := depot.ParseFid(sg.Fid); err == nil {
					refs[fid] = true
				}
			}
		}
	}
	slots := map[string]map[nsclient.ShardRef]bool{}
	live := map[depot.Fid]int64{} // fid → bytes held over all members
	for _, v := range vols {
		if len(v.Members) != v.K+v.M {
			add("volume %d: %d members for %d+%d", v.ID, len(v.Members), v.K, v.M)
		}
		type held struct {
			size    int64
			deleted bool
		}
		per := make([]map[uint64]held, len(v.Members))
		cookies := map[uint64]uint32{}
		for i, m := range v.Members {
			if slots[m.Node] == nil {
				slots[m.Node] = map[nsclient.ShardRef]bool{}
			}
			slots[m.Node][nsclient.ShardRef{Volume: v.ID, Index: i}] = true
			nd, ok := running[m.Node]
			if !ok || !alive[m.Node] {
				add("volume %d: member %d on %s is not running and alive", v.ID, i, m.Node)
				continue
			}
			var list struct {
				Needles []dataserver.ListEntry `json:"needles"`
			}
			err := c.getJSON(ctx, nd.http, fmt.Sprintf("/shard/%d/%d", v.ID, i), &list)
			if err != nil {
				// A member that was never written to has no file yet.
				list.Needles = nil
				if !isNotFound(err) {
					add("volume %d: member %d on %s: %v", v.ID, i, m.Node, err)
					continue
				}
			}
			per[i] = map[uint64]held{}
			for _, e := range list.Needles {
				id, err1 := strconv.ParseUint(e.ID, 16, 64)
				ck, err2 := strconv.ParseUint(e.Cookie, 16, 32)
				if err1 != nil || err2 != nil {
					add("volume %d member %d: bad list entry %+v", v.ID, i, e)
					continue
				}
				per[i][id] = held{e.Size, e.Deleted}
				if !e.Deleted {
					cookies[id] = uint32(ck)
				}
			}
		}
		ids := make([]uint64, 0, len(cookies))
		for id := range cookies {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			fid := depot.Fid{Volume: v.ID, Needle: depot.NeedleID(id), Cookie: depot.Cookie(cookies[id])}
			var bytes int64
			for i := range per {
				if h, ok := per[i][id]; ok && !h.deleted {
					bytes += h.size
				}
			}
			live[fid] = bytes
			// Only what the namespace references must be whole: a needle of
			// a failed write is the orphan sweep's (the leak check below).
			if deleting[fid.String()] || !refs[fid] {
				continue
			}
			size := int64(-1)
			for i := range per {
				if h, ok := per[i][id]; ok && !h.deleted && size < 0 {
					size = h.size
				}
			}
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
	for id, nd := range running {
		var s dataserver.StatusResponse
		if err := c.getJSON(ctx, nd.http, "/status", &s); err != nil {
			add("%s /status: %v", id, err)
			continue
		}
		for _, f := range s.Files {
			r.fileBytes += f.FileBytes
			r.garbageBytes += f.GarbageBytes
			if !slots[id][nsclient.ShardRef{Volume: f.Volume, Index: f.Index}] {
				add("%s holds shard file %d/%d but is no member of that slot", id, f.Volume, f.Index)
			}
		}
	}
	rs, err := c.nsc.RepairStatus(ctx)
	if err != nil {
		return r, err
	}
	for _, j := range rs.Jobs {
		add("repair job pending: volume %d shard %d from %s to %s", j.Volume, j.Index, j.From, j.To)
	}
	if rs.Missed > 0 {
		add("%d missed or corrupt shards awaiting repair", rs.Missed)
	}
	for fid := range refs {
		if _, ok := live[fid]; !ok {
			add("segment %s of an object or upload is held by no member", fid)
		}
	}
	for fid, b := range live {
		r.liveBytes += b
		if !refs[fid] && !deleting[fid.String()] {
			r.leakedBytes += b
			r.leaked = append(r.leaked, fid.String())
		}
	}
	slices.Sort(r.leaked)
	return r, nil
}

// statusError is an HTTP answer other than 200.
type statusError struct {
	what string
	code int
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: %d %s", e.what, e.code, http.StatusText(e.code))
}

func isNotFound(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.code == http.StatusNotFound
}

// missingOn counts the needles that every other member of one of d's
// volumes holds live and d lacks: writes it missed and has not caught up
// with. A needle that is not on all the others (a write under way, an
// orphan of a failed one) does not count, nor does a volume with another
// member down or cut off.
func (c *cluster) missingOn(d *node) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	vols, err := c.nsc.Volumes(ctx)
	if err != nil {
		return 0, err
	}
	byID := map[string]*node{}
	for _, x := range c.nodes("dataserver") {
		byID[x.id] = x
	}
	missing := 0
	for _, v := range vols {
		mine := -1
		for i, m := range v.Members {
			if m.Node == d.id {
				mine = i
			}
		}
		if mine < 0 {
			continue
		}
		count := map[string]int{}
		var have map[string]bool
		whole := true
		for _, m := range v.Members {
			if x := byID[m.Node]; x == nil || x.getState() != stateUp || x.isCut() {
				whole = false
			}
		}
		if !whole {
			continue
		}
		for i, m := range v.Members {
			x := byID[m.Node]
			var list struct {
				Needles []dataserver.ListEntry `json:"needles"`
			}
			if err := c.getJSON(ctx, x.http, fmt.Sprintf("/shard/%d/%d", v.ID, i), &list); err != nil && !isNotFound(err) {
				return 0, err
			}
			if i == mine {
				have = map[string]bool{}
			}
			for _, e := range list.Needles {
				if i == mine {
					have[e.ID] = true // deleted counts: it knows of it
				} else if !e.Deleted {
					count[e.ID]++
				}
			}
		}
		for id, n := range count {
			if n == len(v.Members)-1 && !have[id] {
				missing++
			}
		}
	}
	return missing, nil
}
