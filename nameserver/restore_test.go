package nameserver

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"depot"
	"depot/nameserver/nsclient"
)

// A restored backup's counters are old: the needle ids and volume ids
// leased since it was taken must not be leased again, even by a
// nameserver whose own database was lost (here no dataserver answers, so
// the margins alone must cover it).
func TestRestore_LiftsCounters(t *testing.T) {
	c := MustCluster(t, []string{"", "", "", "", "", ""}, nil)
	ctx := ctxT(t)
	leased := make(map[depot.VolumeID]depot.NeedleID) // volume → end of the leases taken
	var top depot.VolumeID
	assign := func(n int, check bool) {
		t.Helper()
		for range n {
			a, err := c.client.Assign(ctx, 4, 2, 100)
			if err != nil {
				t.Fatal(err)
			}
			id := a.Volume.ID
			if end, ok := leased[id]; check && ok && a.First < end {
				t.Fatalf("volume %d: needle ids from %d leased again (leased up to %d before the restore)", id, a.First, end-1)
			}
			if _, ok := leased[id]; check && !ok && id <= top {
				t.Fatalf("volume id %d handed out again (volumes up to %d existed before the restore)", id, top)
			}
			leased[id] = max(leased[id], a.First+depot.NeedleID(a.Count))
			top = max(top, id)
		}
	}
	fillAll := func() {
		t.Helper()
		vols, err := c.client.Volumes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vols {
			if err := c.client.SetVolumeState(ctx, v.ID, depot.VolumeFull); err != nil {
				t.Fatal(err)
			}
		}
	}
	assign(4, false)
	var backup bytes.Buffer
	if _, err := c.srv.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	assign(4, false)
	fillAll()
	assign(2, false) // volumes the backup does not know
	before := len(leased)

	// The nameserver loses its database and is restored from the backup.
	if err := c.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(c.dir, DBFile)); err != nil {
		t.Fatal(err)
	}
	c.Start(nil)
	if _, err := c.srv.Restore(ctx, bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatal(err)
	}
	assign(6, true) // from the backup's writable volumes
	fillAll()
	assign(2, true) // new volumes
	if len(leased) == before {
		t.Fatal("no volume created after the restore")
	}
}

