package nameserver

import (
	"encoding/json"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"

	"depot"
)

// currentObject returns the object stored under key in the objects bucket
// b, or nil when there is none.
func currentObject(b *bbolt.Bucket, bucket, key string) (*depot.Object, error) {
	raw := b.Get([]byte(key))
	if raw == nil {
		return nil, nil
	}
	o := new(depot.Object)
	if err := json.Unmarshal(raw, o); err != nil {
		return nil, fmt.Errorf("object %s/%s: decode: %w", bucket, key, depot.ErrCorrupt)
	}
	return o, nil
}

// checkPrecondition decides a conditional write of o against cur, the
// key's current object (nil: none), inside the transaction that writes o,
// so that the check and the write are one step. It returns
// depot.ErrPrecondition (or depot.ErrNotFound for IfMatch on a missing
// key) when o.Precondition does not hold.
//
// A replay of the very write that made cur (a retried command whose first
// try applied) passes: fids are never reused, so a key that already holds
// o's segments holds o, and refusing would make the caller discard live
// segments.
func checkPrecondition(o depot.Object, cur *depot.Object) error {
	p := o.Precondition
	if p == nil {
		return nil
	}
	if cur != nil && len(o.Segments) > 0 && slices.Equal(cur.Segments, o.Segments) {
		return nil
	}
	switch {
	case p.IfNoneMatch && cur != nil:
		return fmt.Errorf("%w: object %s/%s exists", depot.ErrPrecondition, o.Bucket, o.Key)
	case p.IfMatch != "" && cur == nil:
		return fmt.Errorf("object %s/%s: %w", o.Bucket, o.Key, depot.ErrNotFound)
	case p.IfMatch != "" && p.IfMatch != "*" && p.IfMatch != cur.ETag:
		return fmt.Errorf("%w: object %s/%s has ETag %q, not %q", depot.ErrPrecondition, o.Bucket, o.Key, cur.ETag, p.IfMatch)
	case p.IfUnchanged != nil && cur == nil:
		return fmt.Errorf("object %s/%s: %w", o.Bucket, o.Key, depot.ErrNotFound)
	case p.IfUnchanged != nil && (!cur.Modified.Equal(*p.IfUnchanged) || !slices.Equal(cur.Segments, o.Segments)):
		return fmt.Errorf("%w: object %s/%s was replaced", depot.ErrPrecondition, o.Bucket, o.Key)
	}
	return nil
}
