package nameserver

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"

	"depot"
	"depot/nameserver/nsclient"
)

// Top-level bbolt buckets; see doc.go for the layout of each.
var (
	bktMeta        = []byte("meta")
	bktDataservers = []byte("dataservers")
	bktVolumes     = []byte("volumes")
	bktNeedles     = []byte("needles")
	bktNodeVols    = []byte("nodevols")
	bktBuckets     = []byte("buckets")
	bktObjects     = []byte("objects")
	bktDeletes     = []byte("deletes")
	bktMissed      = []byte("missed")

	allBuckets = [][]byte{bktUsers, bktUploads, bktParts, bktMeta, bktDataservers, bktVolumes, bktNeedles, bktNodeVols,
		bktBuckets, bktObjects, bktDeletes, bktMissed, bktNameservers}

	keyVersion = []byte("version")
	keyObjects = []byte("objects")
	keyBytes   = []byte("bytes")
	// keyRaftIndex is the raft log index of the last command applied, in
	// the same transaction as the command (raft.go).
	keyRaftIndex = []byte("raft_index")
)

// formatVersion is the layout version written in meta/version. Version 2
// added the refs index (orphans.go); openStore upgrades version 1 by
// building it, and older nameservers refuse version 2, so none of them
// can commit objects without maintaining the index.
const formatVersion = "2"

// storageError marks a failure of bbolt itself inside apply (as opposed to a
// refused command). It spoils the whole transaction: the committer rolls the
// batch back and retries its commands one by one.
type storageError struct{ err error }

func (e *storageError) Error() string { return "nameserver: storage: " + e.err.Error() }
func (e *storageError) Unwrap() error { return e.err }

func put(b *bbolt.Bucket, k, v []byte) error {
	if err := b.Put(k, v); err != nil {
		return &storageError{err}
	}
	return nil
}

func del(b *bbolt.Bucket, k []byte) error {
	if err := b.Delete(k); err != nil {
		return &storageError{err}
	}
	return nil
}