// A snapshot installed on a member (fsm.Restore) carries the buckets'
// sequences: the volumes bucket's allocates volume ids, so a member that
// installed a snapshot and then leads must not create volume 1 again.
func TestStore_RestoreKeepsSequences(t *testing.T) {
	newVolume := func() assignCmd {
		v := depot.Volume{K: 1, M: 1, Unit: 64 << 10, Members: []depot.Member{{Index: 0, Node: "a"}, {Index: 1, Node: "b"}}}
		return assignCmd{Create: &v, Count: 1}
	}
	src := unstartedStore(t)
	first := mustCommit(t, src, CmdAssign, newVolume()).(nsclient.Assignment)
	mustCommit(t, src, CmdCreateBucket, bucketCmd{Name: "seq"})
	mustCommit(t, src, CmdPutObject, object("seq", "k", 1, 5))
	mustCommit(t, src, CmdDeleteObject, objectKeyCmd{Bucket: "seq", Key: "k"})
	var snap bytes.Buffer
	if err := src.db.View(func(tx *bbolt.Tx) error { _, err := tx.WriteTo(&snap); return err }); err != nil {
		t.Fatal(err)
	}
	dst := unstartedStore(t)
	if err := dst.restoreFrom(&snap, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if a, b := dbState(t, src), dbState(t, dst); a != b {
		t.Fatalf("restored state differs:\n%s\n%s", a, b)
	}
	next := mustCommit(t, dst, CmdAssign, newVolume()).(nsclient.Assignment)
	if next.Volume.ID == first.Volume.ID {
		t.Fatalf("volume id %d handed out again after a snapshot install", next.Volume.ID)
	}
	err := dst.db.View(func(tx *bbolt.Tx) error {
		if got := tx.Bucket(bktDeletes).Sequence(); got != 1 {
			return fmt.Errorf("delete queue sequence %d after restore, want 1", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A backup records its time in its header; the restore answers its age
// against the delete grace, counts itself in meta (which RepairTasks
// reports to the orphan sweep), and still takes a bare bbolt file (a
// backup from before the header), with a warning.
func TestRestore_Answer(t *testing.T) {
	c := MustCluster(t, []string{"", "", "", "", "", ""}, func(cfg *Config) { cfg.DeleteGrace = time.Hour })
	ctx := ctxT(t)
	if _, err := c.client.CreateBucket(ctx, "backed"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var backup bytes.Buffer
	if _, err := c.srv.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	// Queued deletes after the backup: their sequence numbers are not
	// handed out again after the restore.
	for i, k := range []string{"a", "b"} {
		if _, err := c.client.PutObject(ctx, object("backed", k, uint64(100+i), 5)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.client.DeleteObject(ctx, "backed", k); err != nil {
			t.Fatal(err)
		}
	}
	deleteSeq := func() (seq uint64) {
		c.srv.store.db.View(func(tx *bbolt.Tx) error { seq = tx.Bucket(bktDeletes).Sequence(); return nil })
		return seq
	}
	queued := deleteSeq()
	if !bytes.HasPrefix(backup.Bytes(), backupMagic[:]) {
		t.Fatalf("backup starts %q, want the magic", backup.Bytes()[:8])
	}
	path := filepath.Join(t.TempDir(), "ns.backup")
	if err := os.WriteFile(path, backup.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := c.client.Restore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if res.BackupTime.Before(t0.Add(-time.Millisecond)) || res.BackupTime.After(t1) || !res.Whole || res.Warning != "" ||
		res.DeleteGrace != time.Hour || res.Age <= 0 || res.Age > time.Since(t0) || res.Restored != 1 {
		t.Fatalf("restore answered %+v (backup taken between %v and %v)", res, t0, t1)
	}
	if _, err := c.client.Bucket(ctx, "backed"); err != nil {
		t.Fatalf("bucket of the backup after the restore: %v", err)
	}
	if got := deleteSeq(); queued == 0 || got < queued {
		t.Fatalf("delete queue sequence %d after the restore, below the %d handed out before it", got, queued)
	}

	// A bare bbolt file: no time, a warning, not whole.
	if err := os.WriteFile(path, backup.Bytes()[backupHeaderSize:], 0o600); err != nil {
		t.Fatal(err)
	}
	res, err = c.client.Restore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if !res.BackupTime.IsZero() || res.Whole || res.Warning == "" || res.Restored != 2 {
		t.Fatalf("restore of a bare database answered %+v", res)
	}
	tasks, err := c.srv.RepairTasks(ctx, "nobody", 10)
	if err != nil {
		t.Fatal(err)
	}
	if tasks.Restored != 2 {
		t.Fatalf("repair tasks report %d restores, want 2", tasks.Restored)
	}

	// Older than the delete grace: a warning.
	old := restoreResult(time.Now().Add(-2*time.Hour), time.Now(), time.Hour, 3)
	if old.Whole || !strings.Contains(old.Warning, "older than the delete grace") {
		t.Fatalf("a backup 2h old against a 1h grace: %+v", old)
	}
}

// TestRestore_WarnsOfLockedVersions: a restore of a backup taken before a
// version under Object Lock was written says so, with their count.
func TestRestore_WarnsOfLockedVersions(t *testing.T) {
	c := mustNamespace(t)
	ctx := ctxT(t)
	cl := c.client
	if _, err := cl.CreateBucket(ctx, "vault"); err != nil {
		t.Fatal(err)
	}
	on := true
	if _, err := cl.SetBucket(ctx, "vault", nsclient.BucketSettings{ObjectLock: &on}); err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if _, err := c.srv.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	o := object("vault", "contract", 1, 10)
	o.Lock = &depot.ObjectLock{Mode: depot.LockCompliance, RetainUntil: time.Now().Add(time.Hour)}
	if _, err := cl.PutObject(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutObject(ctx, object("vault", "plain", 2, 10)); err != nil {
		t.Fatal(err)
	}
	res, err := c.srv.Restore(ctx, bytes.NewReader(backup.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if res.LockedRewound != 1 || !strings.Contains(res.Warning, "Object Lock") {
		t.Fatalf("restore answer: %+v", res)
	}
}
