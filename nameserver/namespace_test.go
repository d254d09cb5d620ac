package nameserver

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"

	"depot"
	"depot/nameserver/nsclient"
)

// mustNamespace starts a nameserver without dataservers: the namespace needs
// none.
func mustNamespace(t *testing.T) *testCluster {
	return MustCluster(t, nil, nil)
}

func TestNamespace_Buckets(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	cl := c.client

	t.Run("Create", func(t *testing.T) {
		for _, name := range []string{"zeta", "alpha", "media-1"} {
			b, err := cl.CreateBucket(ctx, name)
			if err != nil || b.Name != name || b.Created.IsZero() {
				t.Fatalf("CreateBucket(%s) = %+v, %v", name, b, err)
			}
		}
		list, err := cl.Buckets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, b := range list {
			names = append(names, b.Name)
		}
		if !slices.Equal(names, []string{"alpha", "media-1", "zeta"}) {
			t.Fatalf("buckets %v", names)
		}
	})
	t.Run("ErrExists", func(t *testing.T) {
		if _, err := cl.CreateBucket(ctx, "alpha"); !errors.Is(err, depot.ErrExists) {
			t.Fatalf("err = %v, want ErrExists", err)
		}
	})
	t.Run("ErrBadRequest", func(t *testing.T) {
		for _, name := range []string{"ab", "-x-abc", "has space", "a/b/c"} {
			if _, err := c.srv.CreateBucket(ctx, name); !errors.Is(err, depot.ErrBadRequest) {
				t.Errorf("CreateBucket(%q) err = %v, want ErrBadRequest", name, err)
			}
		}
	})
	t.Run("Get", func(t *testing.T) {
		if b, err := cl.Bucket(ctx, "zeta"); err != nil || b.Name != "zeta" {
			t.Fatalf("Bucket = %+v, %v", b, err)
		}
		if _, err := cl.Bucket(ctx, "nope"); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("ErrNotEmpty", func(t *testing.T) {
		if _, err := cl.PutObject(ctx, object("zeta", "k", 1, 10)); err != nil {
			t.Fatal(err)
		}
		if err := cl.DeleteBucket(ctx, "zeta"); !errors.Is(err, depot.ErrNotEmpty) {
			t.Fatalf("err = %v, want ErrNotEmpty", err)
		}
		if _, err := cl.DeleteObject(ctx, "zeta", "k"); err != nil {
			t.Fatal(err)
		}
		if err := cl.DeleteBucket(ctx, "zeta"); err != nil {
			t.Fatal(err)
		}
		if err := cl.DeleteBucket(ctx, "zeta"); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("second delete: err = %v, want ErrNotFound", err)
		}
		if _, err := cl.GetObject(ctx, "zeta", "k"); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("object in deleted bucket: %v", err)
		}
	})
}