func putJSON(b *bbolt.Bucket, k []byte, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return &storageError{err}
	}
	return put(b, k, buf)
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b *bbolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func nodeVolKey(node string, id depot.VolumeID) []byte {
	k := make([]byte, 0, len(node)+5)
	k = append(k, node...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint32(k, uint32(id))
}

// apply executes one command in tx and returns its result. It is the only
// code that changes the nameserver's state.
//
// A command that returns an ordinary error is refused as a whole: the
// committer (store.applyBatch) discards whatever it wrote, so apply need
// not check everything before its first write, though it should (a
// refusal costs the batch another pass). A *storageError (bbolt failing)
// spoils the whole transaction. Changes to the in-memory cache are queued
// with s.afterCommit and run only once the transaction is durable.
//
// A command that carries a request id is applied at most once: a repeat
// gets the result recorded the first time and changes nothing
// (requests.go).
func (s *store) apply(tx *bbolt.Tx, cmd Command) (any, error) {
	if cmd.ID != "" {
		return s.applyOnce(tx, cmd)
	}
	return s.applyCommand(tx, cmd)
}

// applyCommand executes one command in tx, with apply's contract.
func (s *store) applyCommand(tx *bbolt.Tx, cmd Command) (any, error) {
	switch cmd.Type {
	case CmdSyncDataservers:
		var c syncDataserversCmd
		if err := decode(cmd, &c); err != nil {
			return nil, err
		}
		return nil, s.applySync(tx, cmd, c)
	case CmdAssign:
		var c assignCmd
		if err := decode(cmd, &c); err != nil {
			return nil, err
		}
		return s.applyAssign(tx, cmd, c)
	case CmdSetVolumeState:
		var c setVolumeStateCmd
		if err := decode(cmd, &c); err != nil {
			return nil, err
		}
		return nil, s.applySetVolumeState(tx, c)
	case CmdMissed:
		var c nsclient.MissedWrite
		if err := decode(cmd, &c); err != nil {
			return nil, err
		}
		return nil, s.applyMissed(tx, cmd, c)
	case CmdClearMissed:
		var c nsclient.FidList
		if err := decode(cmd, &c); err != nil {
			return nil, err
		}
		b := tx.Bucket(bktMissed)
		for _, f := range c.Fids {
			if err := del(b, []byte(f)); err != nil {
				return nil, err
			}
		}
		return nil, nil
	case CmdAckDeletes:
		var c nsclient.SeqList
		if err := decode(cmd, &c); err != nil {
			return nil, err
		}
		return nil, ackDeletes(tx, c.Seqs)
	case CmdCreateBucket:
		var c bucketCmd
		if err := decode(cmd, &c); err != nil {
			return nil, err
		}
		return s.applyCreateBucket(tx, cmd, c)
	case CmdDeleteBucket:
		var c bucketCmd
		if err := decode(cmd, &c); err != nil {
			return nil, err
		}
		return nil, s.applyDeleteBucket(tx, c)
	case CmdPutObject:
		var o depot.Object
		if err := decode(cmd, &o); err != nil {
			return nil, err
		}
		return s.applyPutObject(tx, cmd, o)
	case CmdDeleteObject:
		var c objectKeyCmd
		if err := decode(cmd, &c); err != nil {
			return nil, err
		}
		return s.applyDeleteObject(tx, cmd, c)
	case CmdSetLock:
		var c setLockCmd
		if err := decode(cmd, &c); err != nil {
			return nil, err
		}
		return nil, s.applySetLock(tx, cmd, c)
	}
	if res, ok, err := s.applyRepair(tx, cmd); ok {
		return res, err
	}
	if res, ok, err := s.applyRebalance(tx, cmd); ok {
		return res, err
	}
	if res, ok, err := s.applyS3(tx, cmd); ok {
		return res, err
	}
	if res, ok, err := s.applyOrphans(tx, cmd); ok {
		return res, err
	}
	if res, ok, err := s.applyRaft(tx, cmd); ok {
		return res, err
	}
	return nil, fmt.Errorf("%w: unknown command %q", depot.ErrBadRequest, cmd.Type)
}

func decode(cmd Command, v any) error {
	if err := json.Unmarshal(cmd.Data, v); err != nil {
		return fmt.Errorf("%w: %s payload: %v", depot.ErrBadRequest, cmd.Type, err)
	}
	return nil
}

func (s *store) applySync(tx *bbolt.Tx, cmd Command, c syncDataserversCmd) error {
	b := tx.Bucket(bktDataservers)
	seen := make(map[string]bool, len(c.Dataservers))
	var changed []dataserverRecord
	var flipped []string // nodes whose down() changed
	update := func(rec dataserverRecord) error {
		var old dataserverRecord
		had := false
		if v := b.Get([]byte(rec.ID)); v != nil {
			had = json.Unmarshal(v, &old) == nil
		}
		if had && old == rec {
			return nil
		}
		if !had || old.down() != rec.down() {
			flipped = append(flipped, rec.ID)
		}
		changed = append(changed, rec)
		return putJSON(b, []byte(rec.ID), rec)
	}
	for _, rec := range c.Dataservers {
		if rec.ID == "" || bytes.IndexByte([]byte(rec.ID), 0) >= 0 || seen[rec.ID] {
			continue
		}
		seen[rec.ID] = true
		if err := update(rec); err != nil {
			return err
		}
	}
	// Stored dataservers that gossip no longer lists.
	var missing []dataserverRecord
	err := b.ForEach(func(k, v []byte) error {
		if seen[string(k)] {
			return nil
		}
		var rec dataserverRecord
		if json.Unmarshal(v, &rec) != nil || rec.State == stateUnknown {
			return nil
		}
		rec.State, rec.Since = stateUnknown, cmd.Time
		missing = append(missing, rec)
		return nil
	})
	if err != nil {
		return &storageError{err}
	}
	for _, rec := range missing {
		if err := update(rec); err != nil {
			return err
		}
	}
	// Volumes of dataservers that went down or came back.
	var vols []volumeRecord
	for _, node := range flipped {
		ids, err := volumesOf(tx, node)
		if err != nil {
			return err
		}
		for _, id := range ids {
			v, err := getVolume(tx, id)
			if err != nil {
				continue
			}
			next := v.State
			down := anyMemberDown(tx, v.Volume)
			switch {
			case down && (v.State == depot.VolumeWritable || v.State == depot.VolumeFull):
				next = depot.VolumeDegraded
			case !down && v.State == depot.VolumeDegraded:
				next = depot.VolumeWritable
				if v.Full {
					next = depot.VolumeFull
				}
			}
			if next != v.State {
				v.State = next
				if err := putJSON(tx.Bucket(bktVolumes), u32(uint32(v.ID)), v); err != nil {
					return err
				}
				vols = append(vols, v)
			}
		}
	}
	s.afterCommit(func(c *cache) {
		for _, rec := range changed {
			c.putDataserver(rec)
		}
		for _, v := range vols {
			c.putVolume(v)
		}
	})
	return nil
}

func volumesOf(tx *bbolt.Tx, node string) ([]depot.VolumeID, error) {
	prefix := append([]byte(node), 0)
	var ids []depot.VolumeID
	cur := tx.Bucket(bktNodeVols).Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		if len(k) == len(prefix)+4 {
			ids = append(ids, depot.VolumeID(binary.BigEndian.Uint32(k[len(prefix):])))
		}
	}
	return ids, nil
}

