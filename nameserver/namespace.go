package nameserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"go.etcd.io/bbolt"

	"depot"
	"depot/nameserver/nsclient"
)

// MaxListLimit is the most objects plus prefixes one List page returns.
const MaxListLimit = 1000

// CreateBucket creates a bucket. It fails with depot.ErrExists, or
// depot.ErrBadRequest for a bad name.
func (s *Server) CreateBucket(ctx context.Context, name string) (nsclient.Bucket, error) {
	if err := checkBucketName(name); err != nil {
		return nsclient.Bucket{}, err
	}
	res, err := s.store.propose(ctx, CmdCreateBucket, bucketCmd{Name: name})
	if err != nil {
		return nsclient.Bucket{}, err
	}
	return res.(nsclient.Bucket), nil
}

// DeleteBucket deletes an empty bucket. It fails with depot.ErrNotFound or
// depot.ErrNotEmpty.
func (s *Server) DeleteBucket(ctx context.Context, name string) error {
	_, err := s.store.propose(ctx, CmdDeleteBucket, bucketCmd{Name: name})
	return err
}

// Bucket returns one bucket, or an error wrapping depot.ErrNotFound.
func (s *Server) Bucket(ctx context.Context, name string) (nsclient.Bucket, error) {
	var b nsclient.Bucket
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		raw := tx.Bucket(bktBuckets).Get([]byte(name))
		if raw == nil {
			return fmt.Errorf("bucket %q: %w", name, depot.ErrNotFound)
		}
		return json.Unmarshal(raw, &b)
	})
	return b, err
}

// Buckets returns every bucket, by name.
func (s *Server) Buckets(ctx context.Context) ([]nsclient.Bucket, error) {
	out := []nsclient.Bucket{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bktBuckets).ForEach(func(_, v []byte) error {
			var b nsclient.Bucket
			if err := json.Unmarshal(v, &b); err != nil {
				return err
			}
			out = append(out, b)
			return nil
		})
	})
	return out, err
}

// PutObject switches o.Bucket/o.Key to o atomically and returns the segments
// of the object it replaced that o does not reuse, already queued for
// deletion in the same transaction, and the version it made. A zero o.Modified becomes the commit
// time. It fails with depot.ErrNotFound (no bucket) or depot.ErrBadRequest
// (bad key, segment sizes that do not add up to Size, malformed fids).
func (s *Server) PutObject(ctx context.Context, o depot.Object) (nsclient.PutResult, error) {
	if err := checkObject(o); err != nil {
		return nsclient.PutResult{}, err
	}
	res, err := s.store.propose(ctx, CmdPutObject, o)
	if err != nil {
		return nsclient.PutResult{}, err
	}
	return res.(nsclient.PutResult), nil
}

// GetObject returns the metadata of bucket/key, or an error wrapping
// depot.ErrNotFound when the bucket or the key does not exist.
func (s *Server) GetObject(ctx context.Context, bucket, key string) (depot.Object, error) {
	var o depot.Object
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b, err := objectsOf(tx, bucket)
		if err != nil {
			return err
		}
		raw := b.Get([]byte(key))
		if raw == nil {
			return fmt.Errorf("object %s/%s: %w", bucket, key, depot.ErrNotFound)
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return err
		}
		if o.DeleteMarker {
			return fmt.Errorf("object %s/%s: deleted (a delete marker): %w", bucket, key, depot.ErrNotFound)
		}
		return nil
	})
	return o, err
}

// DeleteObject removes bucket/key and returns its segments, already queued
// for deletion. It fails with depot.ErrNotFound. In a bucket with
// versioning it deletes as S3 does (DeleteVersion with no version).
func (s *Server) DeleteObject(ctx context.Context, bucket, key string) ([]depot.Segment, error) {
	res, err := s.DeleteVersion(ctx, bucket, key, nil, false)
	return res.Deleted, err
}

// DeleteVersion deletes as S3's DeleteObject: with version (S3's names:
// "null" for the null version) that version, which fails with
// depot.ErrNotFound when there is no such version; without, the key,
// which in a bucket with versioning becomes a delete marker and keeps
// its versions. A version under Object Lock is depot.ErrLocked; bypass
// lifts a GOVERNANCE retention.
func (s *Server) DeleteVersion(ctx context.Context, bucket, key string, version *string, bypass bool) (nsclient.DeleteResult, error) {
	res, err := s.store.propose(ctx, CmdDeleteObject, objectKeyCmd{Bucket: bucket, Key: key, Version: version, Bypass: bypass})
	if err != nil {
		return nsclient.DeleteResult{}, err
	}
	return res.(nsclient.DeleteResult), nil
}

// List returns one page of a bucket's keys in byte order: those with
// o.Prefix, strictly after o.After, rolled up at o.Delimiter when set. Asking
// again with After = Next while Truncated visits every key exactly once.
func (s *Server) List(ctx context.Context, bucket string, o nsclient.ListOptions) (nsclient.ListResult, error) {
	limit := o.Limit
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	res := nsclient.ListResult{Objects: []depot.Object{}}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b, err := objectsOf(tx, bucket)
		if err != nil {
			return err
		}
		cur := b.Cursor()
		start := max(o.Prefix, o.After)
		n := 0
		k, v := cur.Seek([]byte(start))
		for k != nil {
			key := string(k)
			if !strings.HasPrefix(key, o.Prefix) {
				break
			}
			if key <= o.After {
				k, v = cur.Next()
				continue
			}
			if o.Delimiter != "" {
				if i := strings.Index(key[len(o.Prefix):], o.Delimiter); i >= 0 {
					cp := key[:len(o.Prefix)+i+len(o.Delimiter)]
					if cp != o.After { // cp == After: the previous page ended with it
						if n == limit {
							res.Truncated = true
							break
						}
						res.Prefixes = append(res.Prefixes, cp)
						res.Next = cp
						n++
					}
					succ := prefixSuccessor(cp)
					if succ == nil {
						break
					}
					k, v = cur.Seek(succ)
					continue
				}
			}
			if n == limit {
				res.Truncated = true
				break
			}
			var obj depot.Object
			if err := json.Unmarshal(v, &obj); err != nil {
				return fmt.Errorf("object %s/%s: %w", bucket, key, depot.ErrCorrupt)
			}
			if obj.DeleteMarker {
				k, v = cur.Next()
				continue
			}
			res.Objects = append(res.Objects, obj)
			res.Next = key
			n++
			k, v = cur.Next()
		}
		return nil
	})
	if !res.Truncated {
		res.Next = ""
	}
	return res, err
}

// prefixSuccessor returns the smallest key greater than every key that
// starts with p, or nil when there is none.
func prefixSuccessor(p string) []byte {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return b[:i+1]
		}
	}
	return nil
}
