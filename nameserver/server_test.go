package nameserver

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"depot"
	"depot/internal/httpx"
	"depot/internal/membership"
	"depot/nameserver/nsclient"
)

func TestServer_Assign(t *testing.T) {
	c := MustCluster(t, []string{"", "", "", "", "", "", ""}, nil) // 7 dataservers, no racks
	ctx := ctxT(t)

	t.Run("OK", func(t *testing.T) {
		a, err := c.client.Assign(ctx, 4, 2, 16)
		if err != nil {
			t.Fatal(err)
		}
		v := a.Volume
		if v.ID == 0 || v.K != 4 || v.M != 2 || v.Unit != 64<<10 || v.State != depot.VolumeWritable {
			t.Fatalf("volume %+v", v)
		}
		if a.First < 1 || a.Count != 16 {
			t.Fatalf("lease first=%d count=%d", a.First, a.Count)
		}
		seen := map[string]bool{}
		for i, m := range v.Members {
			if m.Index != i || m.Node == "" || m.Addr == "" || seen[m.Node] {
				t.Fatalf("member %d: %+v (members %+v)", i, m, v.Members)
			}
			seen[m.Node] = true
		}
		if len(v.Members) != 6 {
			t.Fatalf("%d members", len(v.Members))
		}
		got, err := c.client.Volume(ctx, v.ID)
		if err != nil || got.ID != v.ID || len(got.Members) != 6 {
			t.Fatalf("Volume(%d) = %+v, %v", v.ID, got, err)
		}
	})

	t.Run("LeaseBatching", func(t *testing.T) {
		// Concurrent leases never overlap within a volume.
		type lease struct {
			vol         depot.VolumeID
			first, last depot.NeedleID
		}
		var mu sync.Mutex
		var leases []lease
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for range 16 {
			wg.Go(func() {
				for range 5 {
					a, err := c.client.Assign(ctx, 0, 0, 100) // default scheme 4+2
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					leases = append(leases, lease{a.Volume.ID, a.First, a.First + depot.NeedleID(a.Count) - 1})
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		vols := map[depot.VolumeID]int{}
		for i, a := range leases {
			vols[a.vol]++
			for _, b := range leases[i+1:] {
				if a.vol == b.vol && a.first <= b.last && b.first <= a.last {
					t.Fatalf("overlapping leases %+v and %+v", a, b)
				}
			}
		}
		// MinWritable (2 in the test preset) volumes exist and both are used.
		if len(vols) < 2 {
			t.Fatalf("leases from %d volumes, want writes spread over ≥ 2: %v", len(vols), vols)
		}
		if st, _ := c.client.Status(ctx); st.ByState[depot.VolumeWritable] != 2 {
			t.Fatalf("writable volumes: %v", st.ByState)
		}
	})

	t.Run("BadRequest", func(t *testing.T) {
		for _, tc := range []struct{ k, m, count int }{{0, 3, 1}, {200, 100, 1}, {4, 2, 1 << 30}, {4, -1, 1}} {
			if _, err := c.client.Assign(ctx, tc.k, tc.m, tc.count); !errors.Is(err, depot.ErrBadRequest) {
				t.Errorf("Assign(%d,%d,%d) err = %v, want ErrBadRequest", tc.k, tc.m, tc.count, err)
			}
		}
	})

	t.Run("ErrNotEnoughNodes", func(t *testing.T) {
		_, err := c.client.Assign(ctx, 6, 2, 1)
		if !errors.Is(err, depot.ErrNotEnoughNodes) {
			t.Fatalf("err = %v, want ErrNotEnoughNodes", err)
		}
		var re *httpx.RemoteError
		if !errors.As(err, &re) || re.Status != http.StatusServiceUnavailable {
			t.Fatalf("err = %#v, want a 503 RemoteError", err)
		}
		if !strings.Contains(err.Error(), "needs 8 alive dataservers, 7 alive") {
			t.Fatalf("error text %q does not say how many are needed and alive", err)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		if _, err := c.client.Volume(ctx, 999999); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})

	t.Run("DeadMember", func(t *testing.T) {
		victim := c.ds[0]
		if err := victim.Kill(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "status shows ds0 dead", func() bool {
			st, err := c.client.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range st.Dataservers {
				if d.ID == "ds0" {
					return d.State == membership.StateDead
				}
			}
			return false
		})
		// Volumes with ds0 become degraded; assign hands out only volumes
		// without it, creating them on the 6 left.
		for range 20 {
			a, err := c.client.Assign(ctx, 4, 2, 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range a.Volume.Members {
				if m.Node == "ds0" {
					t.Fatalf("assign handed out volume %d with dead member ds0", a.Volume.ID)
				}
			}
		}
		waitFor(t, 5*time.Second, "volumes with ds0 degraded", func() bool {
			for _, v := range c.srv.Volumes() {
				for _, m := range v.Members {
					if m.Node == "ds0" && v.State != depot.VolumeDegraded {
						return false
					}
				}
			}
			return true
		})
		st, err := c.client.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Alive != 6 || st.ByState[depot.VolumeDegraded] == 0 {
			t.Fatalf("status: alive %d, volumes %v", st.Alive, st.ByState)
		}
		// A second dead node leaves 5: no 4+2 volume can be placed, so
		// assign falls back to degraded volumes that still have a write
		// quorum (k+1 = 5 members up), never one with both dead members,
		// and fails with ErrNotEnoughNodes, saying how many are alive,
		// when there is none.
		if err := c.ds[1].Kill(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "ds1 seen dead", func() bool {
			st, err := c.client.Status(ctx)
			return err == nil && st.Alive == 5
		})
		for range 20 {
			a, err := c.client.Assign(ctx, 4, 2, 1)
			if err != nil {
				if !errors.Is(err, depot.ErrNotEnoughNodes) || !strings.Contains(err.Error(), "5 alive") {
					t.Fatalf("assign: %v", err)
				}
				continue
			}
			dead := 0
			for _, m := range a.Volume.Members {
				if m.Node == "ds0" || m.Node == "ds1" {
					dead++
				}
			}
			if dead > 1 {
				t.Fatalf("assign handed out volume %d with %d dead members", a.Volume.ID, dead)
			}
		}
	})
}

func TestServer_HTTP(t *testing.T) {
	c := MustCluster(t, []string{"a", "b", "c"}, nil)
	ctx := ctxT(t)

	get := func(path string) *http.Response {
		t.Helper()
		resp, err := http.Get(c.srv.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	t.Run("Public", func(t *testing.T) {
		for path, want := range map[string]int{
			"/healthz": 200, "/metrics": 200,
			"/readyz": http.StatusServiceUnavailable, // 3 of 6 dataservers alive
		} {
			if got := get(path).StatusCode; got != want {
				t.Errorf("GET %s = %d, want %d", path, got, want)
			}
		}
	})
	t.Run("Unauthorized", func(t *testing.T) {
		for _, path := range []string{"/status", "/ui", "/ui/health"} {
			if got := get(path).StatusCode; got != http.StatusUnauthorized {
				t.Fatalf("GET %s without token = %d", path, got)
			}
		}
		other := nsclient.New(c.srv.URL(), []byte("another cluster key, 32 bytes..."), nil)
		if _, err := other.Buckets(ctx); !errors.Is(err, depot.ErrUnauthorized) {
			t.Fatalf("wrong key: err = %v, want ErrUnauthorized", err)
		}
	})
	t.Run("Ready", func(t *testing.T) {
		for i := range 3 {
			c.AddDataserver("extra"+string(rune('0'+i)), "d", 1<<40)
		}
		c.WaitAlive(6)
		waitFor(t, 5*time.Second, "/readyz 200", func() bool { return get("/readyz").StatusCode == 200 })
	})
	t.Run("BadBody", func(t *testing.T) {
		req, _ := http.NewRequest("POST", c.srv.URL()+"/assign", strings.NewReader(`{"k":4,"m":`))
		c.key.Sign(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := httpx.ReadError(resp); resp.StatusCode != 400 || !errors.Is(err, depot.ErrBadRequest) {
			t.Fatalf("status %d, err %v", resp.StatusCode, err)
		}
	})
	t.Run("Missed", func(t *testing.T) {
		a, err := c.client.Assign(ctx, 4, 2, 1)
		if err != nil {
			t.Fatal(err)
		}
		f := depot.Fid{Volume: a.Volume.ID, Needle: a.First, Cookie: 7}
		if err := c.client.Missed(ctx, f, []int{1, 5}); err != nil {
			t.Fatal(err)
		}
		if err := c.client.Missed(ctx, f, []int{0, 5}); err != nil {
			t.Fatal(err)
		}
		if err := c.client.Missed(ctx, f, []int{6}); !errors.Is(err, depot.ErrBadRequest) {
			t.Fatalf("shard 6 of a 4+2 volume: err = %v", err)
		}
		if err := c.client.Missed(ctx, depot.Fid{Volume: 9999, Needle: 1}, []int{1}); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("unknown volume: err = %v", err)
		}
		list, err := c.client.MissedWrites(ctx, 0)
		if err != nil || len(list) != 1 || list[0].Fid != f.String() || len(list[0].Shards) != 3 {
			t.Fatalf("missed = %+v, %v", list, err)
		}
		if err := c.client.ClearMissed(ctx, []string{f.String()}); err != nil {
			t.Fatal(err)
		}
		if list, _ := c.client.MissedWrites(ctx, 0); len(list) != 0 {
			t.Fatalf("after clear: %+v", list)
		}
	})
	t.Run("VolumeState", func(t *testing.T) {
		a, err := c.client.Assign(ctx, 4, 2, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.client.SetVolumeState(ctx, a.Volume.ID, depot.VolumeFull); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			b, err := c.client.Assign(ctx, 4, 2, 1)
			if err != nil {
				t.Fatal(err)
			}
			if b.Volume.ID == a.Volume.ID {
				t.Fatalf("assign leased from full volume %d", a.Volume.ID)
			}
		}
		if err := c.client.SetVolumeState(ctx, a.Volume.ID, "bogus"); !errors.Is(err, depot.ErrBadRequest) {
			t.Fatalf("bogus state: %v", err)
		}
	})
	t.Run("Close", func(t *testing.T) {
		if err := c.srv.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.srv.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := c.srv.Assign(ctx, 4, 2, 1); !errors.Is(err, ErrClosed) {
			t.Fatalf("Assign after Close: %v", err)
		}
	})
}

func TestServer_Restart(t *testing.T) {
	c := MustCluster(t, []string{"", "", "", "", "", ""}, nil)
	ctx := ctxT(t)
	a1, err := c.client.Assign(ctx, 4, 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CreateBucket(ctx, "photos"); err != nil {
		t.Fatal(err)
	}
	o := object("photos", "a.jpg", 1, 100, 50)
	if _, err := c.client.PutObject(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.PutObject(ctx, object("photos", "a.jpg", 10, 7)); err != nil {
		t.Fatal(err)
	}
	f := depot.Fid{Volume: a1.Volume.ID, Needle: a1.First, Cookie: 1}
	if err := c.client.Missed(ctx, f, []int{2}); err != nil {
		t.Fatal(err)
	}
	before, err := c.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}

	c.Restart()

	after, err := c.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Volumes != before.Volumes || after.Objects != 1 || after.Bytes != 7 || after.Buckets != 1 ||
		after.Deletes != 2 || after.Missed != 1 {
		t.Fatalf("after restart: %+v\nbefore: %+v", after, before)
	}
	got, err := c.client.GetObject(ctx, "photos", "a.jpg")
	if err != nil || got.Size != 7 || len(got.Segments) != 1 {
		t.Fatalf("object after restart: %+v, %v", got, err)
	}
	v, err := c.client.Volume(ctx, a1.Volume.ID)
	if err != nil || len(v.Members) != 6 {
		t.Fatalf("volume after restart: %+v, %v", v, err)
	}
	// Leases continue after the old ones: no needle id is handed out twice.
	for range 8 {
		a, err := c.client.Assign(ctx, 4, 2, 10)
		if err != nil {
			t.Fatal(err)
		}
		if a.Volume.ID == a1.Volume.ID && a.First < a1.First+10 {
			t.Fatalf("needle ids reused after restart: %d < %d", a.First, a1.First+10)
		}
	}
}

func TestConfig_Validate(t *testing.T) {
	m := &fakeMembers{}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"NoDir", func(c *Config) { c.Dir = "" }},
		{"NoKey", func(c *Config) { c.Key = nil }},
		{"NoMembers", func(c *Config) { c.Members = nil }},
		{"BadScheme", func(c *Config) { c.DefaultK, c.DefaultM = 0, 2 }},
		{"Negative", func(c *Config) { c.GroupCommitWindow = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := TestConfig(t.TempDir(), []byte("0123456789abcdef"), m)
			tc.mod(&cfg)
			if err := cfg.Validate(); err == nil {
				t.Fatal("Validate accepted a bad config")
			}
		})
	}
	t.Run("OK", func(t *testing.T) {
		if err := TestConfig(t.TempDir(), []byte("0123456789abcdef"), m).Validate(); err != nil {
			t.Fatal(err)
		}
	})
}

// fakeMembers is a fixed gossip view, for tests that need no gossip.
type fakeMembers struct {
	mu    sync.Mutex
	nodes []membership.Node
}

func (f *fakeMembers) Members() []membership.Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]membership.Node(nil), f.nodes...)
}
