package testcluster_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"depot/client"
	"depot/dataserver"
	"depot/internal/testcluster"
)

// diskWriteMBps measures sequential write bandwidth in dir: 64 MiB in
// 1 MiB writes, then fsync.
func diskWriteMBps(b *testing.B, dir string) float64 {
	b.Helper()
	f, err := os.Create(filepath.Join(dir, "seqwrite.tmp"))
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	start := time.Now()
	for range 64 {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return 64 / time.Since(start).Seconds()
}

// BenchmarkRepair_Unthrottled rebuilds a lost dataserver's shards with no
// rate bound and reports the rebuild rate beside the disk's sequential
// write bandwidth:
//
//	go test -run XXX -bench Repair -benchtime 1x ./internal/testcluster/
func BenchmarkRepair_Unthrottled(b *testing.B) {
	for range b.N {
		dir := b.TempDir()
		disk := diskWriteMBps(b, dir)
		c := testcluster.New(b, testcluster.Options{Dataservers: 7, Dir: dir, Fsync: dataserver.FsyncGroup,
			Unit: 256 << 10})
		sizes := make([]int64, 120)
		for i := range sizes {
			sizes[i] = 1 << 20
		}
		for i, size := range sizes {
			if _, err := c.Client().Put(context.Background(), bytes.NewReader(content(i, size)), size, client.PutOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		ns := c.NSClient()
		if err := c.KillDataserver(4); err != nil {
			b.Fatal(err)
		}
		var start time.Time
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			st, err := ns.RepairStatus(context.Background())
			if err == nil && len(st.Jobs) > 0 && start.IsZero() {
				start = time.Now()
			}
			if err == nil && len(st.Jobs) == 0 && !start.IsZero() {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(start)
		var rebuilt float64
		for i := range c.Dataservers() {
			if d := c.Dataserver(i); d != nil {
				mfs, _ := d.Server.Registry().Gather()
				for _, mf := range mfs {
					if mf.GetName() == "depot_repair_bytes_total" {
						rebuilt += mf.GetMetric()[0].GetCounter().GetValue()
					}
				}
			}
		}
		rate := rebuilt / (1 << 20) / took.Seconds()
		b.ReportMetric(rate, "repair-MiB/s")
		b.ReportMetric(disk, "disk-MiB/s")
		b.ReportMetric(100*rate/disk, "%-of-disk")
		b.Logf("rebuilt %.1f MiB in %v: %.1f MiB/s; disk sequential write %.1f MiB/s (%.0f%%)",
			rebuilt/(1<<20), took.Round(time.Millisecond), rate, disk, 100*rate/disk)
	}
}
