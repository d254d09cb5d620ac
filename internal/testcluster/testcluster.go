// Package testcluster starts a whole depot cluster in-process for tests: a
// nameserver, N dataservers and a gateway on 127.0.0.1 with ephemeral ports
// and temporary directories, with gossip timings short enough that a killed
// dataserver is seen dead within a second or two. Every test of a role that
// needs the others uses it.
package testcluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"depot/client"
	"depot/dataserver"
	"depot/internal/auth"
	"depot/internal/membership"
	"depot/internal/node"
	"depot/nameserver/nsclient"
	"depot/repair"
)

// Options describe the cluster. Zero fields take the defaults beside them.
type Options struct {
	Dataservers int                    // default 6
	Racks       int                    // default 0: no racks
	K, M        int                    // default 4+2
	Unit        int                    // stripe unit; default 64 KiB, so tests cross many stripes
	SegmentSize int64                  // default 1 MiB, so tests cross many segments
	MinWritable int                    // default 2
	Fsync       dataserver.FsyncPolicy // default none: in-process kills do not lose the page cache
	Dir         string                 // default t.TempDir()
	Verbose     bool                   // log at debug level to stderr (also DEPOT_TEST_LOG=1)
	RepairAfter time.Duration          // default 2s: a dead dataserver's shards are rebuilt after it
	Repair      repair.Config          // repair workers' rate and intervals; zero: short test values
	Domain      string                 // S3 domain for virtual-hosted-style requests; default none

	// RebalanceInterval, when positive, turns automatic rebalancing on.
	RebalanceInterval time.Duration

	// Nameservers is how many nameservers run; above 1, a raft group
	// whose raft connections go through a FaultLayer each (Cluster.Raft).
	Nameservers int
	// SnapshotThreshold, when set, replaces the raft group's snapshot
	// threshold (nameserver.TestRaftConfig: 2048 entries).
	SnapshotThreshold uint64
}

// Cluster is a running in-process cluster.
type Cluster struct {
	*node.Local
	Opts     Options
	Key      auth.Key
	User     string
	Password string
	t        testing.TB

	// Raft holds nameserver i's fault-injecting raft layer (the latest,
	// across restarts) when Options.Nameservers > 1.
	raftMu sync.Mutex
	raft   map[int]*FaultLayer
}

// Raft returns the fault-injecting raft layer of nameserver i (nil when
// the nameserver runs alone).
func (c *Cluster) Raft(i int) *FaultLayer {
	c.raftMu.Lock()
	defer c.raftMu.Unlock()
	return c.raft[i]
}

// Defaults for Options.
const (
	DefaultUnit        = 64 << 10
	DefaultSegmentSize = 1 << 20
)

// New starts a cluster and registers its shutdown with t.Cleanup.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := Start(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Logf("cluster close: %v", err)
		}
	})
	return c
}

// Start starts a cluster without registering cleanup.
func Start(t testing.TB, opts Options) (*Cluster, error) {
	if opts.Dataservers == 0 {
		opts.Dataservers = 6
	}
	if opts.K == 0 && opts.M == 0 {
		opts.K, opts.M = 4, 2
	}
	if opts.Unit == 0 {
		opts.Unit = DefaultUnit
	}
	if opts.SegmentSize == 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.MinWritable == 0 {
		opts.MinWritable = 2
	}
	if opts.Fsync == "" {
		opts.Fsync = dataserver.FsyncNone
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.RepairAfter == 0 {
		opts.RepairAfter = 2 * time.Second
	}
	level := slog.Level(100) // silent: tests assert, logs only distract
	if opts.Verbose || os.Getenv("DEPOT_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	key, err := auth.GenerateKey()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Opts: opts, Key: key, User: "TESTROOT", Password: "test-secret-" + fmt.Sprint(time.Now().UnixNano()), t: t,
		raft: make(map[int]*FaultLayer)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := node.StartLocal(ctx, node.LocalConfig{
		Dir: opts.Dir, Key: key, RootUser: c.User, RootPassword: c.Password,
		Dataservers: opts.Dataservers, Racks: opts.Racks, K: opts.K, M: opts.M, Unit: opts.Unit,
		SegmentSize: opts.SegmentSize, MinWritable: opts.MinWritable, GatewayAddr: "127.0.0.1:0",
		Timing: membership.TimingTest, Fsync: opts.Fsync, Logger: log,
		RepairAfter: opts.RepairAfter, Repair: opts.Repair, Domain: opts.Domain,
		RebalanceInterval:     opts.RebalanceInterval,
		Nameservers:           opts.Nameservers,
		RaftSnapshotThreshold: opts.SnapshotThreshold,
		RaftLayer: func(i int, inner raft.StreamLayer) raft.StreamLayer {
			l := NewFaultLayer(inner)
			c.raftMu.Lock()
			c.raft[i] = l
			c.raftMu.Unlock()
			return l
		},
	})
	if err != nil {
		return nil, err
	}
	c.Local = l
	return c, nil
}

// Client returns the gateway's native client.
func (c *Cluster) Client() *client.Client { return c.GW.Client }

// NS returns a nameserver API client.
func (c *Cluster) NSClient() *nsclient.Client {
	return nsclient.New(c.Local.NameserverURLs(), c.Key, nil)
}

// WaitDead polls until the nameserver's gossip view reports dataserver i as
// not alive, or fails the test after a deadline.
func (c *Cluster) WaitDead(i int) {
	c.t.Helper()
	id := node.DataserverID(i)
	c.waitFor(fmt.Sprintf("%s seen dead", id), func() bool {
		for _, n := range c.Local.ServingNameserver().Gossip.Members() {
			if n.Meta.ID == id {
				return n.State == membership.StateDead || n.State == membership.StateLeft
			}
		}
		return false
	})
}

// WaitAlive polls until dataserver i is alive in the nameserver's view,
// with its current address recorded.
func (c *Cluster) WaitAlive(i int) {
	c.t.Helper()
	id := node.DataserverID(i)
	d := c.Dataserver(i)
	if d == nil {
		c.t.Fatalf("WaitAlive: dataserver %d is not running", i)
	}
	addr := d.Server.Addr()
	c.waitFor(fmt.Sprintf("%s seen alive at %s", id, addr), func() bool {
		ns := c.Local.ServingNameserver()
		for _, n := range ns.Gossip.Members() {
			if n.Meta.ID == id && n.State == membership.StateAlive && n.Meta.Addr == addr {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return ns.Server.SyncMembers(ctx) == nil
			}
		}
		return false
	})
}

func (c *Cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
