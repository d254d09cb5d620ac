package nameserver

import (
	"testing"

	"depot"
	"depot/nameserver/nsclient"
)

// queuedFids returns the fids waiting in the delete queue.
func queuedFids(t *testing.T, c *testCluster) map[string]bool {
	t.Helper()
	q, err := c.client.PendingDeletes(ctxT(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, pd := range q {
		out[pd.Fid] = true
	}
	return out
}

// TestVersions_LateReplayEnabled: a put of segments that a
// non-current version already holds (a replay of an old put_object whose
// request record expired, or any commit that names them again) is
// accepted as a new version. Two versions then share the fids while refs
// holds one entry for them; deleting the old version drops the ref and
// queues the segments that the current version still reads.
func TestVersions_LateReplayEnabled(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	cl := c.client
	if _, err := cl.CreateBucket(ctx, "rvb"); err != nil {
		t.Fatal(err)
	}
	on := nsclient.VersioningEnabled
	if _, err := cl.SetBucket(ctx, "rvb", nsclient.BucketSettings{Versioning: &on}); err != nil {
		t.Fatal(err)
	}
	a := object("rvb", "k", 1, 10)
	r1, err := cl.PutObjectVersion(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutObjectVersion(ctx, object("rvb", "k", 2, 20)); err != nil {
		t.Fatal(err)
	}
	// The replay (a fresh request id stands for an expired record).
	r3, err := cl.PutObjectVersion(ctx, a)
	if err != nil {
		t.Logf("replay refused (good): %v", err)
		return
	}
	if r3.VersionID != r1.VersionID || len(r3.Replaced) != 0 {
		t.Fatalf("a late replay made version %s (v1 is %s), released %v: want no change", r3.VersionID, r1.VersionID, r3.Replaced)
	}
	v1 := r1.VersionID
	if _, err := cl.DeleteVersion(ctx, "rvb", "k", &v1, false); err != nil {
		t.Fatal(err)
	}
	cur, err := cl.GetObject(ctx, "rvb", "k")
	if err != nil {
		t.Fatal(err)
	}
	q := queuedFids(t, c)
	for _, sg := range cur.Segments {
		if q[sg.Fid] {
			t.Errorf("segment %s of the current version %s is queued for deletion", sg.Fid, cur.VersionID)
		}
	}
}

// TestVersions_LateReplaySuspended: in a suspended bucket a put of
// the segments the null version (kept in versions) holds releases that
// null version's segments — the very ones the new current version holds.
func TestVersions_LateReplaySuspended(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	cl := c.client
	if _, err := cl.CreateBucket(ctx, "rsb"); err != nil {
		t.Fatal(err)
	}
	a := object("rsb", "k", 1, 10)
	if _, err := cl.PutObjectVersion(ctx, a); err != nil { // the null version
		t.Fatal(err)
	}
	on, off := nsclient.VersioningEnabled, nsclient.VersioningSuspended
	if _, err := cl.SetBucket(ctx, "rsb", nsclient.BucketSettings{Versioning: &on}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutObjectVersion(ctx, object("rsb", "k", 2, 20)); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.SetBucket(ctx, "rsb", nsclient.BucketSettings{Versioning: &off}); err != nil {
		t.Fatal(err)
	}
	r, err := cl.PutObjectVersion(ctx, a)
	if err != nil {
		t.Logf("replay refused (good): %v", err)
		return
	}
	cur, err := cl.GetObject(ctx, "rsb", "k")
	if err != nil {
		t.Fatal(err)
	}
	q := queuedFids(t, c)
	for _, sg := range cur.Segments {
		if q[sg.Fid] {
			t.Errorf("segment %s of the current version is queued for deletion (put released %v)", sg.Fid, r.Replaced)
		}
	}
	_ = depot.ErrNotFound
}

// TestVersions_ListEveryPageSize: every page size visits every version and
// prefix of a full listing once, in order (keys with NUL bytes, a
// delimiter, null versions and delete markers).
func TestVersions_ListEveryPageSize(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	cl := c.client
	if _, err := cl.CreateBucket(ctx, "lvb"); err != nil {
		t.Fatal(err)
	}
	needle := uint64(1)
	keys := []string{"a", "a\x00", "a\x00b", "a/1", "a/2", "a/x/y", "b", "b\x00/c", "c"}
	putAll := func() {
		for _, k := range keys {
			if _, err := cl.PutObjectVersion(ctx, object("lvb", k, needle, 1)); err != nil {
				t.Fatal(err)
			}
			needle++
		}
	}
	putAll() // null versions
	on, off := nsclient.VersioningEnabled, nsclient.VersioningSuspended
	if _, err := cl.SetBucket(ctx, "lvb", nsclient.BucketSettings{Versioning: &on}); err != nil {
		t.Fatal(err)
	}
	putAll()
	putAll()
	if _, err := cl.DeleteVersion(ctx, "lvb", "a\x00", nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.SetBucket(ctx, "lvb", nsclient.BucketSettings{Versioning: &off}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DeleteVersion(ctx, "lvb", "b", nil, false); err != nil {
		t.Fatal(err)
	}
	type item struct{ key, vid, prefix string }
	list := func(delim string, limit int) []item {
		var out []item
		opts := nsclient.VersionListOptions{Delimiter: delim, Limit: limit}
		for range 1000 {
			res, err := cl.ListVersions(ctx, "lvb", opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range res.Versions {
				out = append(out, item{key: v.Key, vid: v.VersionID})
			}
			for _, p := range res.Prefixes {
				out = append(out, item{prefix: p})
			}
			if !res.Truncated {
				return out
			}
			opts.KeyMarker, opts.VersionIDMarker = res.NextKeyMarker, res.NextVersionIDMarker
		}
		t.Fatal("no end")
		return nil
	}
	for _, delim := range []string{"", "/"} {
		all := list(delim, 1000)
		for limit := 1; limit <= 5; limit++ {
			got := list(delim, limit)
			// prefixes and versions interleave differently per page; compare as sets with counts
			count := map[item]int{}
			for _, it := range got {
				count[it]++
			}
			for _, it := range all {
				if count[it] != 1 {
					t.Errorf("delimiter %q limit %d: %q seen %d times", delim, limit, it, count[it])
				}
			}
			if len(got) != len(all) {
				t.Errorf("delimiter %q limit %d: %d entries, want %d", delim, limit, len(got), len(all))
			}
		}
	}
}

// TestVersions_MarkerGone: when the version a page ended at is deleted
// before the next page is asked for, the next page lists that key's
// versions again rather than skip the ones not yet seen.
func TestVersions_MarkerGone(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	cl := c.client
	if _, err := cl.CreateBucket(ctx, "mgone"); err != nil {
		t.Fatal(err)
	}
	on := nsclient.VersioningEnabled
	if _, err := cl.SetBucket(ctx, "mgone", nsclient.BucketSettings{Versioning: &on}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		r, err := cl.PutObjectVersion(ctx, object("mgone", "k", uint64(i+1), 10))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.VersionID)
	}
	page, err := cl.ListVersions(ctx, "mgone", nsclient.VersionListOptions{Limit: 2})
	if err != nil || !page.Truncated || page.NextVersionIDMarker != ids[1] {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	if _, err := cl.DeleteVersion(ctx, "mgone", "k", &ids[1], false); err != nil {
		t.Fatal(err)
	}
	next, err := cl.ListVersions(ctx, "mgone", nsclient.VersionListOptions{KeyMarker: page.NextKeyMarker, VersionIDMarker: page.NextVersionIDMarker})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, v := range next.Versions {
		seen[v.VersionID] = true
	}
	if !seen[ids[0]] {
		t.Fatalf("version %s skipped after the marker's version went: %+v", ids[0], next.Versions)
	}
}
