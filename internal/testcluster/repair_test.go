package testcluster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"depot"
	"depot/internal/node"
	"depot/internal/testcluster"
	"depot/repair"
)

// dsMetric sums the values of a metric family in dataserver i's registry.
func dsMetric(t *testing.T, c *testcluster.Cluster, i int, name string) float64 {
	t.Helper()
	return dsSum(t, c, i, name, "", "")
}

// dsOpRequests sums dataserver i's depot_dataserver_requests_total of
// operation op, every status.
func dsOpRequests(t *testing.T, c *testcluster.Cluster, i int, op string) float64 {
	t.Helper()
	return dsSum(t, c, i, "depot_dataserver_requests_total", "op", op)
}

// dsSum sums the counters and gauges of metric family name in dataserver
// i's registry, only the series whose label is value when label is set.
func dsSum(t *testing.T, c *testcluster.Cluster, i int, name, label, value string) float64 {
	t.Helper()
	d := c.Dataserver(i)
	if d == nil {
		return 0
	}
	mfs, err := d.Server.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
				return l.GetName() == label && l.GetValue() == value
			}) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func kill(t *testing.T, c *testcluster.Cluster, i int) {
	t.Helper()
	if err := c.KillDataserver(i); err != nil {
		t.Fatal(err)
	}
	c.WaitDead(i)
}

// A dataserver lost for good: every volume it held gets a replacement
// member, rebuilt from the others; then any two more dataservers can go
// and every object still reads back byte for byte.
func TestRepair_DataserverLost(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 7})
	cl := c.Client()
	n := 1000
	if testing.Short() {
		n = 300
	}
	objs := putAll(t, cl, 0, logUniformSizes(n, 256<<10, int64(c.Opts.K*c.Opts.Unit), c.Opts.SegmentSize, 21), 8)
	c.WaitHealed(t, 30*time.Second) // writes that missed a member under load are caught up

	gets := func() (n float64) { // of the dataservers that stay
		for i := range c.Dataservers() {
			if i != 3 {
				n += dsOpRequests(t, c, i, "get")
			}
		}
		return n
	}
	getsBefore := gets()
	start := time.Now()
	kill(t, c, 3)
	c.WaitHealed(t, 90*time.Second)
	t.Logf("healed %v after the kill (repair after %v)", time.Since(start).Round(time.Millisecond), c.Opts.RepairAfter)
	var rebuilt, needles float64
	for i := range c.Dataservers() {
		rebuilt += dsMetric(t, c, i, "depot_repair_bytes_total")
		needles += dsMetric(t, c, i, "depot_repair_needles_total")
	}
	if rebuilt == 0 {
		t.Fatal("no bytes rebuilt")
	}
	// The shards come in needle runs; a needle fetched on its own (k or
	// more GETs) is the exception.
	if n := gets() - getsBefore; n > needles/4 {
		t.Errorf("%.0f single-needle GETs to rebuild %.0f needles: the needle runs are not used", n, needles)
	}
	t.Logf("rebuilt %.0f shard bytes, %.0f needles", rebuilt, needles)

	kill(t, c, 0)
	kill(t, c, 5)
	checkAll(t, cl, objs, 0, 22)
}

// A write that missed a member (down at the time, back before the repair
// grace period ended) is caught up needle by needle.
func TestRepair_MissedWrite(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{RepairAfter: time.Hour})
	cl := c.Client()
	stripe := int64(c.Opts.K * c.Opts.Unit)
	objs := putAll(t, cl, 0, logUniformSizes(30, 512<<10, stripe, c.Opts.SegmentSize, 31), 4)

	victim := 2
	kill(t, c, victim)
	more := putAll(t, cl, 1000, logUniformSizes(40, 512<<10, stripe, c.Opts.SegmentSize, 32), 4)
	st, err := c.NSClient().RepairStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Missed == 0 {
		t.Fatal("writes with a member down recorded no missed shards")
	}
	t.Logf("%d missed shards recorded", st.Missed)

	if err := c.StartDataserver(context.Background(), victim); err != nil {
		t.Fatal(err)
	}
	c.WaitAlive(victim)
	c.WaitHealed(t, 60*time.Second)

	// The victim's shards are now needed: two others go.
	kill(t, c, 0)
	kill(t, c, 4)
	checkAll(t, cl, append(objs, more...), 0, 33)
}