func anyMemberDown(tx *bbolt.Tx, v depot.Volume) bool {
	b := tx.Bucket(bktDataservers)
	for _, m := range v.Members {
		var rec dataserverRecord
		if raw := b.Get([]byte(m.Node)); raw != nil && json.Unmarshal(raw, &rec) == nil && rec.down() {
			return true
		}
	}
	return false
}

func getVolume(tx *bbolt.Tx, id depot.VolumeID) (volumeRecord, error) {
	raw := tx.Bucket(bktVolumes).Get(u32(uint32(id)))
	if raw == nil {
		return volumeRecord{}, fmt.Errorf("volume %d: %w", id, depot.ErrNotFound)
	}
	var v volumeRecord
	if err := json.Unmarshal(raw, &v); err != nil {
		return volumeRecord{}, fmt.Errorf("volume %d: decode: %w", id, err)
	}
	return v, nil
}

// errNotWritable is returned by assign when the chosen volume stopped being
// writable between the choice and the apply; the proposer chooses again.
var errNotWritable = errors.New("volume not writable")

func (s *store) applyAssign(tx *bbolt.Tx, cmd Command, c assignCmd) (any, error) {
	if c.Count < 1 {
		return nil, fmt.Errorf("%w: lease count %d", depot.ErrBadRequest, c.Count)
	}
	vb, nb := tx.Bucket(bktVolumes), tx.Bucket(bktNeedles)
	var v volumeRecord
	var first uint64 = 1
	if c.Create != nil {
		if err := checkNewVolume(*c.Create); err != nil {
			return nil, err
		}
		seq, err := vb.NextSequence()
		if err != nil {
			return nil, &storageError{err}
		}
		if seq > 1<<32-1 {
			return nil, fmt.Errorf("nameserver: volume ids exhausted")
		}
		v = volumeRecord{Volume: *c.Create, Created: cmd.Time}
		v.ID = depot.VolumeID(seq)
		v.State = depot.VolumeWritable
		v.Members = slices.Clone(v.Members)
		if err := putJSON(vb, u32(uint32(v.ID)), v); err != nil {
			return nil, err
		}
		ix := tx.Bucket(bktNodeVols)
		for _, m := range v.Members {
			if err := put(ix, nodeVolKey(m.Node, v.ID), nil); err != nil {
				return nil, err
			}
		}
	} else {
		var err error
		if v, err = getVolume(tx, c.Volume); err != nil {
			return nil, err
		}
		degradedOK := c.Degraded && v.State == depot.VolumeDegraded && !v.Full
		if v.State != depot.VolumeWritable && !degradedOK {
			return nil, fmt.Errorf("volume %d is %s: %w", v.ID, v.State, errNotWritable)
		}
		if raw := nb.Get(u32(uint32(v.ID))); len(raw) == 8 {
			first = binary.BigEndian.Uint64(raw)
		}
	}
	if first+uint64(c.Count) < first {
		return nil, fmt.Errorf("volume %d: needle ids exhausted: %w", v.ID, errNotWritable)
	}
	if err := put(nb, u32(uint32(v.ID)), u64(first+uint64(c.Count))); err != nil {
		return nil, err
	}
	if c.Create != nil {
		s.afterCommit(func(c *cache) { c.putVolume(v) })
	}
	return nsclient.Assignment{Volume: v.Volume, First: depot.NeedleID(first), Count: c.Count}, nil
}