func TestNamespace_Objects(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	cl := c.client
	if _, err := cl.CreateBucket(ctx, "shop"); err != nil {
		t.Fatal(err)
	}

	t.Run("PutGet", func(t *testing.T) {
		o := object("shop", "p/1.jpg", 1, 1000, 24)
		o.Meta = map[string]string{"color": "red"}
		replaced, err := cl.PutObject(ctx, o)
		if err != nil || len(replaced) != 0 {
			t.Fatalf("put new key: replaced %v, %v", replaced, err)
		}
		got, err := cl.GetObject(ctx, "shop", "p/1.jpg")
		if err != nil {
			t.Fatal(err)
		}
		if got.Size != 1024 || got.ETag != o.ETag || got.Meta["color"] != "red" || len(got.Segments) != 2 || got.Modified.IsZero() {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("Replace", func(t *testing.T) {
		// The new version keeps one old segment and adds one.
		o := object("shop", "p/1.jpg", 2, 24, 5)
		replaced, err := cl.PutObject(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(replaced) != 1 || replaced[0].Fid != fid(1, 1) || replaced[0].Size != 1000 {
			t.Fatalf("replaced %+v, want only the dropped segment %s", replaced, fid(1, 1))
		}
		got, _ := cl.GetObject(ctx, "shop", "p/1.jpg")
		if got.Size != 29 {
			t.Fatalf("after replace: %+v", got)
		}
		q, err := cl.PendingDeletes(ctx, 0)
		if err != nil || len(q) != 1 || q[0].Fid != fid(1, 1) {
			t.Fatalf("delete queue %+v, %v", q, err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		deleted, err := cl.DeleteObject(ctx, "shop", "p/1.jpg")
		if err != nil || len(deleted) != 2 {
			t.Fatalf("deleted %+v, %v", deleted, err)
		}
		if _, err := cl.GetObject(ctx, "shop", "p/1.jpg"); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		if _, err := cl.DeleteObject(ctx, "shop", "p/1.jpg"); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		q, _ := cl.PendingDeletes(ctx, 0)
		if len(q) != 3 || q[0].Seq >= q[1].Seq || q[1].Seq >= q[2].Seq {
			t.Fatalf("delete queue %+v", q)
		}
		if err := cl.AckDeletes(ctx, []uint64{q[0].Seq, q[1].Seq}); err != nil {
			t.Fatal(err)
		}
		if q2, _ := cl.PendingDeletes(ctx, 0); len(q2) != 1 || q2[0].Seq != q[2].Seq {
			t.Fatalf("after ack: %+v", q2)
		}
	})
	t.Run("ErrBadRequest", func(t *testing.T) {
		bad := []depot.Object{
			{Bucket: "shop", Key: "sizes", Size: 10, Segments: []depot.Segment{{Fid: fid(1, 1), Size: 9}}},
			{Bucket: "shop", Key: "fid", Size: 1, Segments: []depot.Segment{{Fid: "nope", Size: 1}}},
			{Bucket: "shop", Key: string([]byte{0xff, 0xfe})},
		}
		for _, o := range bad {
			if _, err := cl.PutObject(ctx, o); !errors.Is(err, depot.ErrBadRequest) && !errors.Is(err, depot.ErrBadFid) {
				t.Errorf("put %q: err = %v, want ErrBadRequest", o.Key, err)
			}
		}
		if _, err := cl.PutObject(ctx, object("nobucket", "k", 1, 1)); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("put into missing bucket: %v", err)
		}
	})
	t.Run("AtomicReplace", func(t *testing.T) {
		// Concurrent writers of one key and concurrent readers: every read
		// sees one whole version, and every version but the last is queued
		// for deletion exactly once.
		key := "hot"
		const writers, versions = 8, 10
		var wg sync.WaitGroup
		var mu sync.Mutex
		replacedFids := map[string]int{}
		for w := range writers {
			wg.Go(func() {
				for v := range versions {
					n := uint64(1000 + w*100 + v*2)
					o := object("shop", key, n, 10, 20) // two segments per version
					rep, err := c.srv.PutObject(ctx, o)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, s := range rep.Replaced {
						replacedFids[s.Fid]++
					}
					mu.Unlock()
				}
			})
		}
		stop := make(chan struct{})
		var rwg sync.WaitGroup
		rwg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				o, err := c.srv.GetObject(ctx, "shop", key)
				if errors.Is(err, depot.ErrNotFound) {
					continue
				}
				if err != nil || len(o.Segments) != 2 || o.Size != 30 {
					t.Errorf("torn read: %+v, %v", o, err)
					return
				}
			}
		})
		wg.Wait()
		close(stop)
		rwg.Wait()
		for f, n := range replacedFids {
			if n != 1 {
				t.Fatalf("segment %s replaced %d times", f, n)
			}
		}
		if len(replacedFids) != 2*(writers*versions-1) {
			t.Fatalf("%d segments replaced, want %d", len(replacedFids), 2*(writers*versions-1))
		}
	})
}

func TestNamespace_List(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	cl := c.client
	if _, err := cl.CreateBucket(ctx, "list"); err != nil {
		t.Fatal(err)
	}
	keys := []string{"a", "a/", "a/b", "a/b/c", "a/c", "a!", "a0", "b", "b/x", "é", "z/1", "z/2", "Z", "~", "\u00ff", "日本/1"}
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("photos/%03d.jpg", i), fmt.Sprintf("photos/sub%d/x.jpg", i%3))
	}
	keys = uniq(keys)
	rand.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() {
			if _, err := c.srv.PutObject(ctx, object("list", k, uint64(i+1), 1)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	sorted := slices.Clone(keys)
	sort.Strings(sorted) // byte order

	// listAll pages through with After = Next and checks every page.
	listAll := func(t *testing.T, o nsclient.ListOptions) (objects, prefixes []string) {
		t.Helper()
		for page := 0; ; page++ {
			if page > len(keys)+1 {
				t.Fatal("paging does not end")
			}
			res, err := cl.List(ctx, "list", o)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(res.Objects) + len(res.Prefixes); o.Limit > 0 && n > o.Limit {
				t.Fatalf("page of %d, limit %d", n, o.Limit)
			}
			for _, obj := range res.Objects {
				objects = append(objects, obj.Key)
			}
			prefixes = append(prefixes, res.Prefixes...)
			if !res.Truncated {
				return objects, prefixes
			}
			if res.Next == "" || res.Next <= o.After {
				t.Fatalf("Next %q does not advance past %q", res.Next, o.After)
			}
			o.After = res.Next
		}
	}

	t.Run("Order", func(t *testing.T) {
		got, _ := listAll(t, nsclient.ListOptions{})
		if !slices.Equal(got, sorted) {
			t.Fatalf("list\n got %q\nwant %q", got, sorted)
		}
	})
	t.Run("Paging", func(t *testing.T) {
		for _, limit := range []int{1, 2, 3, 7, 1000} {
			got, _ := listAll(t, nsclient.ListOptions{Limit: limit})
			if !slices.Equal(got, sorted) {
				t.Fatalf("limit %d: repeats or skips:\n got %q\nwant %q", limit, got, sorted)
			}
		}
	})
	t.Run("PrefixAfter", func(t *testing.T) {
		var want []string
		for _, k := range sorted {
			if len(k) >= 7 && k[:7] == "photos/" && k > "photos/010.jpg" {
				want = append(want, k)
			}
		}
		got, _ := listAll(t, nsclient.ListOptions{Prefix: "photos/", After: "photos/010.jpg", Limit: 4})
		if !slices.Equal(got, want) {
			t.Fatalf("got %q\nwant %q", got, want)
		}
		res, err := cl.List(ctx, "list", nsclient.ListOptions{Prefix: "nothing"})
		if err != nil || len(res.Objects) != 0 || res.Truncated {
			t.Fatalf("empty prefix: %+v, %v", res, err)
		}
	})
	t.Run("Delimiter", func(t *testing.T) {
		for _, limit := range []int{1, 2, 5, 0} {
			objs, prefixes := listAll(t, nsclient.ListOptions{Delimiter: "/", Limit: limit})
			wantObjs := []string{"Z", "a", "a!", "a0", "b", "~", "é", "\u00ff"}
			wantPrefixes := []string{"a/", "b/", "photos/", "z/", "日本/"}
			sort.Strings(wantObjs)
			if !slices.Equal(objs, wantObjs) || !slices.Equal(prefixes, wantPrefixes) {
				t.Fatalf("limit %d:\nobjects %q want %q\nprefixes %q want %q", limit, objs, wantObjs, prefixes, wantPrefixes)
			}
		}
		objs, prefixes := listAll(t, nsclient.ListOptions{Prefix: "photos/", Delimiter: "/", Limit: 3})
		if len(objs) != 40 || !slices.Equal(prefixes, []string{"photos/sub0/", "photos/sub1/", "photos/sub2/"}) {
			t.Fatalf("photos/: %d objects, prefixes %q", len(objs), prefixes)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		if _, err := cl.List(ctx, "nobucket", nsclient.ListOptions{}); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
}

func uniq(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

func TestPrefixSuccessor(t *testing.T) {
	for in, want := range map[string]string{"a/": "a0", "a\xff": "b", "\xff\xff": ""} {
		if got := string(prefixSuccessor(in)); got != want {
			t.Errorf("prefixSuccessor(%q) = %q, want %q", in, got, want)
		}
	}
}
