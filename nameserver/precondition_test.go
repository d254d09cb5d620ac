package nameserver

import (
	"errors"
	"testing"

	"depot"
	"depot/nameserver/nsclient"
)

// TestPutObject_Precondition checks conditional puts and completions in
// the nameserver's apply: each refusal changes nothing (the key, the
// delete queue, the upload), and a replay of a conditional put that
// applied is not refused by its own result.
func TestPutObject_Precondition(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	cl := c.client
	if _, err := cl.CreateBucket(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	ifNone := &depot.Precondition{IfNoneMatch: true}
	current := func(t *testing.T) depot.Object {
		t.Helper()
		o, err := cl.GetObject(ctx, "shop", "k")
		if err != nil {
			t.Fatal(err)
		}
		if o.Precondition != nil {
			t.Fatalf("the precondition was stored with the object: %+v", o.Precondition)
		}
		return o
	}

	t.Run("IfMatchMissingKey", func(t *testing.T) {
		o := object("shop", "k", 1, 10)
		o.Precondition = &depot.Precondition{IfMatch: "etag-k"}
		if _, err := cl.PutObject(ctx, o); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("If-Match on a missing key: %v, want ErrNotFound", err)
		}
	})
	t.Run("IfNoneMatch", func(t *testing.T) {
		o := object("shop", "k", 1, 10)
		o.Precondition = ifNone
		if _, err := cl.PutObject(ctx, o); err != nil {
			t.Fatalf("If-None-Match on a new key: %v", err)
		}
		// The same command again (a retry whose first try applied).
		if _, err := cl.PutObject(ctx, o); err != nil {
			t.Fatalf("replayed conditional put: %v", err)
		}
		other := object("shop", "k", 2, 20)
		other.Precondition = ifNone
		if _, err := cl.PutObject(ctx, other); !errors.Is(err, depot.ErrPrecondition) {
			t.Fatalf("If-None-Match on an existing key: %v, want ErrPrecondition", err)
		}
		if got := current(t); got.Segments[0].Fid != fid(1, 1) {
			t.Fatalf("a refused put changed the key: %+v", got)
		}
		if q, err := cl.PendingDeletes(ctx, 0); err != nil || len(q) != 0 {
			t.Fatalf("a refused put queued deletions: %+v, %v", q, err)
		}
	})
	t.Run("IfMatch", func(t *testing.T) {
		o := object("shop", "k", 3, 30)
		o.ETag = "second"
		o.Precondition = &depot.Precondition{IfMatch: "stale"}
		if _, err := cl.PutObject(ctx, o); !errors.Is(err, depot.ErrPrecondition) {
			t.Fatalf("If-Match with another ETag: %v, want ErrPrecondition", err)
		}
		o.Precondition = &depot.Precondition{IfMatch: "etag-k"}
		if _, err := cl.PutObject(ctx, o); err != nil {
			t.Fatalf("If-Match with the current ETag: %v", err)
		}
		if got := current(t); got.ETag != "second" {
			t.Fatalf("after If-Match put: %+v", got)
		}
	})
	t.Run("IfUnchanged", func(t *testing.T) {
		cur := current(t)
		at := cur.Modified
		queued, err := cl.PendingDeletes(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		retag := cur
		retag.Meta = map[string]string{"x-amz-tagging": "a=b"}
		retag.Precondition = &depot.Precondition{IfUnchanged: &at}
		if _, err := cl.PutObject(ctx, retag); err != nil {
			t.Fatalf("metadata update of the current object: %v", err)
		}
		got := current(t)
		if got.Meta["x-amz-tagging"] != "a=b" || !got.Modified.Equal(at) || got.Segments[0] != cur.Segments[0] {
			t.Fatalf("after the update: %+v", got)
		}
		if q, err := cl.PendingDeletes(ctx, 0); err != nil || len(q) != len(queued) {
			t.Fatalf("a metadata update queued deletions: %+v, %v", q, err)
		}
		// The key is overwritten: an update of what it held is refused.
		next := object("shop", "k", 40, 40)
		next.ETag = "second" // as the next subtest expects
		if _, err := cl.PutObject(ctx, next); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.PutObject(ctx, retag); !errors.Is(err, depot.ErrPrecondition) {
			t.Fatalf("update of a replaced object: %v, want ErrPrecondition", err)
		}
		if got := current(t); got.Segments[0].Fid != fid(1, 40) || got.Meta["x-amz-tagging"] != "" {
			t.Fatalf("a refused update changed the key: %+v", got)
		}
		missing := retag
		missing.Key = "none"
		if _, err := cl.PutObject(ctx, missing); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("update of a missing key: %v, want ErrNotFound", err)
		}
	})
	t.Run("CompleteIfNoneMatch", func(t *testing.T) {
		if _, err := cl.CreateUpload(ctx, nsclient.Upload{Bucket: "shop", Key: "k", ID: "u1"}); err != nil {
			t.Fatal(err)
		}
		p := nsclient.Part{Number: 1, ETag: "p1", Size: 40, Segments: []depot.Segment{{Fid: fid(1, 4), Size: 40}}}
		if _, err := cl.PutPart(ctx, "shop", "k", "u1", p); err != nil {
			t.Fatal(err)
		}
		req := nsclient.CompleteRequest{Parts: []nsclient.CompletePart{{Number: 1, ETag: "p1"}}, ETag: "mp-1", Precondition: ifNone}
		if _, err := cl.CompleteUpload(ctx, "shop", "k", "u1", req); !errors.Is(err, depot.ErrPrecondition) {
			t.Fatalf("conditional completion on an existing key: %v, want ErrPrecondition", err)
		}
		// Refused whole: the upload and its part are still there.
		info, err := cl.Upload(ctx, "shop", "k", "u1")
		if err != nil || len(info.Parts) != 1 {
			t.Fatalf("upload after a refused completion: %+v, %v", info, err)
		}
		req.Precondition = &depot.Precondition{IfMatch: "second"}
		if _, err := cl.CompleteUpload(ctx, "shop", "k", "u1", req); err != nil {
			t.Fatalf("completion with the current ETag: %v", err)
		}
		if got := current(t); got.ETag != "mp-1" {
			t.Fatalf("after completion: %+v", got)
		}
	})
}
