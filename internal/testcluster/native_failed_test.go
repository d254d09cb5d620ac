package testcluster_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"depot"
	"depot/client"
	"depot/internal/auth"
	"depot/internal/testcluster"
	"depot/repair"
)

// lostShards is a network fault between one client and the dataservers:
// while on, the shard PUTs to the members in lost never arrive and fail at
// the end of their body (members lost as the write ends), and every DELETE
// is lost, so the client's clean-up of its failed write fails too (as when
// the gateway crashes right after the write).
type lostShards struct {
	base http.RoundTripper
	lost map[string]bool // member addresses
	on   atomic.Bool
}

func (f *lostShards) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case req.Method == http.MethodDelete:
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errors.New("fault: delete lost")
	case req.Method == http.MethodPut && f.on.Load() && f.lost[req.URL.Host]:
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
		return nil, errors.New("fault: connection reset")
	}
	return f.base.RoundTrip(req)
}

// liveNeedles returns every live needle of every running dataserver, as
// "node vol/idx fid".
func liveNeedles(t *testing.T, ctx context.Context, c *testcluster.Cluster) map[string]bool {
	t.Helper()
	out := make(map[string]bool)
	for i := range c.Dataservers() {
		d := c.Dataserver(i)
		if d == nil {
			continue
		}
		st := d.Server.Store()
		for _, f := range st.Status().Files {
			list, err := st.List(ctx, f.Volume, f.Index)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range list {
				if !n.Deleted {
					fid := depot.Fid{Volume: f.Volume, Needle: n.ID, Cookie: n.Cookie}
					out[d.Server.Addr()+" "+fid.String()+" "+string(rune('0'+f.Index))] = true
				}
			}
		}
	}
	return out
}

// TestNativeFailedWrite_Swept: native PUTs that fail for lack of quorum
// (three of six members lost as the write ends, and the client's own
// clean-up lost as well) — a one-segment blob, and a blob whose second
// segment fails after its first was stored on every member — leave
// needles behind; the orphan sweep deletes every one of them, while
// native blobs written successfully are never swept.
func TestNativeFailedWrite_Swept(t *testing.T) {
	const grace = 2 * time.Second
	c := testcluster.New(t, testcluster.Options{Repair: repair.Config{OrphanGrace: grace}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Blobs written successfully: one segment, and several (1 MiB
	// segments) with a manifest.
	type blob struct {
		fid  depot.Fid
		body []byte
	}
	var good []blob
	for i, size := range []int64{100 << 10, 2<<20 + 777} {
		body := content(7000+i, size)
		fid, _, err := c.Client().PutBlob(ctx, bytes.NewReader(body), size, client.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, blob{fid, body})
	}
	before := liveNeedles(t, ctx, c)

	faults := &lostShards{base: http.DefaultTransport.(*http.Transport).Clone(), lost: map[string]bool{}}
	for i := 3; i < 6; i++ {
		faults.lost[c.Dataserver(i).Server.Addr()] = true
	}
	cl, err := client.New(client.Config{Nameserver: c.NSClient(), Key: c.Key, K: c.Opts.K, M: c.Opts.M,
		SegmentSize: c.Opts.SegmentSize, Attempts: 1, Logger: slog.New(slog.DiscardHandler),
		HTTPClient: &http.Client{Transport: &auth.Transport{Key: c.Key, Base: faults}}})
	if err != nil {
		t.Fatal(err)
	}
	faults.on.Store(true)
	small := content(7100, 100<<10)
	if _, _, err := cl.PutBlob(ctx, bytes.NewReader(small), int64(len(small)), client.PutOptions{}); !errors.Is(err, depot.ErrNoQuorum) {
		t.Fatalf("one-segment put: %v, want ErrNoQuorum", err)
	}
	faults.on.Store(false)
	big := content(7101, 2<<20+555)
	_, _, err = cl.PutBlob(ctx, bytes.NewReader(big), int64(len(big)), client.PutOptions{Progress: func(n int64) {
		if n >= c.Opts.SegmentSize {
			faults.on.Store(true) // the members are lost from the second segment on
		}
	}})
	if !errors.Is(err, depot.ErrNoQuorum) {
		t.Fatalf("multi-segment put: %v, want ErrNoQuorum", err)
	}
	left := liveNeedles(t, ctx, c)
	maps.DeleteFunc(left, func(k string, _ bool) bool { return before[k] })
	if len(left) < 3+3+6 { // 2 needles on 3 members, one on all 6
		t.Fatalf("the failed writes left %d shards, want at least 12: %v", len(left), left)
	}
	t.Logf("failed writes left %d shards", len(left))

	deadline := time.Now().Add(60 * time.Second)
	for {
		now := liveNeedles(t, ctx, c)
		for k := range before {
			if !now[k] {
				t.Fatalf("shard %s of a successful blob was deleted", k)
			}
		}
		n := 0
		for k := range left {
			if now[k] {
				n++
			}
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d shards of failed writes still stored", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A few more sweeps, then the successful blobs read back whole.
	time.Sleep(2 * grace)
	for _, b := range good {
		info, err := c.Client().StatBlob(ctx, b.fid)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := c.Client().GetBlob(ctx, info, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, b.body) {
			t.Fatalf("blob %s: read %d bytes (err %v), want %d", b.fid, len(got), err, len(b.body))
		}
	}
	for k := range before {
		if !liveNeedles(t, ctx, c)[k] {
			t.Fatalf("shard %s of a successful blob was deleted", k)
		}
	}
	c.MustFsck(t)
}
