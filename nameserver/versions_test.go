package nameserver

import (
	"errors"
	"slices"
	"testing"

	"go.etcd.io/bbolt"

	"depot"
	"depot/nameserver/nsclient"
)

// TestVersions_Lifecycle walks one key through S3 versioning in the
// nameserver: versions kept with their segments (nothing queued for
// deletion), a delete marker that hides the key from GET and List, the
// marker removed to bring the newest version back, one version deleted
// (only its segments queued), a retried put that makes no second version,
// the listing in S3's order, and a bucket that refuses deletion while
// versions remain.
func TestVersions_Lifecycle(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	cl := c.client
	if _, err := cl.CreateBucket(ctx, "ver"); err != nil {
		t.Fatal(err)
	}
	enabled := nsclient.VersioningEnabled
	if _, err := cl.SetBucket(ctx, "ver", nsclient.BucketSettings{Versioning: &enabled}); err != nil {
		t.Fatal(err)
	}
	bad := "On"
	if _, err := cl.SetBucket(ctx, "ver", nsclient.BucketSettings{Versioning: &bad}); !errors.Is(err, depot.ErrBadRequest) {
		t.Fatalf("versioning %q: %v", bad, err)
	}
	queued := func() int {
		t.Helper()
		q, err := cl.PendingDeletes(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(q)
	}
	put := func(o depot.Object) string {
		t.Helper()
		r, err := cl.PutObjectVersion(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Replaced) != 0 {
			t.Fatalf("a versioned put released %v", r.Replaced)
		}
		return r.VersionID
	}
	v1 := put(object("ver", "k", 1, 10))
	v2 := put(object("ver", "k", 2, 20))
	if v1 == "" || v2 == "" || v1 == v2 {
		t.Fatalf("version ids %q %q", v1, v2)
	}
	// A retried put of the same segments is the same version.
	if again := put(object("ver", "k", 2, 20)); again != v2 {
		t.Fatalf("a replayed put made version %q, want %q", again, v2)
	}
	if n := queued(); n != 0 {
		t.Fatalf("%d deletions queued by versioned puts", n)
	}
	got, err := cl.GetObjectVersion(ctx, "ver", "k", v1)
	if err != nil || got.Segments[0].Fid != fid(1, 1) || got.VersionID != v1 {
		t.Fatalf("version %s: %+v, %v", v1, got, err)
	}
	if _, err := cl.GetObjectVersion(ctx, "ver", "k", "nope"); !errors.Is(err, depot.ErrNotFound) {
		t.Fatalf("a version that does not exist: %v", err)
	}

	// Delete: a marker hides the key.
	del, err := cl.DeleteVersion(ctx, "ver", "k", nil, false)
	if err != nil || !del.DeleteMarker || del.VersionID == "" || len(del.Deleted) != 0 {
		t.Fatalf("delete: %+v, %v", del, err)
	}
	if _, err := cl.GetObject(ctx, "ver", "k"); !errors.Is(err, depot.ErrNotFound) {
		t.Fatalf("GET behind a delete marker: %v", err)
	}
	if l, err := cl.List(ctx, "ver", nsclient.ListOptions{}); err != nil || len(l.Objects) != 0 {
		t.Fatalf("list behind a delete marker: %+v, %v", l, err)
	}
	vl, err := cl.ListVersions(ctx, "ver", nsclient.VersionListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, e := range vl.Versions {
		order = append(order, e.VersionID)
	}
	if !slices.Equal(order, []string{del.VersionID, v2, v1}) || !vl.Versions[0].IsLatest || !vl.Versions[0].DeleteMarker || vl.Versions[1].IsLatest {
		t.Fatalf("versions %+v", vl.Versions)
	}

	// Removing the marker brings v2 back.
	m := del.VersionID
	if r, err := cl.DeleteVersion(ctx, "ver", "k", &m, false); err != nil || !r.DeleteMarker {
		t.Fatalf("delete the marker: %+v, %v", r, err)
	}
	if cur, err := cl.GetObject(ctx, "ver", "k"); err != nil || cur.VersionID != v2 {
		t.Fatalf("after removing the marker: %+v, %v", cur, err)
	}
	// Deleting v1 queues exactly its segment.
	if r, err := cl.DeleteVersion(ctx, "ver", "k", &v1, false); err != nil || len(r.Deleted) != 1 || r.Deleted[0].Fid != fid(1, 1) {
		t.Fatalf("delete v1: %+v, %v", r, err)
	}
	if n := queued(); n != 1 {
		t.Fatalf("%d deletions queued, want 1", n)
	}
	if _, err := cl.DeleteVersion(ctx, "ver", "k", &v1, false); !errors.Is(err, depot.ErrNotFound) {
		t.Fatalf("delete v1 again: %v", err)
	}
	// The refs index, rebuilt, still lists v2's segment; a bucket with
	// versions is not empty.
	if _, err := cl.DeleteVersion(ctx, "ver", "k", nil, false); err != nil {
		t.Fatal(err)
	}
	err = c.srv.store.db.Update(func(tx *bbolt.Tx) error {
		if err := buildRefs(tx); err != nil {
			return err
		}
		if tx.Bucket(bktRefs).Get(refKey(fid(1, 2))) == nil {
			t.Error("rebuilt refs miss a non-current version's segment")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.DeleteBucket(ctx, "ver"); !errors.Is(err, depot.ErrNotEmpty) {
		t.Fatalf("delete a bucket with versions: %v", err)
	}
}

// TestVersions_Suspended: in a suspended bucket a write is the null
// version, which replaces the null version wherever it is and keeps the
// versions with ids.
func TestVersions_Suspended(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	cl := c.client
	if _, err := cl.CreateBucket(ctx, "sus"); err != nil {
		t.Fatal(err)
	}
	// An object from before versioning is the null version.
	if _, err := cl.PutObject(ctx, object("sus", "k", 1, 10)); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{nsclient.VersioningEnabled, nsclient.VersioningSuspended} {
		if st == nsclient.VersioningSuspended {
			// Between the two: one version with an id.
			if _, err := cl.PutObject(ctx, object("sus", "k", 2, 20)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := cl.SetBucket(ctx, "sus", nsclient.BucketSettings{Versioning: &st}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := cl.PutObjectVersion(ctx, object("sus", "k", 3, 30))
	if err != nil {
		t.Fatal(err)
	}
	// The null version from before is released; the one with an id kept.
	if r.VersionID != "null" || len(r.Replaced) != 1 || r.Replaced[0].Fid != fid(1, 1) {
		t.Fatalf("suspended put: %+v", r)
	}
	vl, err := cl.ListVersions(ctx, "sus", nsclient.VersionListOptions{})
	if err != nil || len(vl.Versions) != 2 || vl.Versions[0].VersionID != "" || vl.Versions[1].Segments[0].Fid != fid(1, 2) {
		t.Fatalf("versions: %+v, %v", vl, err)
	}
	// Again: the null version replaces itself.
	if r, err := cl.PutObjectVersion(ctx, object("sus", "k", 4, 40)); err != nil || len(r.Replaced) != 1 || r.Replaced[0].Fid != fid(1, 3) {
		t.Fatalf("second suspended put: %+v, %v", r, err)
	}
	null := "null"
	if got, err := cl.GetObjectVersion(ctx, "sus", "k", null); err != nil || got.Segments[0].Fid != fid(1, 4) {
		t.Fatalf("null version: %+v, %v", got, err)
	}
}

// TestVersions_ListPages lists versions of keys that sort around NUL
// bytes one at a time and with a delimiter: each version once, in order.
func TestVersions_ListPages(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	cl := c.client
	if _, err := cl.CreateBucket(ctx, "pages"); err != nil {
		t.Fatal(err)
	}
	keys := []string{"a", "a\x00b", "a/x", "a/y", "b"}
	type ver struct{ key, id string }
	var want []ver
	n := uint64(1)
	for round := range 3 {
		if round == 1 {
			en := nsclient.VersioningEnabled
			if _, err := cl.SetBucket(ctx, "pages", nsclient.BucketSettings{Versioning: &en}); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range keys {
			r, err := cl.PutObjectVersion(ctx, object("pages", k, n, 1))
			if err != nil {
				t.Fatal(err)
			}
			n++
			want = append(want, ver{k, r.VersionID})
		}
	}
	// Expected order: keys in byte order, newest first; the first round
	// made null versions (reported by ListVersions as "").
	slices.SortStableFunc(want, func(x, y ver) int {
		if x.key != y.key {
			if x.key < y.key {
				return -1
			}
			return 1
		}
		return 0
	})
	for i := 0; i < len(want); i += 3 {
		slices.Reverse(want[i : i+3])
	}
	var got []ver
	opts := nsclient.VersionListOptions{Limit: 1}
	for range 100 {
		vl, err := cl.ListVersions(ctx, "pages", opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range vl.Versions {
			id := e.VersionID
			if id == "" {
				id = "null"
			}
			got = append(got, ver{e.Key, id})
		}
		if !vl.Truncated {
			break
		}
		opts.KeyMarker, opts.VersionIDMarker = vl.NextKeyMarker, vl.NextVersionIDMarker
	}
	for i := range want {
		if want[i].id == "null" || want[i].id == "" {
			want[i].id = "null"
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged versions:\n got %q\nwant %q", got, want)
	}
	vl, err := cl.ListVersions(ctx, "pages", nsclient.VersionListOptions{Delimiter: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(vl.Prefixes, []string{"a/"}) || len(vl.Versions) != 9 {
		t.Fatalf("with delimiter: prefixes %q, %d versions", vl.Prefixes, len(vl.Versions))
	}
}
