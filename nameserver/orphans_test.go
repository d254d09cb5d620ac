package nameserver

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"depot"
	"depot/nameserver/nsclient"
)

func segs(fids ...string) []depot.Segment {
	out := make([]depot.Segment, len(fids))
	for i, f := range fids {
		out[i] = depot.Segment{Fid: f, Size: 7}
	}
	return out
}

func TestOrphans_Sweep(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	cl := c.client
	if _, err := cl.CreateBucket(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutObject(ctx, object("shop", "a.jpg", 1, 10, 20)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"u1", "u2"} {
		if _, err := cl.CreateUpload(ctx, nsclient.Upload{Bucket: "shop", Key: id, ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	part := func(needle uint64) nsclient.Part {
		return nsclient.Part{Number: 1, ETag: "p", Size: 7, Segments: segs(fid(1, needle))}
	}
	if _, err := cl.PutPart(ctx, "shop", "u1", "u1", part(10)); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutPart(ctx, "shop", "u2", "u2", part(11)); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CompleteUpload(ctx, "shop", "u2", "u2", nsclient.CompleteRequest{
		Parts: []nsclient.CompletePart{{Number: 1, ETag: "p"}}, ETag: "x-1"}); err != nil {
		t.Fatal(err)
	}
	sweep := func(fids ...string) []string {
		t.Helper()
		res, err := cl.SweepOrphans(ctx, segs(fids...))
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(res.Queued)
		return res.Queued
	}

	// Referenced: object segments, a recorded part, a completed part.
	// Unreferenced: 20, 21.
	got := sweep(fid(1, 1), fid(1, 2), fid(1, 10), fid(1, 11), fid(1, 20), fid(1, 21), "garbage")
	if want := []string{fid(1, 20), fid(1, 21)}; !slices.Equal(got, want) {
		t.Fatalf("queued %v, want %v", got, want)
	}
	q, err := cl.PendingDeletes(ctx, 0)
	if err != nil || len(q) != 2 {
		t.Fatalf("delete queue %+v, %v", q, err)
	}
	// Swept fids are not queued twice while their delete waits, and
	// commits naming them fail.
	if got := sweep(fid(1, 20)); len(got) != 0 {
		t.Fatalf("second sweep queued %v", got)
	}
	if _, err := cl.PutObject(ctx, object("shop", "late.jpg", 20, 7)); err == nil {
		t.Fatal("PutObject of a swept segment accepted")
	}
	if _, err := cl.PutPart(ctx, "shop", "u1", "u1", part(21)); err == nil {
		t.Fatal("PutPart of a swept segment accepted")
	}
	if _, err := cl.GetObject(ctx, "shop", "late.jpg"); err == nil {
		t.Fatal("refused commit left an object")
	}

	// Once their delete is done, a swept fid found again (its needle came
	// back on some member after the delete passed it) is queued again,
	// and still refused to commits.
	var seqs []uint64
	for _, pd := range q {
		seqs = append(seqs, pd.Seq)
	}
	if err := cl.AckDeletes(ctx, seqs); err != nil {
		t.Fatal(err)
	}
	if got := sweep(fid(1, 20)); !slices.Equal(got, []string{fid(1, 20)}) {
		t.Fatalf("sweep after the delete: queued %v, want %s", got, fid(1, 20))
	}
	if _, err := cl.PutObject(ctx, object("shop", "late.jpg", 20, 7)); err == nil {
		t.Fatal("PutObject of a segment swept twice accepted")
	}

	// A replaced or deleted object's segments are no longer referenced;
	// they are in the delete queue already, so the sweep does not queue
	// them a second time.
	if _, err := cl.PutObject(ctx, object("shop", "a.jpg", 2, 20, 5)); err != nil {
		t.Fatal(err)
	}
	if got := sweep(fid(1, 1), fid(1, 2), fid(1, 3)); len(got) != 0 {
		t.Fatalf("after replace: queued %v, want none", got)
	}
	if q, err := cl.PendingDeletes(ctx, 0); err != nil || !slices.ContainsFunc(q, func(pd nsclient.PendingDelete) bool { return pd.Fid == fid(1, 1) }) {
		t.Fatalf("after replace: delete queue %+v (%v) lacks %s", q, err, fid(1, 1))
	}

	// A layout-1 database (no refs index) gets one built on open.
	c.srv.Close()
	db, err := bbolt.Open(filepath.Join(c.dir, DBFile), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket(bktRefs); err != nil {
			return err
		}
		return tx.Bucket(bktMeta).Put(keyVersion, []byte("1"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	c.Start(nil)
	cl = c.client
	if got := sweep(fid(1, 2), fid(1, 3), fid(1, 10), fid(1, 11), fid(1, 30)); !slices.Equal(got, []string{fid(1, 30)}) {
		t.Fatalf("after rebuild: queued %v, want only %s", got, fid(1, 30))
	}
}
