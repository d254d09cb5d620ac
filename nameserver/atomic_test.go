package nameserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"depot"
	"depot/nameserver/nsclient"
)

// unstartedStore opens a store whose committer does not run, so that a test
// can hand commit a batch of its choice.
func unstartedStore(t *testing.T) *store {
	t.Helper()
	st, err := openStore(t.TempDir()+"/"+DBFile, 0, 1024, newMetrics(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.close() })
	return st
}

// commitOne applies one command through the committer's path.
func commitOne(t *testing.T, st *store, typ CommandType, payload any) (any, error) {
	t.Helper()
	r := mustRequest(t, typ, payload)
	st.commit([]*request{r})
	return r.res, r.err
}

func mustRequest(t *testing.T, typ CommandType, payload any) *request {
	t.Helper()
	data, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return &request{cmd: Command{Type: typ, Time: time.Unix(1700000000, 0).UTC(), Data: data}}
}

func mustCommit(t *testing.T, st *store, typ CommandType, payload any) any {
	t.Helper()
	res, err := commitOne(t, st, typ, payload)
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	return res
}

// dbState returns every key and value of the database but the raft index,
// for comparing states.
func dbState(t *testing.T, st *store) string {
	t.Helper()
	var buf bytes.Buffer
	err := st.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			fmt.Fprintf(&buf, "bucket %s seq %d\n", name, b.Sequence())
			return digestBucket(&buf, name, b)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// A CompleteMultipartUpload refused after its first checks (its bucket is
// gone) must leave the upload, its parts and the delete queue as they were,
// and the commands batched with it must commit.
func TestApply_RefusedCommandInBatchLeavesNothing(t *testing.T) {
	st := unstartedStore(t)
	mustCommit(t, st, CmdCreateBucket, bucketCmd{Name: "keep"})
	mustCommit(t, st, CmdCreateBucket, bucketCmd{Name: "gone"})
	up := uploadKeyCmd{Bucket: "gone", Key: "big", ID: "u1"}
	mustCommit(t, st, CmdCreateUpload, nsclient.Upload{Bucket: up.Bucket, Key: up.Key, ID: up.ID})
	for n := 1; n <= 2; n++ {
		mustCommit(t, st, CmdPutPart, putPartCmd{uploadKeyCmd: up, Part: nsclient.Part{
			Number: n, ETag: "e", Size: 5, Segments: []depot.Segment{{Fid: fid(1, uint64(n)), Size: 5}}}})
	}
	// The state an older DeleteBucket left: the bucket went while one of
	// its uploads was in progress.
	err := st.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bktObjects).DeleteBucket([]byte("gone")); err != nil {
			return err
		}
		return tx.Bucket(bktBuckets).Delete([]byte("gone"))
	})
	if err != nil {
		t.Fatal(err)
	}

	batch := []*request{
		mustRequest(t, CmdPutObject, object("keep", "a", 10, 3)),
		mustRequest(t, CmdCompleteUpload, completeUploadCmd{uploadKeyCmd: up,
			CompleteRequest: nsclient.CompleteRequest{ETag: "x-1", Parts: []nsclient.CompletePart{{Number: 1, ETag: "e"}}}}),
		mustRequest(t, CmdPutObject, object("keep", "b", 11, 4)),
	}
	st.commit(batch)
	if batch[0].err != nil || batch[2].err != nil {
		t.Fatalf("batched puts failed: %v, %v", batch[0].err, batch[2].err)
	}
	if !errors.Is(batch[1].err, depot.ErrNotFound) {
		t.Fatalf("complete in a deleted bucket: err = %v, want not found", batch[1].err)
	}
	err = st.db.View(func(tx *bbolt.Tx) error {
		info, err := getUpload(tx, up, nil)
		if err != nil {
			return err
		}
		if len(info.Parts) != 2 {
			return errors.New("parts lost")
		}
		if n := tx.Bucket(bktDeletes).Stats().KeyN; n != 0 {
			return errors.New("segments of the refused command queued for deletion")
		}
		for _, k := range []string{"a", "b"} {
			if tx.Bucket(bktObjects).Bucket([]byte("keep")).Get([]byte(k)) == nil {
				return errors.New("batched object " + k + " missing")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Alone, the refused command changes nothing at all.
	before := dbState(t, st)
	if _, err := commitOne(t, st, CmdCompleteUpload, completeUploadCmd{uploadKeyCmd: up,
		CompleteRequest: nsclient.CompleteRequest{ETag: "x-2", Parts: []nsclient.CompletePart{{Number: 2, ETag: "e"}}}}); err == nil {
		t.Fatal("complete in a deleted bucket succeeded")
	}
	if after := dbState(t, st); after != before {
		t.Fatalf("a refused complete changed the database:\nbefore %s\nafter  %s", before, after)
	}
}

// A bucket with a multipart upload in progress refuses deletion, as S3
// does; once the upload is aborted the bucket goes.
func TestApply_DeleteBucketWithUploads(t *testing.T) {
	st := unstartedStore(t)
	mustCommit(t, st, CmdCreateBucket, bucketCmd{Name: "busy"})
	up := uploadKeyCmd{Bucket: "busy", Key: "k", ID: "u1"}
	mustCommit(t, st, CmdCreateUpload, nsclient.Upload{Bucket: up.Bucket, Key: up.Key, ID: up.ID})
	mustCommit(t, st, CmdPutPart, putPartCmd{uploadKeyCmd: up, Part: nsclient.Part{
		Number: 1, ETag: "e", Size: 5, Segments: []depot.Segment{{Fid: fid(1, 1), Size: 5}}}})
	// A bucket whose name extends "busy" has its own uploads: they must not
	// count for "busy", nor "busy"'s for it.
	mustCommit(t, st, CmdCreateBucket, bucketCmd{Name: "busy2"})
	if _, err := commitOne(t, st, CmdDeleteBucket, bucketCmd{Name: "busy"}); !errors.Is(err, depot.ErrNotEmpty) {
		t.Fatalf("delete of a bucket with an upload in progress: err = %v, want not empty", err)
	}
	if _, err := commitOne(t, st, CmdDeleteBucket, bucketCmd{Name: "busy2"}); err != nil {
		t.Fatalf("delete of an empty bucket beside a busy one: %v", err)
	}
	mustCommit(t, st, CmdAbortUpload, up)
	if _, err := commitOne(t, st, CmdDeleteBucket, bucketCmd{Name: "busy"}); err != nil {
		t.Fatalf("delete after abort: %v", err)
	}
}

// The data keys of a completed encrypted object are those recorded with
// its parts, whatever the completion carries: a part replaced after the
// gateway read the upload must not leave the object with the old key.
func TestApply_CompleteTakesStreamsFromParts(t *testing.T) {
	st := unstartedStore(t)
	mustCommit(t, st, CmdCreateBucket, bucketCmd{Name: "enc"})
	up := uploadKeyCmd{Bucket: "enc", Key: "k", ID: "u1"}
	mustCommit(t, st, CmdCreateUpload, nsclient.Upload{Bucket: up.Bucket, Key: up.Key, ID: up.ID,
		Encryption: &depot.Encryption{Mode: depot.EncryptionS3}})
	stream := func(key string) *depot.Stream {
		return &depot.Stream{Size: 5, ChunkSize: 1 << 16, KeyID: "m1", Key: []byte(key), Nonce: []byte("nonce-" + key)}
	}
	part := func(key string, needle uint64) putPartCmd {
		st := stream(key)
		return putPartCmd{uploadKeyCmd: up, Part: nsclient.Part{Number: 1, ETag: "e", Size: 5, Stream: st,
			Segments: []depot.Segment{{Fid: fid(1, needle), Size: st.StoredSize()}}}}
	}
	mustCommit(t, st, CmdPutPart, part("old", 1))
	// The gateway read the upload here; then the part was uploaded again,
	// same bytes (same ETag), new data key.
	stale := *stream("old")
	mustCommit(t, st, CmdPutPart, part("new", 2))
	mustCommit(t, st, CmdCompleteUpload, completeUploadCmd{uploadKeyCmd: up, CompleteRequest: nsclient.CompleteRequest{
		ETag: "x-1", Parts: []nsclient.CompletePart{{Number: 1, ETag: "e"}},
		Encryption: &depot.Encryption{Mode: depot.EncryptionS3, Streams: []depot.Stream{stale}}}})
	var o depot.Object
	err := st.db.View(func(tx *bbolt.Tx) error {
		return json.Unmarshal(tx.Bucket(bktObjects).Bucket([]byte("enc")).Get([]byte("k")), &o)
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.Encryption == nil || len(o.Encryption.Streams) != 1 || string(o.Encryption.Streams[0].Key) != "new" {
		t.Fatalf("completed object's encryption = %+v, want the part's stream (key \"new\")", o.Encryption)
	}
	if o.Segments[0].Fid != fid(1, 2) {
		t.Fatalf("segments %+v", o.Segments)
	}

	// A part without a stream in an encrypted upload is refused.
	up2 := uploadKeyCmd{Bucket: "enc", Key: "k2", ID: "u2"}
	mustCommit(t, st, CmdCreateUpload, nsclient.Upload{Bucket: up2.Bucket, Key: up2.Key, ID: up2.ID,
		Encryption: &depot.Encryption{Mode: depot.EncryptionS3}})
	mustCommit(t, st, CmdPutPart, putPartCmd{uploadKeyCmd: up2, Part: nsclient.Part{Number: 1, ETag: "e", Size: 5,
		Segments: []depot.Segment{{Fid: fid(1, 3), Size: 5}}}})
	if _, err := commitOne(t, st, CmdCompleteUpload, completeUploadCmd{uploadKeyCmd: up2, CompleteRequest: nsclient.CompleteRequest{
		ETag: "x-1", Parts: []nsclient.CompletePart{{Number: 1, ETag: "e"}}}}); !errors.Is(err, depot.ErrBadRequest) {
		t.Fatalf("plain part in an encrypted upload: err = %v, want bad request", err)
	}
}