func checkNewVolume(v depot.Volume) error {
	if err := checkScheme(v.K, v.M); err != nil {
		return err
	}
	if v.Unit <= 0 {
		return fmt.Errorf("%w: unit %d", depot.ErrBadRequest, v.Unit)
	}
	if len(v.Members) != v.K+v.M {
		return fmt.Errorf("%w: %d members for %d+%d", depot.ErrBadRequest, len(v.Members), v.K, v.M)
	}
	nodes := make(map[string]bool, len(v.Members))
	for i, m := range v.Members {
		if m.Index != i || m.Node == "" || nodes[m.Node] {
			return fmt.Errorf("%w: bad member %d: %+v", depot.ErrBadRequest, i, m)
		}
		nodes[m.Node] = true
	}
	return nil
}

// checkScheme validates an erasure scheme: reedsolomon takes at most 256
// shards in all.
func checkScheme(k, m int) error {
	if k < 1 || m < 0 || k+m > 256 {
		return fmt.Errorf("%w: scheme k=%d m=%d (want k ≥ 1, m ≥ 0, k+m ≤ 256)", depot.ErrBadRequest, k, m)
	}
	return nil
}

func (s *store) applySetVolumeState(tx *bbolt.Tx, c setVolumeStateCmd) error {
	v, err := getVolume(tx, c.Volume)
	if err != nil {
		return err
	}
	switch c.State {
	case depot.VolumeFull:
		v.Full = true
		if v.State == depot.VolumeWritable {
			v.State = depot.VolumeFull
		}
	case depot.VolumeWritable:
		v.Full = false
		if v.State == depot.VolumeFull || v.State == depot.VolumeRepairing {
			v.State = depot.VolumeWritable
		}
		if anyMemberDown(tx, v.Volume) {
			v.State = depot.VolumeDegraded
		}
	case depot.VolumeDegraded, depot.VolumeRepairing:
		v.State = c.State
	default:
		return fmt.Errorf("%w: volume state %q", depot.ErrBadRequest, c.State)
	}
	if err := putJSON(tx.Bucket(bktVolumes), u32(uint32(v.ID)), v); err != nil {
		return err
	}
	s.afterCommit(func(c *cache) { c.putVolume(v) })
	return nil
}

func (s *store) applyMissed(tx *bbolt.Tx, cmd Command, c nsclient.MissedWrite) error {
	fid, err := depot.ParseFid(c.Fid)
	if err != nil {
		return err
	}
	v, err := getVolume(tx, fid.Volume)
	if err != nil {
		return err
	}
	if len(c.Shards) == 0 {
		return fmt.Errorf("%w: no shards", depot.ErrBadRequest)
	}
	for _, i := range c.Shards {
		if i < 0 || i >= v.K+v.M {
			return fmt.Errorf("%w: shard %d of a %d+%d volume", depot.ErrBadRequest, i, v.K, v.M)
		}
	}
	b := tx.Bucket(bktMissed)
	key := []byte(fid.String())
	rec := nsclient.MissedWrite{Fid: fid.String(), Time: cmd.Time}
	if raw := b.Get(key); raw != nil {
		var old nsclient.MissedWrite
		if json.Unmarshal(raw, &old) == nil {
			rec.Shards = old.Shards
		}
	}
	rec.Shards = append(rec.Shards, c.Shards...)
	slices.Sort(rec.Shards)
	rec.Shards = slices.Compact(rec.Shards)
	return putJSON(b, key, rec)
}

func (s *store) applyCreateBucket(tx *bbolt.Tx, cmd Command, c bucketCmd) (any, error) {
	if err := checkBucketName(c.Name); err != nil {
		return nil, err
	}
	b := tx.Bucket(bktBuckets)
	if b.Get([]byte(c.Name)) != nil {
		return nil, fmt.Errorf("bucket %q: %w", c.Name, depot.ErrExists)
	}
	bk := nsclient.Bucket{Name: c.Name, Created: cmd.Time}
	if err := putJSON(b, []byte(c.Name), bk); err != nil {
		return nil, err
	}
	if _, err := tx.Bucket(bktObjects).CreateBucketIfNotExists([]byte(c.Name)); err != nil {
		return nil, &storageError{err}
	}
	return bk, nil
}

