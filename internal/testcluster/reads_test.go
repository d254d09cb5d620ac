package testcluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"depot"
	"depot/client"
	"depot/internal/testcluster"
	"depot/nameserver/nsclient"
)

// Delete-queue timing of the test preset (node.LocalConfig with
// membership.TimingTest): DeleteGrace 1s, ReadHoldMax 5s.
const (
	testDeleteGrace = time.Second
	testReadHoldMax = 5 * time.Second
)

// putObject stores body as an S3 object and returns its segments.
func putObject(t *testing.T, ctx context.Context, c *testcluster.Cluster, key string, body []byte) []depot.Segment {
	t.Helper()
	st, err := c.Client().Put(ctx, bytes.NewReader(body), int64(len(body)), client.PutOptions{Pending: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.NSClient().PutObject(ctx, depot.Object{Bucket: "media", Key: key, Size: st.Size, ETag: st.ETag, Segments: st.Segments}); err != nil {
		t.Fatal(err)
	}
	return st.Segments
}

// segmentsGone reports whether every shard of every segment is deleted on
// every member.
func segmentsGone(ctx context.Context, c *testcluster.Cluster, ns *nsclient.Client, segs []depot.Segment) (bool, error) {
	for _, sg := range segs {
		fid, err := depot.ParseFid(sg.Fid)
		if err != nil {
			return false, err
		}
		v, err := ns.Volume(ctx, fid.Volume)
		if err != nil {
			return false, err
		}
		for _, m := range v.Members {
			d := dataserverByID(c, m.Node)
			if d == nil {
				return false, fmt.Errorf("member %s not running", m.Node)
			}
			_, err := d.Stat(ctx, fid.Volume, m.Index, fid.Needle, fid.Cookie)
			if err == nil {
				return false, nil
			}
			if !errors.Is(err, depot.ErrNotFound) {
				return false, err
			}
		}
	}
	return true, nil
}

// waitGone polls until segs are deleted everywhere and returns when that
// was seen; it fails the test past deadline.
func waitGone(t *testing.T, ctx context.Context, c *testcluster.Cluster, segs []depot.Segment, deadline time.Time) time.Time {
	t.Helper()
	ns := c.NSClient()
	for {
		ok, err := segmentsGone(ctx, c, ns, segs)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("segments still stored at the deadline")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deletesRefused sums the DELETEs the dataservers refused with 423 InUse.
func deletesRefused(t *testing.T, c *testcluster.Cluster) float64 {
	t.Helper()
	var n float64
	for i := range c.Dataservers() {
		d := c.Dataserver(i)
		if d == nil {
			continue
		}
		mfs, err := d.Server.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "depot_dataserver_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["op"] == "delete" && labels["status"] == "423" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// queued reports whether any of segs is still in the delete queue.
func queued(t *testing.T, ctx context.Context, c *testcluster.Cluster, segs []depot.Segment) bool {
	t.Helper()
	list, err := c.Local.ServingNameserver().Server.PendingDeletes(ctx, 100000)
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]bool)
	for _, s := range segs {
		want[s.Fid] = true
	}
	for _, pd := range list {
		if want[pd.Fid] {
			return true
		}
	}
	return false
}

// TestRead_SlowReaderOutlivesOverwriteAndDelete opens a read of a
// multi-segment object (1 MiB segments), reads a little, overwrites the
// key and then deletes it, waits until the delete queue has reached the
// old segments (past DeleteGrace), and reads on: every byte of the old
// version arrives. After Close the old segments are deleted everywhere.
func TestRead_SlowReaderOutlivesOverwriteAndDelete(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	cl, ns := c.Client(), c.NSClient()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := ns.CreateBucket(ctx, "media"); err != nil {
		t.Fatal(err)
	}
	old := content(5001, 4<<20+54321) // 5 segments
	oldSegs := putObject(t, ctx, c, "big", old)
	obj, err := ns.GetObject(ctx, "media", "big")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cl.Get(ctx, obj.Segments, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := make([]byte, 100<<10)
	if _, err := io.ReadFull(rc, got); err != nil {
		t.Fatal(err)
	}

	putObject(t, ctx, c, "big", content(5002, 3<<20)) // overwrite
	if _, err := ns.DeleteObject(ctx, "media", "big"); err != nil {
		t.Fatal(err)
	}
	overwritten := time.Now()
	// The delete queue reaches the old segments after DeleteGrace: either
	// it deleted them (the entries left the queue) or a member refused.
	deadline := time.Now().Add(30 * time.Second)
	for queued(t, ctx, c, oldSegs) && deletesRefused(t, c) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the delete queue never reached the old segments")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if time.Since(overwritten) < testDeleteGrace {
		t.Fatalf("delete queue acted %v after the overwrite, before DeleteGrace", time.Since(overwritten))
	}
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read of the old version cut %v after the overwrite, after %d bytes: %v",
			time.Since(overwritten), len(got)+len(rest), err)
	}
	if got = append(got, rest...); !bytes.Equal(got, old) {
		t.Fatalf("read %d bytes, not the %d of the old version", len(got), len(old))
	}
	closed := time.Now()
	rc.Close()
	gone := waitGone(t, ctx, c, oldSegs, overwritten.Add(testDeleteGrace+testReadHoldMax+10*time.Second))
	t.Logf("reader spanned %v past the overwrite; old segments deleted %v after Close",
		closed.Sub(overwritten), gone.Sub(closed))
}

// TestRead_ReaderCannotHoldSpaceForEver: a reader that vanishes without
// Close (its context ends, its holds are not renewed) and one that stays
// open for ever and keeps renewing its holds both let the old segments go
// within DeleteGrace + ReadHoldMax of the delete (plus a few passes).
func TestRead_ReaderCannotHoldSpaceForEver(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	ns := c.NSClient()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := ns.CreateBucket(ctx, "media"); err != nil {
		t.Fatal(err)
	}
	// A reader with a short hold TTL, so that its renewals are frequent.
	cl, err := client.New(client.Config{Nameserver: ns, Key: c.Key, TLS: c.TLS, K: c.Opts.K, M: c.Opts.M,
		SegmentSize: c.Opts.SegmentSize, HoldTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	open := func(key string, body []byte, rctx context.Context) ([]depot.Segment, io.ReadCloser) {
		segs := putObject(t, ctx, c, key, body)
		rc, err := cl.Get(rctx, segs, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rc, make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		return segs, rc
	}
	vctx, vanish := context.WithCancel(ctx)
	vanishedSegs, _ := open("vanished", content(6001, 3<<20+1), vctx) // never closed
	hostileSegs, hostile := open("hostile", content(6002, 3<<20+2), ctx)
	defer hostile.Close()
	vanish()
	for _, key := range []string{"vanished", "hostile"} {
		if _, err := ns.DeleteObject(ctx, "media", key); err != nil {
			t.Fatal(err)
		}
	}
	deleted := time.Now()
	bound := deleted.Add(testDeleteGrace + testReadHoldMax + 5*time.Second)
	g1 := waitGone(t, ctx, c, vanishedSegs, bound)
	g2 := waitGone(t, ctx, c, hostileSegs, bound)
	t.Logf("vanished reader's segments deleted %v after the delete, a renewing reader's %v",
		g1.Sub(deleted), g2.Sub(deleted))
	if deletesRefused(t, c) == 0 {
		t.Fatal("no delete was ever refused: the open reader held nothing")
	}
}
