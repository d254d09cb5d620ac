package testcluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"depot"
	"depot/client"
	"depot/internal/node"
	"depot/internal/testcluster"
	"depot/nameserver/nsclient"
	"depot/repair"
)

// TestRestore_NoIDTwice backs the nameserver up, writes more (native blobs
// in the backup's volumes and in volumes created after it, S3 objects),
// wipes the nameserver and restores the backup, writes again, and does it
// all once more with the same backup. Every blob and every object the
// restored namespace holds reads back byte for byte, and no needle (volume
// id, needle id) is ever written twice: before the fix, the restored
// counters leased the ids of the blobs written after the backup again and
// the dataservers overwrote them.
func TestRestore_NoIDTwice(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 13))
	c := testcluster.New(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mc := haMinio(t, c)
	ns := c.NSClient()
	if err := mc.MakeBucket(ctx, "restored", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}

	type needle struct {
		vol    depot.VolumeID
		needle depot.NeedleID
	}
	written := make(map[needle]string) // every needle written, and by what
	record := func(what string, fids ...string) {
		t.Helper()
		for _, f := range fids {
			fid, err := depot.ParseFid(f)
			if err != nil {
				t.Fatal(err)
			}
			k := needle{fid.Volume, fid.Needle}
			if prev, ok := written[k]; ok {
				t.Fatalf("needle %d,%d written twice: by %s and by %s", k.vol, k.needle, prev, what)
			}
			written[k] = what
		}
	}
	newClient := func() *client.Client {
		t.Helper()
		cl, err := client.New(client.Config{Nameserver: ns, Key: c.Key, TLS: c.TLS,
			SegmentSize: testcluster.DefaultSegmentSize, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	size := func() int64 {
		if rng.IntN(4) == 0 {
			return 1<<20 + rng.Int64N(1<<20) // two segments and a manifest
		}
		return 1 + rng.Int64N(200<<10)
	}

	type blob struct {
		name string
		fid  depot.Fid
		body []byte
	}
	var blobs []blob // readable after the next restore
	n := 0
	putBlobs := func(cl *client.Client, phase string, count int, keep bool) {
		t.Helper()
		for range count {
			n++
			body := content(5000+n, size())
			fid, st, err := cl.PutBlob(ctx, bytes.NewReader(body), int64(len(body)), client.PutOptions{})
			if err != nil {
				t.Fatalf("%s: put blob: %v", phase, err)
			}
			name := fmt.Sprintf("%s blob %d (%s)", phase, n, fid)
			fids := []string{fid.String()}
			if len(st.Segments) > 1 {
				for _, sg := range st.Segments {
					fids = append(fids, sg.Fid)
				}
			}
			record(name, fids...)
			if keep {
				blobs = append(blobs, blob{name, fid, body})
			}
		}
	}
	objects := make(map[string][]byte)
	putObjects := func(phase string, count int) map[string][]byte {
		t.Helper()
		out := make(map[string][]byte)
		for range count {
			n++
			key := fmt.Sprintf("%s-%d", phase, n)
			body := content(5000+n, size())
			if _, err := mc.PutObject(ctx, "restored", key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
				t.Fatalf("%s: put %s: %v", phase, key, err)
			}
			o, err := ns.GetObject(ctx, "restored", key)
			if err != nil {
				t.Fatal(err)
			}
			var fids []string
			for _, sg := range o.Segments {
				fids = append(fids, sg.Fid)
			}
			record("object "+key, fids...)
			out[key] = body
		}
		return out
	}
	fillAll := func() {
		t.Helper()
		vols, err := ns.Volumes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vols {
			if err := c.AdminClient().SetVolumeState(ctx, v.ID, depot.VolumeFull); err != nil {
				t.Fatal(err)
			}
		}
	}
	verify := func(when string) {
		t.Helper()
		cl := newClient()
		for _, b := range blobs {
			info, err := cl.StatBlob(ctx, b.fid)
			if err != nil {
				t.Fatalf("%s: %s: %v", when, b.name, err)
			}
			rc, err := cl.GetBlob(ctx, info, 0, -1)
			if err != nil {
				t.Fatalf("%s: %s: %v", when, b.name, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, b.body) {
				t.Fatalf("%s: %s: read %d bytes (err %v), want the %d written", when, b.name, len(got), err, len(b.body))
			}
		}
		for key, body := range objects {
			obj, err := mc.GetObject(ctx, "restored", key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatalf("%s: object %s: %v", when, key, err)
			}
			got, err := io.ReadAll(obj)
			obj.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("%s: object %s: read %d bytes (err %v), want the %d written", when, key, len(got), err, len(body))
			}
		}
	}
	var backup bytes.Buffer
	restore := func() {
		t.Helper()
		if err := c.WipeNameservers(ctx); err != nil {
			t.Fatal(err)
		}
		file := t.TempDir() + "/ns.backup"
		if err := os.WriteFile(file, backup.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ns.Restore(ctx, file); err != nil {
			t.Fatal(err)
		}
	}

	putBlobs(newClient(), "before", 4, true)
	for k, v := range putObjects("before", 4) {
		objects[k] = v
	}
	if _, err := ns.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	putBlobs(newClient(), "between", 4, true) // in the backup's volumes
	putObjects("between", 3)                  // gone from the namespace with the restore
	fillAll()
	putBlobs(newClient(), "between-new-volumes", 3, false) // volumes the backup does not know
	verify("before the restore")

	restore()
	putBlobs(newClient(), "after", 6, true)
	after := putObjects("after", 4)
	for k, v := range after {
		objects[k] = v
	}
	fillAll()
	putBlobs(newClient(), "after-new-volumes", 3, false)
	verify("after the restore")

	// The same backup again: its counters are the same, the ids handed
	// out since are not.
	for k := range after {
		delete(objects, k)
	}
	restore()
	putBlobs(newClient(), "after-second", 6, true)
	fillAll()
	putBlobs(newClient(), "after-second-new-volumes", 3, false)
	verify("after the second restore")
	t.Logf("%d needles written, none twice", len(written))
}

// TestRestore_KeepsPlacementOfNow backs the nameserver up, drains a
// dataserver (its slots move to others, and it drops its copies), writes
// objects, then stops the drained dataserver and restores the backup into
// the running nameserver. The restore rewinds the namespace but not the
// placement: no volume names the drained dataserver again, fsck finds
// nothing, and every object of the backup reads back. The objects written
// after the backup are gone from the namespace, and their segments, which
// the orphan sweep had decided were committed, are reclaimed: the sweep
// forgets its decisions when the nameserver's restore count changes.
func TestRestore_KeepsPlacementOfNow(t *testing.T) {
	const grace = 2 * time.Second
	c := testcluster.New(t, testcluster.Options{Dataservers: 8, MinWritable: 6, Repair: repair.Config{OrphanGrace: grace}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	mc := haMinio(t, c)
	ns := c.NSClient()
	if err := mc.MakeBucket(ctx, "placed", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	put := func(key string, i int) []byte {
		t.Helper()
		body := content(i, int64(50<<10+i*40<<10))
		if _, err := mc.PutObject(ctx, "placed", key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		return body
	}
	before := make(map[string][]byte)
	for i := range 24 {
		key := fmt.Sprintf("before-%d", i)
		before[key] = put(key, i)
	}
	var backup bytes.Buffer
	if _, err := ns.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}

	victim := 2
	id := node.DataserverID(victim)
	if err := ns.Drain(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	waitRebalanced(t, ns, 90*time.Second, func(st nsclient.RebalanceStatus) bool { return st.Done && st.Drained(id) })
	waitUntil(t, 60*time.Second, "the drained dataserver to drop its files", func() bool {
		return len(c.Dataserver(victim).Server.Store().Status().Files) == 0
	})
	var after []depot.Segment
	for i := range 8 {
		key := fmt.Sprintf("after-%d", i)
		put(key, 100+i)
		obj, err := ns.GetObject(ctx, "placed", key)
		if err != nil {
			t.Fatal(err)
		}
		after = append(after, obj.Segments...)
	}
	// Let the orphan sweep look at the later segments (committed: decided)
	// a few times before the restore.
	time.Sleep(3 * grace) // the sweep's grace must pass; nothing to poll for
	if err := c.StopDataserver(victim); err != nil {
		t.Fatal(err)
	}
	c.WaitDead(victim)

	file := t.TempDir() + "/ns.backup"
	if err := os.WriteFile(file, backup.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := ns.Restore(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restored: %+v", res)
	if res.BackupTime.IsZero() || res.Age <= 0 || res.Restored != 1 {
		t.Errorf("restore answer %+v: want the backup's time, its age and restore 1", res)
	}
	if res.Whole != (res.Age < res.DeleteGrace) || res.Whole != (res.Warning == "") {
		t.Errorf("restore answer %+v: whole, age, grace and warning disagree", res)
	}

	vols, err := ns.Volumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		for _, m := range v.Members {
			if m.Node == id {
				t.Errorf("volume %d names the drained %s again as member %d after the restore", v.ID, id, m.Index)
			}
		}
	}
	c.MustFsck(t)
	for key, body := range before {
		obj, err := mc.GetObject(ctx, "placed", key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatalf("object %s: %v", key, err)
		}
		got, err := io.ReadAll(obj)
		obj.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("object %s: read %d bytes (err %v), want the %d written", key, len(got), err, len(body))
		}
	}
	if _, err := ns.GetObject(ctx, "placed", "after-0"); !errors.Is(err, depot.ErrNotFound) {
		t.Errorf("an object written after the backup: %v after the restore, want not found", err)
	}
	waitUntil(t, 60*time.Second, "the segments written after the backup to be swept", func() bool {
		ok, err := segmentsGone(ctx, c, ns, after)
		if err != nil {
			t.Logf("segments gone: %v", err)
		}
		return ok
	})
}
