package testcluster_test

import (
	"bytes"
	"context"
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
	"depot/internal/testcluster"
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
