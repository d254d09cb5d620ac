package nameserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"

	"go.etcd.io/bbolt"

	"depot"
	"depot/nameserver/nsclient"
)

// S3 versioning (see doc.go, "Versions"). A key's current version stays
// where every object lives, in the objects bucket; the versions it
// superseded live in bktVersions, one sub-bucket per namespace bucket,
// under versionKey(key, seq): the key escaped so that byte order of the
// escaped keys is the byte order of the keys, then the complement of a
// sequence number, so each key's versions come newest first. A version
// keeps its segments (and their refs) until a delete names it.

// bktVersions holds the non-current versions: bucket name → sub-bucket of
// versionKey → JSON depot.Object. Created by the first version.
var bktVersions = []byte("versions")

// nullVersion is S3's name of the version with no id.
const nullVersion = "null"

// escapeKey appends key with each 0x00 written as 0x00 0xff and the end
// as 0x00 0x00: escaped keys sort as the keys do, and none is a prefix
// of another.
func escapeKey(dst []byte, key string) []byte {
	for i := 0; i < len(key); i++ {
		dst = append(dst, key[i])
		if key[i] == 0 {
			dst = append(dst, 0xff)
		}
	}
	return append(dst, 0, 0)
}

// unescapeKey reverses escapeKey on the start of k and returns the key and
// the rest of k.
func unescapeKey(k []byte) (string, []byte, bool) {
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if k[i] != 0 {
			b.WriteByte(k[i])
			continue
		}
		if i+1 >= len(k) {
			return "", nil, false
		}
		switch k[i+1] {
		case 0:
			return b.String(), k[i+2:], true
		case 0xff:
			b.WriteByte(0)
			i++
		default:
			return "", nil, false
		}
	}
	return "", nil, false
}

func versionKey(key string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(escapeKey(nil, key), ^seq)
}

// versionsOf returns the versions sub-bucket of the namespace bucket name,
// creating it when create is set; nil when it does not exist.
func versionsOf(tx *bbolt.Tx, name string, create bool) (*bbolt.Bucket, error) {
	top := tx.Bucket(bktVersions)
	if top == nil {
		if !create {
			return nil, nil
		}
		var err error
		if top, err = tx.CreateBucket(bktVersions); err != nil {
			return nil, &storageError{err}
		}
	}
	if !create {
		return top.Bucket([]byte(name)), nil
	}
	b, err := top.CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return nil, &storageError{err}
	}
	return b, nil
}

// versioningOf returns the versioning state of the namespace bucket name.
func versioningOf(tx *bbolt.Tx, name string) (string, error) {
	raw := tx.Bucket(bktBuckets).Get([]byte(name))
	if raw == nil {
		return "", fmt.Errorf("bucket %q: %w", name, depot.ErrNotFound)
	}
	var bk struct {
		Versioning string `json:"versioning"`
	}
	if err := json.Unmarshal(raw, &bk); err != nil {
		return "", fmt.Errorf("bucket %q: %w", name, depot.ErrCorrupt)
	}
	return bk.Versioning, nil
}

// newVersionID returns a version id no other version of the bucket has:
// the command's time and the versions sub-bucket's next sequence, so that
// an id is not given twice even after a restore rewinds the sequence.
func newVersionID(cmd Command, vb *bbolt.Bucket) (string, error) {
	seq, err := vb.NextSequence()
	if err != nil {
		return "", &storageError{err}
	}
	return fmt.Sprintf("%016x%08x", cmd.Time.UnixNano(), uint32(seq)), nil
}

// pushVersion keeps o, a key's current version being superseded, as the
// newest of its non-current versions.
func pushVersion(vb *bbolt.Bucket, o depot.Object) error {
	seq, err := vb.NextSequence()
	if err != nil {
		return &storageError{err}
	}
	return putJSON(vb, versionKey(o.Key, seq), o)
}