// Bytes flipped on disk: the scrub finds them, repair rebuilds the needle,
// and no read returns the corrupt bytes meanwhile.
func TestRepair_ScrubBitFlip(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{RepairAfter: time.Hour})
	cl := c.Client()
	sizes := make([]int64, 40)
	for i := range sizes {
		sizes[i] = int64(4<<10 + i*3001)
	}
	objs := putAll(t, cl, 0, sizes, 4)

	victim := 1
	files, err := filepath.Glob(filepath.Join(c.DataserverDir(victim), "*.shard"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shard files: %v", err)
	}
	for _, f := range files {
		// Flip a byte inside the first needle's data (after the 64-byte
		// superblock and its 32-byte header); the page cache is what the
		// dataserver reads, so write through the file.
		fh, err := os.OpenFile(f, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := fh.ReadAt(b, 64+32+5); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x5a
		if _, err := fh.WriteAt(b, 64+32+5); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	checkAll(t, cl, objs, 0, 41) // reads decode around the corrupt shards

	waitUntil(t, 30*time.Second, "the scrub to find the corruption", func() bool {
		return dsMetric(t, c, victim, "depot_scrub_corrupt_total") >= float64(len(files))
	})
	c.WaitHealed(t, 30*time.Second)
	if n := dsMetric(t, c, victim, "depot_repair_needles_total"); n < float64(len(files)) {
		t.Fatalf("%v needles repaired, want %d", n, len(files))
	}
	res, err := c.Dataserver(victim).Server.Store().Scrub(context.Background(),
		func(context.Context, int64) error { return nil }, func(depot.VolumeID, int, depot.NeedleID, depot.Cookie) {})
	if err == nil && res.Corrupt > 0 {
		t.Fatalf("still %d corrupt needles after repair", res.Corrupt)
	}
	// The victim's shards are needed now: two others go.
	kill(t, c, 0)
	kill(t, c, 3)
	checkAll(t, cl, objs, 0, 42)
}

// The nameserver crashes while a shard rebuild is under way: after the
// restart the job resumes from its recorded cursor and finishes, and fsck
// finds nothing wrong.
func TestRepair_NameserverCrash(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 7, Repair: repair.Config{Rate: 200 << 10, Parallel: 2}})
	cl := c.Client()
	n := 400
	if testing.Short() {
		n = 200
	}
	objs := putAll(t, cl, 0, logUniformSizes(n, 128<<10, int64(c.Opts.K*c.Opts.Unit), c.Opts.SegmentSize, 51), 8)
	kill(t, c, 2)
	ns := c.NSClient()
	waitUntil(t, 60*time.Second, "a repair job with progress", func() bool {
		st, err := ns.RepairStatus(context.Background())
		return err == nil && st.Bytes > 0
	})
	st, _ := ns.RepairStatus(context.Background())
	t.Logf("crashing the nameserver with %d jobs, %d of %d bytes done", len(st.Jobs), st.Bytes, st.Total)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.CrashNameserver(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := c.NSClient().RepairStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Jobs) == 0 || after.Bytes == 0 {
		t.Fatalf("jobs after restart: %d, %d bytes done: progress lost", len(after.Jobs), after.Bytes)
	}
	c.WaitHealed(t, 90*time.Second)
	checkAll(t, cl, objs, 0, 52)

	// The lost dataserver comes back after its slots were rebuilt
	// elsewhere: it drops its stale copies (fsck checks that no dataserver
	// holds a shard file of a slot it is no member of).
	if err := c.StartDataserver(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	c.WaitAlive(2)
	waitUntil(t, 30*time.Second, "stale shard files dropped", func() bool {
		return dsMetric(t, c, 2, "depot_antientropy_differences_total") > 0
	})
	c.WaitHealed(t, 30*time.Second)
	if n := len(c.Dataserver(2).Server.Store().Status().Files); n != 0 {
		t.Fatalf("returning dataserver still holds %d shard files", n)
	}
}

// Deleted objects: their needles leave every member after the grace
// period, and the delete queue empties; the health metrics are exported.
func TestRepair_DeleteQueue(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	ctx := context.Background()
	ns := c.NSClient()
	if _, err := ns.CreateBucket(ctx, "media"); err != nil {
		t.Fatal(err)
	}
	objs := putAll(t, c.Client(), 0, []int64{1000, 70000, 300000}, 2)
	for i, o := range objs {
		key := fmt.Sprintf("k%d", i)
		if _, err := ns.PutObject(ctx, depot.Object{Bucket: "media", Key: key, Size: o.size, Segments: o.segs}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range objs {
		if _, err := ns.DeleteObject(ctx, "media", fmt.Sprintf("k%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 30*time.Second, "the delete queue to empty", func() bool {
		pd, err := ns.PendingDeletes(ctx, 100)
		return err == nil && len(pd) == 0
	})
	for _, o := range objs {
		for _, sg := range o.segs {
			fid, err := depot.ParseFid(sg.Fid)
			if err != nil {
				t.Fatal(err)
			}
			v, err := ns.Volume(ctx, fid.Volume)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range v.Members {
				for i := range c.Dataservers() {
					if node.DataserverID(i) != m.Node {
						continue
					}
					_, err := c.Dataserver(i).Server.Store().Stat(ctx, fid.Volume, m.Index, fid.Needle, fid.Cookie)
					if !errors.Is(err, depot.ErrNotFound) {
						t.Errorf("%s shard %d on %s after delete: %v", sg.Fid, m.Index, m.Node, err)
					}
				}
			}
		}
	}
	c.MustFsck(t)

	resp, err := http.Get(c.NS.Server.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"depot_volumes_degraded", "depot_gossip_members{role=\"dataserver\",state=\"alive\"} 6",
		"depot_repair_queue_shards", "depot_repair_bytes", "depot_delete_queue 0"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("nameserver /metrics lacks %s", name)
		}
	}
}