func (s *store) applyDeleteBucket(tx *bbolt.Tx, c bucketCmd) error {
	b := tx.Bucket(bktBuckets)
	if b.Get([]byte(c.Name)) == nil {
		return fmt.Errorf("bucket %q: %w", c.Name, depot.ErrNotFound)
	}
	// As S3 answers BucketNotEmpty for a bucket with multipart uploads in
	// progress: their parts hold data that only an explicit abort may
	// discard, and a completion must find its bucket.
	if hasUploads(tx, c.Name) {
		return fmt.Errorf("bucket %q: multipart uploads in progress: %w", c.Name, depot.ErrNotEmpty)
	}
	if vb, err := versionsOf(tx, c.Name, false); err != nil {
		return err
	} else if vb != nil {
		if k, _ := vb.Cursor().First(); k != nil {
			return fmt.Errorf("bucket %q: versions remain: %w", c.Name, depot.ErrNotEmpty)
		}
		if err := tx.Bucket(bktVersions).DeleteBucket([]byte(c.Name)); err != nil {
			return &storageError{err}
		}
	}
	ob := tx.Bucket(bktObjects)
	if nb := ob.Bucket([]byte(c.Name)); nb != nil {
		if k, _ := nb.Cursor().First(); k != nil {
			return fmt.Errorf("bucket %q: %w", c.Name, depot.ErrNotEmpty)
		}
		if err := ob.DeleteBucket([]byte(c.Name)); err != nil {
			return &storageError{err}
		}
	}
	return del(b, []byte(c.Name))
}

// objectsOf returns the objects bucket of the namespace bucket name.
func objectsOf(tx *bbolt.Tx, name string) (*bbolt.Bucket, error) {
	if tx.Bucket(bktBuckets).Get([]byte(name)) == nil {
		return nil, fmt.Errorf("bucket %q: %w", name, depot.ErrNotFound)
	}
	b := tx.Bucket(bktObjects).Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("bucket %q: objects missing: %w", name, depot.ErrCorrupt)
	}
	return b, nil
}

func (s *store) applyPutObject(tx *bbolt.Tx, cmd Command, o depot.Object) (any, error) {
	if err := checkObject(o); err != nil {
		return nil, err
	}
	b, err := objectsOf(tx, o.Bucket)
	if err != nil {
		return nil, err
	}
	if o.Modified.IsZero() {
		o.Modified = cmd.Time
	}
	var old *depot.Object
	if raw := b.Get([]byte(o.Key)); raw != nil {
		old = new(depot.Object)
		if err := json.Unmarshal(raw, old); err != nil {
			return nil, fmt.Errorf("object %s/%s: decode: %w", o.Bucket, o.Key, depot.ErrCorrupt)
		}
	}
	// A delete marker is no object to a condition.
	if err := checkPrecondition(o, liveObject(old)); err != nil {
		return nil, err
	}
	if err := checkNotSwept(tx, o.Segments); err != nil {
		return nil, err
	}
	bk, err := bucketRecord(tx, o.Bucket)
	if err != nil {
		return nil, err
	}
	state := bk.Versioning
	sameVersion := isSameVersion(&o, old)
	if !sameVersion && state != "" {
		// Segments an object version already references: this is a
		// replay of the write that made that version (fids are never
		// reused), come after its request record expired. It changes
		// nothing; applying it would make two versions share segments,
		// and deleting either would then delete the other's bytes. (In a
		// bucket that never had versioning the old object is replaced,
		// and only the segments the new one does not reuse go.)
		if held, err := heldByObject(tx, o.Segments); err != nil {
			return nil, err
		} else if held {
			vid, err := versionHolding(tx, o.Bucket, o.Key, o.Segments)
			if err != nil {
				return nil, err
			}
			return nsclient.PutResult{Replaced: []depot.Segment{}, VersionID: s3Version(state, vid)}, nil
		}
	}
	if sameVersion {
		o.Lock = old.Lock // an update of the version keeps its lock
	} else if err := lockForPut(bk, &o, cmd.Time); err != nil {
		return nil, err
	}
	// What becomes of the old version (versions.go): the segments it
	// releases are queued for deletion; a version kept keeps its own.
	replaced, err := applyVersionedPut(tx, cmd, state, &o, old, sameVersion)
	if err != nil {
		return nil, err
	}
	o.Precondition = nil // a condition of this write, not part of the object
	o.DeleteMarker = false
	if err := putJSON(b, []byte(o.Key), o); err != nil {
		return nil, err
	}
	if err := addRefs(tx, o.Segments, objectOwner(o.Bucket, o.Key)); err != nil {
		return nil, err
	}
	if err := enqueueDeletes(tx, cmd, replaced); err != nil {
		return nil, err
	}
	var dObjects, dBytes int64 = 1, o.Size
	if live := liveObject(old); live != nil {
		dObjects, dBytes = 0, o.Size-live.Size
	}
	if err := addCounters(tx, dObjects, dBytes); err != nil {
		return nil, err
	}
	return nsclient.PutResult{Replaced: nonNil(replaced), VersionID: s3Version(state, o.VersionID)}, nil
}

