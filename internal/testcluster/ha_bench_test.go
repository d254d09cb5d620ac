package testcluster_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"depot"
	"depot/client"
	"depot/internal/testcluster"
)

// BenchmarkHA_S3Put64K measures the rate of 64 KiB S3 PUTs through the
// gateway with one nameserver and with a raft group of three, in the same
// run, and reports both and their ratio. Both clusters run side by side and
// take turns (four rounds each, b.N PUTs per configuration in all, from 64
// writers), so that a machine whose load drifts weighs on both alike. Run
// it with a fixed count, e.g.
//
//	go test -run '^$' -bench HA_S3Put64K -benchtime 2000x ./internal/testcluster/
func BenchmarkHA_S3Put64K(b *testing.B) {
	const rounds, writers = 4, 64
	clusters := map[int]*minio.Client{}
	for _, n := range []int{1, 3} {
		c := testcluster.New(b, testcluster.Options{Nameservers: n})
		mc := haMinio(b, c)
		if err := mc.MakeBucket(context.Background(), "bench", minio.MakeBucketOptions{}); err != nil {
			b.Fatal(err)
		}
		clusters[n] = mc
	}
	took := map[int]time.Duration{}
	per := max(b.N/rounds, 1)
	for r := range rounds {
		for _, n := range []int{1, 3} {
			took[n] += s3Puts(b, clusters[n], r*per, per, writers)
		}
	}
	rate := map[int]float64{}
	for n, d := range took {
		rate[n] = float64(per*rounds) / d.Seconds()
	}
	b.ReportMetric(rate[1], "puts/s-1ns")
	b.ReportMetric(rate[3], "puts/s-3ns")
	b.ReportMetric(rate[3]/rate[1], "ratio-3/1")
	b.Logf("64 KiB S3 PUTs, %d per configuration, %d writers: 1 nameserver %.0f/s, 3 nameservers %.0f/s, ratio %.2f",
		per*rounds, writers, rate[1], rate[3], rate[3]/rate[1])
}

// BenchmarkHA_PutObjectMeta measures the nameserver alone: object commits
// (nsclient PutObject of a one-segment object, no data) from 64 writers,
// one nameserver against a raft group of three.
func BenchmarkHA_PutObjectMeta(b *testing.B) {
	rate := map[int]float64{}
	for _, n := range []int{1, 3} {
		c := testcluster.New(b, testcluster.Options{Nameservers: n})
		ns := c.NSClient()
		ctx := context.Background()
		if _, err := ns.CreateBucket(ctx, "meta"); err != nil {
			b.Fatal(err)
		}
		// A real segment, so that the commit passes apply's checks.
		st, err := c.Client().Put(ctx, bytes.NewReader(content(1, 1000)), 1000, client.PutOptions{})
		if err != nil {
			b.Fatal(err)
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range 64 {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > int64(b.N) {
						return
					}
					o := depot.Object{Bucket: "meta", Key: fmt.Sprintf("k%08d", i), Size: st.Size, Segments: st.Segments, ETag: "x"}
					if _, err := ns.PutObject(ctx, o); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		rate[n] = float64(b.N) / time.Since(start).Seconds()
	}
	b.ReportMetric(rate[1], "commits/s-1ns")
	b.ReportMetric(rate[3], "commits/s-3ns")
	b.ReportMetric(rate[3]/rate[1], "ratio-3/1")
	b.Logf("object commits, %d per configuration, 64 writers: 1 nameserver %.0f/s, 3 nameservers %.0f/s, ratio %.2f",
		b.N, rate[1], rate[3], rate[3]/rate[1])
}

// s3Puts does puts PUTs of keys first... from writers and returns the time
// they took.
func s3Puts(b *testing.B, mc *minio.Client, first, puts, writers int) time.Duration {
	b.Helper()
	ctx := context.Background()
	body := content(7, haObjectSize)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(puts) {
					return
				}
				_, err := mc.PutObject(ctx, "bench", haKey(first+int(i)), bytes.NewReader(body), haObjectSize,
					minio.PutObjectOptions{ContentType: "application/octet-stream"})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}