// keyVersions calls fn for each non-current version of key, newest first,
// until fn returns false.
func keyVersions(vb *bbolt.Bucket, key string, fn func(k []byte, o depot.Object) (bool, error)) error {
	if vb == nil {
		return nil
	}
	pfx := escapeKey(nil, key)
	c := vb.Cursor()
	for k, v := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, v = c.Next() {
		var o depot.Object
		if err := json.Unmarshal(v, &o); err != nil {
			return fmt.Errorf("version of %q: %w", key, depot.ErrCorrupt)
		}
		more, err := fn(bytes.Clone(k), o)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// takeVersion removes the non-current version of key with id vid ("" the
// null version) and returns it; nil when there is none.
func takeVersion(vb *bbolt.Bucket, key, vid string) (*depot.Object, error) {
	var found *depot.Object
	var at []byte
	err := keyVersions(vb, key, func(k []byte, o depot.Object) (bool, error) {
		if o.VersionID == vid {
			found, at = &o, k
			return false, nil
		}
		return true, nil
	})
	if err != nil || found == nil {
		return nil, err
	}
	return found, del(vb, at)
}

// s3Version is how S3 names the version id v of a bucket whose
// versioning state is state.
func s3Version(state, v string) string {
	switch {
	case state == "":
		return ""
	case v == "":
		return nullVersion
	}
	return v
}

// fromS3Version maps S3's "null" to the empty version id.
func fromS3Version(v string) string {
	if v == nullVersion {
		return ""
	}
	return v
}

// liveObject returns cur unless it is nil or a delete marker: the object a
// key holds for reads and for conditional writes.
func liveObject(cur *depot.Object) *depot.Object {
	if cur == nil || cur.DeleteMarker {
		return nil
	}
	return cur
}

// applyVersionedPut decides what becomes of old, the key's current
// version, when o replaces it in a bucket whose versioning state is state,
// and sets o.VersionID. It returns the segments the write releases (to be
// queued for deletion). In a bucket that never had versioning, and for an
// update of the very same version (a retried write, or a metadata-only
// update: the same segments, or IfUnchanged), o takes old's place;
// enabled, old becomes a non-current version and o gets a new id;
// suspended, o is the null version, which replaces the null version
// wherever it was. sameVersion is isSameVersion(o, old).
func applyVersionedPut(tx *bbolt.Tx, cmd Command, state string, o *depot.Object, old *depot.Object, sameVersion bool) ([]depot.Segment, error) {
	if state == "" || sameVersion {
		o.VersionID = ""
		if old == nil {
			return nil, nil
		}
		o.VersionID = old.VersionID
		return unusedSegments(old.Segments, o.Segments), nil
	}
	vb, err := versionsOf(tx, o.Bucket, true)
	if err != nil {
		return nil, err
	}
	return supersede(tx, cmd, vb, state, o, old)
}

// supersede makes o the key's current version in place of old (nil: none)
// in a bucket with versioning state state, and returns the segments it
// releases.
func supersede(tx *bbolt.Tx, cmd Command, vb *bbolt.Bucket, state string, o, old *depot.Object) ([]depot.Segment, error) {
	var released []depot.Segment
	if state == nsclient.VersioningEnabled {
		id, err := newVersionID(cmd, vb)
		if err != nil {
			return nil, err
		}
		o.VersionID = id
		if old != nil {
			return nil, pushVersion(vb, *old)
		}
		return nil, nil
	}
	o.VersionID = ""
	if old != nil {
		if old.VersionID == "" {
			if err := checkUnlocked(old, cmd.Time, false); err != nil {
				return nil, err
			}
			released = old.Segments
		} else if err := pushVersion(vb, *old); err != nil {
			return nil, err
		}
	}
	null, err := takeVersion(vb, o.Key, "")
	if err != nil {
		return nil, err
	}
	if null != nil {
		if err := checkUnlocked(null, cmd.Time, false); err != nil {
			return nil, err
		}
		released = append(released, null.Segments...)
	}
	// Never what the new version itself holds.
	return unusedSegments(released, o.Segments), nil
}

// isSameVersion reports whether o updates old itself rather than making
// a new version: the same segments (a retried write, a metadata update),
// or a write conditional on old being unchanged.
func isSameVersion(o, old *depot.Object) bool {
	return old != nil && !old.DeleteMarker &&
		(len(o.Segments) > 0 && segmentsEqual(old.Segments, o.Segments) || o.Precondition != nil && o.Precondition.IfUnchanged != nil)
}

// heldByObject reports whether any of segs is referenced by an object
// version (the refs index; a part's segments are not).
func heldByObject(tx *bbolt.Tx, segs []depot.Segment) (bool, error) {
	refs, err := refsOf(tx)
	if err != nil {
		return false, err
	}
	for _, sg := range segs {
		if owner := refs.Get(refKey(sg.Fid)); len(owner) > 0 && owner[0] == 'o' {
			return true, nil
		}
	}
	return false, nil
}

// versionHolding returns the id of the version of bucket/key whose
// segments are segs ("" when none of its versions: the null version, or
// another key's).
func versionHolding(tx *bbolt.Tx, bucket, key string, segs []depot.Segment) (string, error) {
	vb, err := versionsOf(tx, bucket, false)
	if err != nil {
		return "", err
	}
	id := ""
	err = keyVersions(vb, key, func(_ []byte, o depot.Object) (bool, error) {
		if segmentsEqual(o.Segments, segs) {
			id = o.VersionID
			return false, nil
		}
		return true, nil
	})
	return id, err
}

func segmentsEqual(a, b []depot.Segment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// applyDeleteVersioned deletes in a bucket that has versioning state
// state: with c.Version, that one version (the newest other version takes
// the place of a removed current one); without, the key gets a delete
// marker as its current version.
func (s *store) applyDeleteVersioned(tx *bbolt.Tx, cmd Command, c objectKeyCmd, state string, b *bbolt.Bucket, old *depot.Object) (any, error) {
	vb, err := versionsOf(tx, c.Bucket, true)
	if err != nil {
		return nil, err
	}
	if c.Version == nil {
		marker := depot.Object{Bucket: c.Bucket, Key: c.Key, DeleteMarker: true, Modified: cmd.Time, Segments: []depot.Segment{}}
		released, err := supersede(tx, cmd, vb, state, &marker, old)
		if err != nil {
			return nil, err
		}
		if err := putJSON(b, []byte(c.Key), marker); err != nil {
			return nil, err
		}
		if err := enqueueDeletes(tx, cmd, released); err != nil {
			return nil, err
		}
		if live := liveObject(old); live != nil {
			if err := addCounters(tx, -1, -live.Size); err != nil {
				return nil, err
			}
		}
		return nsclient.DeleteResult{Deleted: nonNil(released), VersionID: s3Version(state, marker.VersionID), DeleteMarker: true}, nil
	}
	vid := fromS3Version(*c.Version)
	if old != nil && old.VersionID == vid {
		if err := checkUnlocked(old, cmd.Time, c.Bypass); err != nil {
			return nil, err
		}
		// The current version goes; the newest other one comes back.
		var next *depot.Object
		err := keyVersions(vb, c.Key, func(k []byte, o depot.Object) (bool, error) {
			next = &o
			return false, del(vb, k)
		})
		if err != nil {
			return nil, err
		}
		if next != nil {
			err = putJSON(b, []byte(c.Key), next)
		} else {
			err = del(b, []byte(c.Key))
		}
		if err != nil {
			return nil, err
		}
		if err := enqueueDeletes(tx, cmd, old.Segments); err != nil {
			return nil, err
		}
		var dObjects, dBytes int64
		if live := liveObject(old); live != nil {
			dObjects, dBytes = -1, -live.Size
		}
		if live := liveObject(next); live != nil {
			dObjects, dBytes = dObjects+1, dBytes+live.Size
		}
		if err := addCounters(tx, dObjects, dBytes); err != nil {
			return nil, err
		}
		return nsclient.DeleteResult{Deleted: nonNil(old.Segments), VersionID: s3Version(state, vid), DeleteMarker: old.DeleteMarker}, nil
	}
	gone, err := takeVersion(vb, c.Key, vid)
	if err != nil {
		return nil, err
	}
	if gone == nil {
		return nil, fmt.Errorf("object %s/%s version %q: %w", c.Bucket, c.Key, *c.Version, depot.ErrNotFound)
	}
	if err := checkUnlocked(gone, cmd.Time, c.Bypass); err != nil {
		return nil, err // the transaction is not committed: the version stays
	}
	if err := enqueueDeletes(tx, cmd, gone.Segments); err != nil {
		return nil, err
	}
	return nsclient.DeleteResult{Deleted: nonNil(gone.Segments), VersionID: s3Version(state, vid), DeleteMarker: gone.DeleteMarker}, nil
}

func nonNil(segs []depot.Segment) []depot.Segment {
	if segs == nil {
		return []depot.Segment{}
	}
	return segs
}

// GetObjectVersion returns version vid of bucket/key (S3's names: "null"
// for the null version; "" the current version, even a delete marker),
// or an error wrapping depot.ErrNotFound.
func (s *Server) GetObjectVersion(ctx context.Context, bucket, key, vid string) (depot.Object, error) {
	var out depot.Object
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b, err := objectsOf(tx, bucket)
		if err != nil {
			return err
		}
		cur, err := currentObject(b, bucket, key)
		if err != nil {
			return err
		}
		if cur != nil && (vid == "" || cur.VersionID == fromS3Version(vid)) {
			out = *cur
			return nil
		}
		if vid != "" {
			vb, err := versionsOf(tx, bucket, false)
			if err != nil {
				return err
			}
			found := false
			err = keyVersions(vb, key, func(_ []byte, o depot.Object) (bool, error) {
				if o.VersionID == fromS3Version(vid) {
					out, found = o, true
					return false, nil
				}
				return true, nil
			})
			if err != nil || found {
				return err
			}
		}
		return fmt.Errorf("object %s/%s version %q: %w", bucket, key, vid, depot.ErrNotFound)
	})
	return out, err
}

// ListVersions returns one page of a bucket's versions in S3's order: keys
// in byte order, each key's versions newest first (the current one, then
// the others), rolled up at o.Delimiter. Asking again with the returned
// markers while Truncated visits every version exactly once. It holds one
// version at a time: a key with many versions costs time, not memory.
func (s *Server) ListVersions(ctx context.Context, bucket string, o nsclient.VersionListOptions) (nsclient.VersionList, error) {
	limit := o.Limit
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	res := nsclient.VersionList{Versions: []nsclient.VersionEntry{}}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b, err := objectsOf(tx, bucket)
		if err != nil {
			return err
		}
		vb, err := versionsOf(tx, bucket, false)
		if err != nil {
			return err
		}
		n := 0
		// emit adds e to the page; false when the page is full.
		emit := func(key string, e nsclient.VersionEntry) bool {
			if n == limit {
				res.Truncated = true
				return false
			}
			res.Versions = append(res.Versions, e)
			res.NextKeyMarker, res.NextVersionIDMarker = key, s3Name(e.VersionID)
			n++
			return true
		}
		keys := newKeyMerge(b, vb, max(o.Prefix, o.KeyMarker))
		for key, ok := keys.next(); ok; key, ok = keys.next() {
			if !strings.HasPrefix(key, o.Prefix) {
				break // keys come in order from the prefix on
			}
			if key < o.KeyMarker || key == o.KeyMarker && o.VersionIDMarker == "" {
				continue
			}
			if o.Delimiter != "" {
				if i := strings.Index(key[len(o.Prefix):], o.Delimiter); i >= 0 {
					cp := key[:len(o.Prefix)+i+len(o.Delimiter)]
					if cp != o.KeyMarker {
						if n == limit {
							res.Truncated = true
							break
						}
						res.Prefixes = append(res.Prefixes, cp)
						res.NextKeyMarker, res.NextVersionIDMarker = cp, ""
						n++
					}
					succ := prefixSuccessor(cp)
					if succ == nil {
						break
					}
					keys.seek(string(succ))
					continue
				}
			}
			// Past the marker's version of the marker key, if it still
			// exists (else the key's versions are listed again rather
			// than skipped).
			skipping := key == o.KeyMarker && markerExists(b, vb, key, o.VersionIDMarker)
			matches := func(vid string) bool { return s3Name(vid) == o.VersionIDMarker }
			cur, err := currentObject(b, bucket, key)
			if err != nil {
				return err
			}
			if cur != nil {
				if skipping {
					skipping = !matches(cur.VersionID)
				} else if !emit(key, nsclient.VersionEntry{Object: *cur, IsLatest: true}) {
					break
				}
			}
			full := false
			err = keyVersions(vb, key, func(_ []byte, v depot.Object) (bool, error) {
				if skipping {
					skipping = !matches(v.VersionID)
					return true, nil
				}
				if !emit(key, nsclient.VersionEntry{Object: v}) {
					full = true
					return false, nil
				}
				return true, nil
			})
			if err != nil {
				return err
			}
			if full {
				break
			}
		}
		return nil
	})
	if !res.Truncated {
		res.NextKeyMarker, res.NextVersionIDMarker = "", ""
	}
	return res, err
}