func (s *store) applyDeleteObject(tx *bbolt.Tx, cmd Command, c objectKeyCmd) (any, error) {
	b, err := objectsOf(tx, c.Bucket)
	if err != nil {
		return nil, err
	}
	cur, err := currentObject(b, c.Bucket, c.Key)
	if err != nil {
		return nil, err
	}
	if c.Version != nil && *c.Version == "" {
		return nil, fmt.Errorf("%w: an empty version id", depot.ErrBadRequest)
	}
	if w := c.IfCurrent; w != nil && (cur == nil || cur.VersionID != w.VersionID || !cur.Modified.Equal(w.Modified)) {
		return nil, fmt.Errorf("%w: object %s/%s changed since it was chosen for expiry", depot.ErrPrecondition, c.Bucket, c.Key)
	}
	state, err := versioningOf(tx, c.Bucket)
	if err != nil {
		return nil, err
	}
	if state != "" {
		return s.applyDeleteVersioned(tx, cmd, c, state, b, cur)
	}
	if err := checkUnlocked(cur, cmd.Time, c.Bypass); err != nil {
		return nil, err
	}
	if cur == nil || c.Version != nil && *c.Version != nullVersion {
		return nil, fmt.Errorf("object %s/%s: %w", c.Bucket, c.Key, depot.ErrNotFound)
	}
	old := *cur
	if err := del(b, []byte(c.Key)); err != nil {
		return nil, err
	}
	if err := enqueueDeletes(tx, cmd, old.Segments); err != nil {
		return nil, err
	}
	if err := addCounters(tx, -1, -old.Size); err != nil {
		return nil, err
	}
	deleted := old.Segments
	if deleted == nil {
		deleted = []depot.Segment{}
	}
	return nsclient.DeleteResult{Deleted: deleted}, nil
}

// unusedSegments returns the segments of old that next does not use: what
// a replacement releases. A replacement that reuses segments (a replayed
// put, a part uploaded again with the same segments) releases none of them.
func unusedSegments(old, next []depot.Segment) []depot.Segment {
	keep := make(map[string]bool, len(next))
	for _, sg := range next {
		keep[string(refKey(sg.Fid))] = true
	}
	var out []depot.Segment
	for _, sg := range old {
		if !keep[string(refKey(sg.Fid))] {
			out = append(out, sg)
		}
	}
	return out
}

// enqueueDeletes queues segs for deletion; they are no longer referenced.
// Each is indexed in queued, so that no commit references it again while
// it waits (checkNotSwept), and the delete loop checks the refs index
// again before it deletes anything (processDeletes): a segment that is
// referenced is never deleted.
func enqueueDeletes(tx *bbolt.Tx, cmd Command, segs []depot.Segment) error {
	if err := dropRefs(tx, segs); err != nil {
		return err
	}
	if len(segs) == 0 {
		return nil
	}
	b := tx.Bucket(bktDeletes)
	queued, err := tx.CreateBucketIfNotExists(bktQueued)
	if err != nil {
		return &storageError{err}
	}
	for _, sg := range segs {
		seq, err := b.NextSequence()
		if err != nil {
			return &storageError{err}
		}
		if err := putJSON(b, u64(seq), nsclient.PendingDelete{Seq: seq, Fid: sg.Fid, Size: sg.Size, Queued: cmd.Time}); err != nil {
			return err
		}
		if err := put(queued, refKey(sg.Fid), u64(seq)); err != nil {
			return err
		}
	}
	return nil
}

func addCounters(tx *bbolt.Tx, objects, size int64) error {
	b := tx.Bucket(bktMeta)
	if err := put(b, keyObjects, u64(uint64(int64(getU64(b, keyObjects))+objects))); err != nil {
		return err
	}
	return put(b, keyBytes, u64(uint64(int64(getU64(b, keyBytes))+size)))
}
