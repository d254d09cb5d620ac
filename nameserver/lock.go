package nameserver

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"depot"
	"depot/nameserver/nsclient"
)

// S3 Object Lock (see doc.go, "Object Lock"). A version's lock is part of
// its record (depot.Object.Lock) and is decided in apply, in the same
// transaction as the change it forbids: deleting a version (delete_object
// with a version) and releasing the null version (put_object in a
// suspended bucket) are refused with depot.ErrLocked while the version is
// protected. A delete without a version only adds a delete marker, and a
// put a new version: both leave locked versions as they are.

// CmdSetLock changes the Object Lock of one version; its payload is
// setLockCmd.
const CmdSetLock CommandType = "set_lock"

type setLockCmd struct {
	Bucket  string `json:"bucket"`
	Key     string `json:"key"`
	Version string `json:"version"` // S3's names; "" the current version
	nsclient.LockRequest
}

// bucketRecord reads the record of the namespace bucket name.
func bucketRecord(tx *bbolt.Tx, name string) (nsclient.Bucket, error) {
	var bk nsclient.Bucket
	raw := tx.Bucket(bktBuckets).Get([]byte(name))
	if raw == nil {
		return bk, fmt.Errorf("bucket %q: %w", name, depot.ErrNotFound)
	}
	if err := json.Unmarshal(raw, &bk); err != nil {
		return bk, fmt.Errorf("bucket %q: %w", name, depot.ErrCorrupt)
	}
	return bk, nil
}

// checkLockRecord validates a lock as a write gives it.
func checkLockRecord(l *depot.ObjectLock) error {
	if l == nil {
		return nil
	}
	switch {
	case l.Mode == "" && !l.RetainUntil.IsZero(), l.Mode != "" && l.RetainUntil.IsZero():
		return fmt.Errorf("%w: object lock needs both a mode and a retain-until date", depot.ErrBadRequest)
	case l.Mode != "" && l.Mode != depot.LockGovernance && l.Mode != depot.LockCompliance:
		return fmt.Errorf("%w: object lock mode %q", depot.ErrBadRequest, l.Mode)
	}
	return nil
}

// lockForPut decides the lock of a new version o of a bucket bk at now:
// what the write asked for, else the bucket's default retention. A lock in
// a bucket without Object Lock is refused.
func lockForPut(bk nsclient.Bucket, o *depot.Object, now time.Time) error {
	if err := checkLockRecord(o.Lock); err != nil {
		return err
	}
	if !bk.ObjectLock {
		if o.Lock != nil && (o.Lock.Mode != "" || o.Lock.LegalHold) {
			return fmt.Errorf("%w: bucket %q has no object lock configuration", depot.ErrBadRequest, bk.Name)
		}
		o.Lock = nil
		return nil
	}
	if d := bk.DefaultRetention; d != nil && d.Mode != "" && (o.Lock == nil || o.Lock.Mode == "") {
		if o.Lock == nil {
			o.Lock = &depot.ObjectLock{}
		}
		o.Lock.Mode = d.Mode
		o.Lock.RetainUntil = now.AddDate(d.Years, 0, d.Days)
	}
	if o.Lock != nil && *o.Lock == (depot.ObjectLock{}) {
		o.Lock = nil
	}
	return nil
}

// checkUnlocked refuses to delete or replace o at now unless its lock
// allows it (bypass lifts GOVERNANCE retention).
func checkUnlocked(o *depot.Object, now time.Time, bypass bool) error {
	if o != nil && o.Lock.Protects(now, bypass) {
		return fmt.Errorf("object %s/%s version %q: %w", o.Bucket, o.Key, o.VersionID, depot.ErrLocked)
	}
	return nil
}

// applySetLock changes one version's lock under S3's rules: a COMPLIANCE
// retention in force can only be extended (same mode, a later date); a
// GOVERNANCE one can be tightened by anyone allowed to set retention, and
// shortened, removed or weakened only with Bypass. A legal hold is set and
// cleared freely (by whoever may).
func (s *store) applySetLock(tx *bbolt.Tx, cmd Command, c setLockCmd) error {
	bk, err := bucketRecord(tx, c.Bucket)
	if err != nil {
		return err
	}
	if !bk.ObjectLock {
		return fmt.Errorf("%w: bucket %q has no object lock configuration", depot.ErrBadRequest, c.Bucket)
	}
	if err := checkLockRecord(c.Retention); err != nil {
		return err
	}
	b, err := objectsOf(tx, c.Bucket)
	if err != nil {
		return err
	}
	vb, err := versionsOf(tx, c.Bucket, false)
	if err != nil {
		return err
	}
	// Find the version and where its record lives.
	var o depot.Object
	var store *bbolt.Bucket
	var at []byte
	cur, err := currentObject(b, c.Bucket, c.Key)
	if err != nil {
		return err
	}
	if cur != nil && (c.Version == "" || cur.VersionID == fromS3Version(c.Version)) {
		o, store, at = *cur, b, []byte(c.Key)
	} else if c.Version != "" {
		err := keyVersions(vb, c.Key, func(k []byte, v depot.Object) (bool, error) {
			if v.VersionID == fromS3Version(c.Version) {
				o, store, at = v, vb, k
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	if store == nil {
		return fmt.Errorf("object %s/%s version %q: %w", c.Bucket, c.Key, c.Version, depot.ErrNotFound)
	}
	if o.DeleteMarker {
		return fmt.Errorf("%w: a delete marker has no object lock", depot.ErrBadRequest)
	}
	next := depot.ObjectLock{}
	if o.Lock != nil {
		next = *o.Lock
	}
	if r := c.Retention; r != nil {
		if err := retentionChange(o.Lock, r, cmd.Time, c.Bypass); err != nil {
			return fmt.Errorf("object %s/%s: %w", c.Bucket, c.Key, err)
		}
		next.Mode, next.RetainUntil = r.Mode, r.RetainUntil
	}
	if c.LegalHold != nil {
		next.LegalHold = *c.LegalHold
	}
	o.Lock = &next
	if next == (depot.ObjectLock{}) {
		o.Lock = nil
	}
	return putJSON(store, at, o)
}

// retentionChange decides whether a version's retention may go from old
// to r at now.
func retentionChange(old, r *depot.ObjectLock, now time.Time, bypass bool) error {
	if old == nil || old.Mode == "" || !now.Before(old.RetainUntil) {
		return nil // no retention in force
	}
	tighter := r.Mode != "" && !r.RetainUntil.Before(old.RetainUntil)
	switch old.Mode {
	case depot.LockCompliance:
		if tighter && r.Mode == depot.LockCompliance {
			return nil
		}
		return fmt.Errorf("COMPLIANCE retention until %s can only be extended: %w", old.RetainUntil.Format(time.RFC3339), depot.ErrLocked)
	default:
		if tighter || bypass {
			return nil
		}
		return fmt.Errorf("GOVERNANCE retention until %s can be shortened or removed only with the bypass: %w", old.RetainUntil.Format(time.RFC3339), depot.ErrLocked)
	}
}

// SetLock changes the Object Lock of one version of bucket/key (version
// "" is the current one, "null" the null version).
func (s *Server) SetLock(ctx context.Context, bucket, key, version string, r nsclient.LockRequest) error {
	_, err := s.store.propose(ctx, CmdSetLock, setLockCmd{Bucket: bucket, Key: key, Version: version, LockRequest: r})
	return err
}