// markerExists reports whether key has a version named vid (S3's names),
// reading the records' bytes without decoding them.
func markerExists(b, vb *bbolt.Bucket, key, vid string) bool {
	if vid == "" {
		return false
	}
	has := func(raw []byte) bool {
		if vid == nullVersion {
			return !bytes.Contains(raw, []byte(`"version_id":`))
		}
		return bytes.Contains(raw, []byte(`"version_id":"`+vid+`"`))
	}
	if raw := b.Get([]byte(key)); raw != nil && has(raw) {
		return true
	}
	if vb == nil {
		return false
	}
	pfx := escapeKey(nil, key)
	c := vb.Cursor()
	for k, v := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, v = c.Next() {
		if has(v) {
			return true
		}
	}
	return false
}

// keyMerge yields, in byte order and once each, the keys that have a
// current version (objects bucket) or a non-current one (versions
// sub-bucket), from start on.
type keyMerge struct {
	oc, vc *bbolt.Cursor
	ok, vk string
	oOK    bool
	vOK    bool
}

func newKeyMerge(objects, versions *bbolt.Bucket, start string) *keyMerge {
	m := &keyMerge{oc: objects.Cursor()}
	k, _ := m.oc.Seek([]byte(start))
	m.ok, m.oOK = string(k), k != nil
	if versions != nil {
		m.vc = versions.Cursor()
		k, _ := m.vc.Seek(escapeKey(nil, start)[:len(escapeKey(nil, start))-2])
		m.setV(k)
	}
	return m
}

