package nameserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"go.etcd.io/bbolt"

	"depot"
	"depot/nameserver/nsclient"
)

// Completed uploads: S3 answers a CompleteMultipartUpload repeated after
// its answer was lost (a new HTTP request from the client, so a new
// request id) with 200 and the same ETag. The upload is gone by then, so
// complete_upload records what the repeat needs, for RequestRetention.

var (
	// bktCompleted: the upload's key (uploadKey) → JSON
	// nsclient.CompletedUpload. Created by the first completion.
	bktCompleted = []byte("completed")
	// bktCompletedTimes: int64 Unix nanoseconds of the completion, then
	// the upload's key → empty: the records in time order, for pruning.
	bktCompletedTimes = []byte("completed_times")
)

// recordCompleted records the completion c applied by cmd and prunes
// records older than RequestRetention, as many as pruneRequests does.
func recordCompleted(tx *bbolt.Tx, cmd Command, c completeUploadCmd) error {
	b, err := tx.CreateBucketIfNotExists(bktCompleted)
	if err != nil {
		return &storageError{err}
	}
	ix, err := tx.CreateBucketIfNotExists(bktCompletedTimes)
	if err != nil {
		return &storageError{err}
	}
	if err := pruneRequests(b, ix, cmd.Time); err != nil {
		return err
	}
	k := uploadKey(c.Bucket, c.Key, c.ID)
	// An upload id completed again (created anew after its completion)
	// replaces the record: its older time entry must go with it.
	if raw := b.Get(k); raw != nil {
		var old nsclient.CompletedUpload
		if json.Unmarshal(raw, &old) == nil {
			if err := del(ix, append(timeKey(old.Completed), k...)); err != nil {
				return err
			}
		}
	}
	rec := nsclient.CompletedUpload{Bucket: c.Bucket, Key: c.Key, ID: c.ID, ETag: c.ETag,
		Parts: c.Parts, Completed: cmd.Time}
	if err := putJSON(b, k, rec); err != nil {
		return err
	}
	return put(ix, append(timeKey(cmd.Time), k...), nil)
}

// CompletedUpload returns the record of an upload completed within
// RequestRetention, or an error wrapping depot.ErrNotFound.
func (s *Server) CompletedUpload(ctx context.Context, c uploadKeyCmd) (nsclient.CompletedUpload, error) {
	var rec nsclient.CompletedUpload
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var raw []byte
		if b := tx.Bucket(bktCompleted); b != nil {
			raw = b.Get(uploadKey(c.Bucket, c.Key, c.ID))
		}
		if raw == nil {
			return fmt.Errorf("completed upload %s of %s/%s: %w", c.ID, c.Bucket, c.Key, depot.ErrNotFound)
		}
		return json.Unmarshal(bytes.Clone(raw), &rec)
	})
	return rec, err
}
