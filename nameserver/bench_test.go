package nameserver

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"depot"
	"depot/nameserver/nsclient"
)

// BenchmarkGroupCommit puts object metadata from many goroutines through the
// committer (real bbolt with fsync in a temporary directory) and reports the
// commands per fsync.
//
//	go test -run '^$' -bench GroupCommit -benchtime 2000x ./nameserver/
func BenchmarkGroupCommit(b *testing.B) {
	for _, goroutines := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			cfg := TestConfig(b.TempDir(), []byte("0123456789abcdef"), &fakeMembers{})
			cfg.Logger = quiet
			srv, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			if err := srv.Start(); err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			ctx := b.Context()
			if _, err := srv.CreateBucket(ctx, "bench"); err != nil {
				b.Fatal(err)
			}
			fsyncs0, cmds0 := srv.store.fsyncs.Load(), srv.store.commands.Load()
			var n atomic.Uint64
			b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0)))
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					o := depot.Object{Bucket: "bench", Key: fmt.Sprintf("products/%08d.jpg", i), Size: 123456,
						ETag: "0123456789abcdef", ContentType: "image/jpeg",
						Segments: []depot.Segment{{Fid: fid(1+i%100, i), Size: 123456}}}
					if _, err := srv.PutObject(ctx, o); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			elapsed := time.Since(start)
			fsyncs, cmds := srv.store.fsyncs.Load()-fsyncs0, srv.store.commands.Load()-cmds0
			b.ReportMetric(float64(cmds)/float64(fsyncs), "cmds/fsync")
			b.ReportMetric(float64(cmds)/elapsed.Seconds(), "cmds/s")
		})
	}
}

// BenchmarkLookup looks volumes up among 10,000, in memory and over HTTP,
// and reports the 99th percentile latency.
//
//	go test -run '^$' -bench Lookup -benchtime 20000x ./nameserver/
func BenchmarkLookup(b *testing.B) {
	const volumes = 10000
	cfg := TestConfig(b.TempDir(), []byte("0123456789abcdef"), &fakeMembers{})
	cfg.Logger = quiet
	srv, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	loadVolumes(b, srv.store, volumes, 24)
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	if got := len(srv.Volumes()); got != volumes {
		b.Fatalf("%d volumes loaded", got)
	}

	report := func(b *testing.B, lat []time.Duration) {
		slices.Sort(lat)
		p99 := lat[len(lat)*99/100]
		b.ReportMetric(float64(p99.Nanoseconds())/1e3, "p99-µs")
		b.Logf("%d lookups among %d volumes: p50 %v, p99 %v, max %v", len(lat), volumes, lat[len(lat)/2], p99, lat[len(lat)-1])
		if p99 > time.Millisecond {
			b.Errorf("p99 %v over 1ms", p99)
		}
	}
	b.Run("Memory", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for i := 0; b.Loop(); i++ {
			t0 := time.Now()
			v, err := srv.Volume(depot.VolumeID(1 + i*7919%volumes))
			lat = append(lat, time.Since(t0))
			if err != nil || len(v.Members) != 6 {
				b.Fatalf("%+v, %v", v, err)
			}
		}
		report(b, lat)
	})
	b.Run("HTTP", func(b *testing.B) {
		cl := nsclient.New(srv.URL(), cfg.Key, nil)
		ctx := b.Context()
		lat := make([]time.Duration, 0, b.N)
		for i := 0; b.Loop(); i++ {
			t0 := time.Now()
			v, err := cl.Volume(ctx, depot.VolumeID(1+i*7919%volumes))
			lat = append(lat, time.Since(t0))
			if err != nil || len(v.Members) != 6 {
				b.Fatalf("%+v, %v", v, err)
			}
		}
		report(b, lat)
	})
}

// loadVolumes creates n 4+2 volumes over nodes dataservers in one
// transaction through apply, then reloads the cache from the database.
func loadVolumes(tb testing.TB, st *store, n, nodes int) {
	tb.Helper()
	var recs []dataserverRecord
	for i := range nodes {
		recs = append(recs, dataserverRecord{ID: fmt.Sprintf("ds%02d", i), Addr: fmt.Sprintf("10.0.0.%d:8080", i), State: stateAlive, Free: 1 << 40})
	}
	mustCmd := func(typ CommandType, payload any) Command {
		data, err := json.Marshal(payload)
		if err != nil {
			tb.Fatal(err)
		}
		return Command{Type: typ, Time: time.Now().UTC(), Data: data}
	}
	err := st.db.Update(func(tx *bbolt.Tx) error {
		if _, err := st.apply(tx, mustCmd(CmdSyncDataservers, syncDataserversCmd{Dataservers: recs})); err != nil {
			return err
		}
		for i := range n {
			members := make([]depot.Member, 6)
			for j := range members {
				d := recs[(i+j)%nodes]
				members[j] = depot.Member{Index: j, Node: d.ID, Addr: d.Addr}
			}
			cmd := assignCmd{Count: 1, Create: &depot.Volume{K: 4, M: 2, Unit: 1 << 20, Members: members}}
			if _, err := st.apply(tx, mustCmd(CmdAssign, cmd)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	st.pending = nil
	st.cache = newCache()
	if err := st.db.View(st.cache.load); err != nil {
		tb.Fatal(err)
	}
}