// seek moves both cursors to the first key at or after start.
func (m *keyMerge) seek(start string) {
	k, _ := m.oc.Seek([]byte(start))
	m.ok, m.oOK = string(k), k != nil
	if m.vc != nil {
		esc := escapeKey(nil, start)
		k, _ := m.vc.Seek(esc[:len(esc)-2])
		m.setV(k)
	}
}

func (m *keyMerge) setV(k []byte) {
	m.vOK = false
	for k != nil {
		key, _, ok := unescapeKey(k)
		if ok {
			m.vk, m.vOK = key, true
			return
		}
		k, _ = m.vc.Next()
	}
}

// skipV moves the versions cursor past every version of key.
func (m *keyMerge) skipV(key string) {
	pfx := escapeKey(nil, key)
	k, _ := m.vc.Seek(pfx)
	for k != nil && bytes.HasPrefix(k, pfx) {
		k, _ = m.vc.Next()
	}
	m.setV(k)
}

func (m *keyMerge) next() (string, bool) {
	switch {
	case !m.oOK && !m.vOK:
		return "", false
	case m.oOK && (!m.vOK || m.ok <= m.vk):
		key := m.ok
		k, _ := m.oc.Next()
		m.ok, m.oOK = string(k), k != nil
		if m.vOK && m.vk == key {
			m.skipV(key)
		}
		return key, true
	default:
		key := m.vk
		m.skipV(key)
		return key, true
	}
}
