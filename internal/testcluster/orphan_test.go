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
	"depot/dataserver"
	"depot/internal/node"
	"depot/internal/testcluster"
	"depot/nameserver/nsclient"
	"depot/repair"
)

// TestOrphanSweep stores S3-style segments (client.PutOptions.Pending)
// that are never committed, beside committed objects, a multipart upload
// with a recorded part, a completed multipart object and native blobs;
// after the grace period the orphans are deleted on every member and
// everything else reads back byte for byte. A commit that comes after the
// sweep is refused.
func TestOrphanSweep(t *testing.T) {
	const grace = 2 * time.Second
	c := testcluster.New(t, testcluster.Options{Repair: repair.Config{OrphanGrace: grace}})
	cl, ns := c.Client(), c.NSClient()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := ns.CreateBucket(ctx, "media"); err != nil {
		t.Fatal(err)
	}
	sizes := []int64{100 << 10, 2<<20 + 12345, 1} // one crosses segments (1 MiB in tests)
	put := func(i int, pending bool) (*client.Stored, []byte) {
		t.Helper()
		body := content(1000+i, sizes[i%len(sizes)])
		st, err := cl.Put(ctx, bytes.NewReader(body), int64(len(body)), client.PutOptions{Pending: pending})
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		return st, body
	}
	type want struct {
		name string
		segs []depot.Segment
		body []byte
	}
	var keep []want
	var orphans []depot.Segment

	// Committed objects.
	for i := range 3 {
		st, body := put(i, true)
		key := fmt.Sprintf("committed-%d", i)
		if _, err := ns.PutObject(ctx, depot.Object{Bucket: "media", Key: key, Size: st.Size, ETag: st.ETag, Segments: st.Segments}); err != nil {
			t.Fatal(err)
		}
		keep = append(keep, want{key, st.Segments, body})
	}
	// Orphans: written for the namespace, never committed.
	for i := 3; i < 6; i++ {
		st, _ := put(i, true)
		orphans = append(orphans, st.Segments...)
	}
	// Segments stored without Pending (native, or written before the tag
	// field existed) are never swept, committed or not.
	for i := 6; i < 8; i++ {
		st, body := put(i, false)
		keep = append(keep, want{fmt.Sprintf("untagged-%d", i), st.Segments, body})
	}
	// Native blobs: one segment, and a manifest blob.
	type blob struct {
		fid  depot.Fid
		body []byte
	}
	var blobs []blob
	for i := 8; i < 10; i++ {
		body := content(1000+i, sizes[i%len(sizes)])
		fid, _, err := cl.PutBlob(ctx, bytes.NewReader(body), int64(len(body)), client.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, blob{fid, body})
	}
	// Multipart: a recorded part of an open upload stays; an unrecorded
	// part is an orphan; a completed upload's parts become the object's.
	for _, id := range []string{"open-upload", "done-upload"} {
		if _, err := ns.CreateUpload(ctx, nsclient.Upload{Bucket: "media", Key: id, ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	st, body := put(10, true)
	if _, err := ns.PutPart(ctx, "media", "open-upload", "open-upload", nsclient.Part{Number: 1, ETag: st.ETag, Size: st.Size, Segments: st.Segments}); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, want{"open-upload part 1", st.Segments, body})
	st, _ = put(11, true)
	orphans = append(orphans, st.Segments...)
	st, body = put(12, true)
	if _, err := ns.PutPart(ctx, "media", "done-upload", "done-upload", nsclient.Part{Number: 1, ETag: st.ETag, Size: st.Size, Segments: st.Segments}); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.CompleteUpload(ctx, "media", "done-upload", "done-upload", nsclient.CompleteRequest{
		Parts: []nsclient.CompletePart{{Number: 1, ETag: st.ETag}}, ETag: st.ETag + "-1"}); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, want{"done-upload", st.Segments, body})

	// Wait for the orphans to be gone from every member.
	gone := func(sg depot.Segment) (bool, error) {
		return segmentsGone(ctx, c, ns, []depot.Segment{sg})
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, sg := range orphans {
		for {
			ok, err := gone(sg)
			if err != nil {
				t.Fatalf("orphan %s: %v", sg.Fid, err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("orphan %s still stored %v after it was written", sg.Fid, time.Since(deadline.Add(-60*time.Second)))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// A commit that arrives after the sweep is refused.
	var size int64
	for _, sg := range orphans[:1] {
		size += sg.Size
	}
	if _, err := ns.PutObject(ctx, depot.Object{Bucket: "media", Key: "late", Size: size, Segments: orphans[:1]}); err == nil {
		t.Fatal("commit of a swept segment was accepted")
	}

	// Everything else reads back, after a few more sweeps.
	time.Sleep(2 * grace)
	for _, w := range keep {
		rc, err := cl.Get(ctx, w.segs, 0, -1)
		if err != nil {
			t.Fatalf("%s: get: %v", w.name, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, w.body) {
			t.Fatalf("%s: read %d bytes (err %v), want %d bytes as stored", w.name, len(got), err, len(w.body))
		}
	}
	for _, b := range blobs {
		info, err := cl.StatBlob(ctx, b.fid)
		if err != nil {
			t.Fatalf("blob %s: %v", b.fid, err)
		}
		rc, err := cl.GetBlob(ctx, info, 0, -1)
		if err != nil {
			t.Fatalf("blob %s: %v", b.fid, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, b.body) {
			t.Fatalf("blob %s: read %d bytes (err %v), want %d", b.fid, len(got), err, len(b.body))
		}
	}
	for _, key := range []string{"committed-0", "committed-1", "committed-2", "done-upload"} {
		if _, err := ns.GetObject(ctx, "media", key); err != nil {
			t.Fatalf("object %s: %v", key, err)
		}
	}
	if info, err := ns.Upload(ctx, "media", "open-upload", "open-upload"); err != nil || len(info.Parts) != 1 {
		t.Fatalf("open upload: %+v, %v", info, err)
	}
	c.MustFsck(t)
}

type depotStore = interface {
	Stat(ctx context.Context, vol depot.VolumeID, idx int, id depot.NeedleID, cookie depot.Cookie) (int64, error)
}

// dataserverByID returns the store of the running dataserver id, or nil.
func dataserverByID(c *testcluster.Cluster, id string) depotStore {
	for i := range c.Dataservers() {
		if node.DataserverID(i) == id {
			if d := c.Dataserver(i); d != nil {
				return d.Server.Store()
			}
		}
	}
	return nil
}

// TestOrphanSweep_NotOnMemberZero: orphans that member 0 of their volume
// does not hold live are swept too. The chaos suite found such needles
// held for ever: a cut write whose shard never reached member 0 (killed,
// paused, partitioned), and a needle that reached one member after the
// delete of its sweep had passed it (a late write, a move or repair copy),
// while member 0 held it deleted. Only member 0 used to sweep, and the
// nameserver never queued a swept fid again.
func TestOrphanSweep_NotOnMemberZero(t *testing.T) {
	const grace = 2 * time.Second
	c := testcluster.New(t, testcluster.Options{Repair: repair.Config{OrphanGrace: grace}})
	cl, ns := c.Client(), c.NSClient()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	put := func(i int) (depot.Fid, depot.Volume) {
		t.Helper()
		body := content(2000+i, 50<<10)
		st, err := cl.Put(ctx, bytes.NewReader(body), int64(len(body)), client.PutOptions{Pending: true})
		if err != nil || len(st.Segments) != 1 {
			t.Fatalf("put %d: %+v, %v", i, st, err)
		}
		fid, err := depot.ParseFid(st.Segments[0].Fid)
		if err != nil {
			t.Fatal(err)
		}
		v, err := ns.Volume(ctx, fid.Volume)
		if err != nil {
			t.Fatal(err)
		}
		return fid, v
	}
	member := func(v depot.Volume, idx int) *dataserver.Store {
		t.Helper()
		for i := range c.Dataservers() {
			if node.DataserverID(i) == v.Members[idx].Node {
				if d := c.Dataserver(i); d != nil {
					return d.Server.Store()
				}
			}
		}
		t.Fatalf("member %d of volume %d (%s) not running", idx, v.ID, v.Members[idx].Node)
		return nil
	}
	// goneEverywhere waits until no member holds fid live.
	goneEverywhere := func(what string, fid depot.Fid, v depot.Volume) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			held := -1
			for i := range v.Members {
				_, err := member(v, i).Stat(ctx, fid.Volume, i, fid.Needle, fid.Cookie)
				if err == nil {
					held = i
					break
				}
				if !errors.Is(err, depot.ErrNotFound) {
					t.Fatalf("%s: stat %s on member %d: %v", what, fid, i, err)
				}
			}
			if held < 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: orphan %s still held by member %d %v after the grace period", what, fid, held, 60*time.Second)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Member 0 never got (or lost) its shard: here it holds it deleted.
	fid, v := put(0)
	if err := member(v, 0).Delete(ctx, fid.Volume, 0, fid.Needle, fid.Cookie); err != nil {
		t.Fatal(err)
	}
	goneEverywhere("missed by member 0", fid, v)

	// Swept and deleted everywhere, then a copy reaches member 2 after the
	// delete passed it, as a move or rebuild that read the needle before
	// the delete writes it.
	fid, v = put(1)
	shard, err := member(v, 2).Read(ctx, fid.Volume, 2, fid.Needle, fid.Cookie)
	if err != nil {
		t.Fatal(err)
	}
	goneEverywhere("first sweep", fid, v)
	if _, err := member(v, 2).Rewrite(ctx, fid.Volume, 2, fid.Needle, fid.Cookie, bytes.NewReader(shard), int64(len(shard))); err != nil {
		t.Fatal(err)
	}
	goneEverywhere("back after its delete", fid, v)

	// The second sweep did not make the fid committable.
	if _, err := ns.CreateBucket(ctx, "media"); err != nil {
		t.Fatal(err)
	}
	seg := depot.Segment{Fid: fid.String(), Size: 50 << 10}
	if _, err := ns.PutObject(ctx, depot.Object{Bucket: "media", Key: "late", Size: seg.Size, Segments: []depot.Segment{seg}}); err == nil {
		t.Fatal("commit of a swept segment was accepted")
	}
	c.MustFsck(t)
}
