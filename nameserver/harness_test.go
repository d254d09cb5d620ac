package nameserver

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"depot"
	"depot/internal/auth"
	"depot/internal/membership"
	"depot/nameserver/nsclient"
)

// testCluster is a nameserver on 127.0.0.1:0 with a bbolt file in a
// temporary directory, joined to a real gossip cluster of dataserver members
// (gossip only: nothing serves their HTTP addresses).
type testCluster struct {
	t      *testing.T
	key    auth.Key
	dir    string
	ns     *membership.Membership
	ds     []*membership.Membership
	srv    *Server
	client *nsclient.Client
}

var quiet = slog.New(slog.DiscardHandler)

func mustMember(t *testing.T, key auth.Key, meta membership.NodeMeta, join ...string) *membership.Membership {
	t.Helper()
	m, err := membership.New(membership.Config{
		Name: meta.ID, BindAddr: "127.0.0.1:0", Key: key, Meta: meta, Join: join,
		Logger: quiet, Timing: membership.TimingTest,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// MustCluster starts one gossip member per rack given (dataserver "ds<i>"
// in that rack, with 1 TiB free) and a nameserver that sees them all alive.
// mod, when not nil, adjusts the nameserver's config.
func MustCluster(t *testing.T, racks []string, mod func(*Config)) *testCluster {
	t.Helper()
	key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, key: key, dir: t.TempDir()}
	c.ns = mustMember(t, key, membership.NodeMeta{ID: "ns", Role: depot.RoleNameserver, Addr: "127.0.0.1:1"})
	for i, rack := range racks {
		c.AddDataserver(fmt.Sprintf("ds%d", i), rack, 1<<40)
	}
	c.WaitAlive(len(racks))
	c.Start(mod)
	return c
}

// AddDataserver joins a dataserver member to the gossip cluster.
func (c *testCluster) AddDataserver(id, rack string, free uint64) *membership.Membership {
	c.t.Helper()
	m := mustMember(c.t, c.key, membership.NodeMeta{
		ID: id, Role: depot.RoleDataserver, Addr: "127.0.0.1:" + fmt.Sprint(20000+len(c.ds)), Rack: rack, Free: free,
	}, c.ns.GossipAddr())
	c.ds = append(c.ds, m)
	return m
}

// WaitAlive polls until the nameserver's gossip view has n alive dataservers.
func (c *testCluster) WaitAlive(n int) {
	c.t.Helper()
	waitFor(c.t, 10*time.Second, fmt.Sprintf("%d alive dataservers", n), func() bool {
		alive := 0
		for _, m := range c.ns.Members() {
			if m.Meta.Role == depot.RoleDataserver && m.State == membership.StateAlive {
				alive++
			}
		}
		return alive == n
	})
}

// Start starts a nameserver on the cluster's directory (again, after Stop).
func (c *testCluster) Start(mod func(*Config)) {
	c.t.Helper()
	cfg := TestConfig(c.dir, c.key, c.ns)
	cfg.Logger = quiet
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { srv.Close() })
	c.srv = srv
	c.client = nsclient.New(srv.URL(), c.key, nil)
}

// Restart closes the nameserver and opens a new one on the same directory.
func (c *testCluster) Restart() {
	c.t.Helper()
	if err := c.srv.Close(); err != nil {
		c.t.Fatal(err)
	}
	c.Start(nil)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every 10ms until it holds, failing after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v still waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fid returns a well-formed fid text for tests.
func fid(vol, needle uint64) string {
	return depot.Fid{Volume: depot.VolumeID(vol), Needle: depot.NeedleID(needle), Cookie: 0x0c21e4b7}.String()
}

// object returns object metadata with one segment per size given.
func object(bucket, key string, firstNeedle uint64, sizes ...int64) depot.Object {
	o := depot.Object{Bucket: bucket, Key: key, ETag: "etag-" + key, ContentType: "image/jpeg"}
	for i, sz := range sizes {
		o.Segments = append(o.Segments, depot.Segment{Fid: fid(1, firstNeedle+uint64(i)), Size: sz})
		o.Size += sz
	}
	return o
}
