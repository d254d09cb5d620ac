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
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"depot/client"
	"depot/dataserver"
	"depot/gateway"
	"depot/gateway/s3/sse"
	"depot/internal/auth"
	"depot/internal/membership"
	"depot/internal/node"
	"depot/internal/tlsconf"
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
	SSEKeys     *sse.Keyring           // gateway's SSE-S3 master keys; default one new random key
	Gateway     gateway.Config         // gateway limits and S3 settings (node.LocalConfig.Gateway)

	// RebalanceInterval, when positive, turns automatic rebalancing on.
	RebalanceInterval time.Duration

	// TLS turns on mutual TLS between the roles and HTTPS on the gateway,
	// with a CA and a certificate for 127.0.0.1 made in Dir/certs
	// (Cluster.CertDir).
	TLS bool
	// Key is the cluster key; default a random one.
	Key auth.Key
	// Password is the gateway's root password; default a random one.
	Password string
	// AdminKey is the nameserver's admin credential; default none (the
	// cluster key serves).
	AdminKey auth.Key
	// MetricsToken, when set, guards every role's /metrics.
	MetricsToken string
	// Logger receives every role's logs; default silent, or stderr with
	// Verbose.
	Logger *slog.Logger
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
	Opts Options
	Key  auth.Key
	// CertDir holds the certificates of a TLS cluster (tlsconf.WriteCerts
	// for host "127.0.0.1"); TLS is the nodes' mutual TLS, nil without.
	CertDir  string
	TLS      *tlsconf.Cluster
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
	if opts.SSEKeys == nil {
		text, err := sse.GenerateKeyringText()
		if err != nil {
			return nil, err
		}
		if opts.SSEKeys, err = sse.ParseKeyring(text); err != nil {
			return nil, err
		}
	}
	level := slog.Level(100) // silent: tests assert, logs only distract
	if opts.Verbose || os.Getenv("DEPOT_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	key := opts.Key
	if key == nil {
		var err error
		if key, err = auth.GenerateKey(); err != nil {
			return nil, err
		}
	}
	c := &Cluster{Opts: opts, Key: key, User: "TESTROOT", Password: opts.Password, t: t, raft: make(map[int]*FaultLayer)}
	if c.Password == "" {
		c.Password = "test-secret-" + fmt.Sprint(time.Now().UnixNano())
	}
	var gwTLS *tlsconf.Cert
	if opts.TLS {
		c.CertDir = filepath.Join(opts.Dir, "certs")
		if _, err := tlsconf.WriteCerts(c.CertDir, []string{"127.0.0.1"}); err != nil {
			return nil, err
		}
		f := tlsconf.NodeFiles(c.CertDir, "127.0.0.1")
		tc, err := tlsconf.LoadCluster(f)
		if err != nil {
			return nil, err
		}
		if gwTLS, err = tlsconf.LoadCert(f.Cert, f.Key); err != nil {
			return nil, err
		}
		c.TLS = tc
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := node.StartLocal(ctx, node.LocalConfig{
		Dir: opts.Dir, Key: key, RootUser: c.User, RootPassword: c.Password,
		Dataservers: opts.Dataservers, Racks: opts.Racks, K: opts.K, M: opts.M, Unit: opts.Unit,
		SegmentSize: opts.SegmentSize, MinWritable: opts.MinWritable, GatewayAddr: "127.0.0.1:0",
		Timing: membership.TimingTest, Fsync: opts.Fsync, Logger: log,
		RepairAfter: opts.RepairAfter, Repair: opts.Repair, Domain: opts.Domain,
		SSEKeys: opts.SSEKeys, SSECOverHTTP: true, // the harness speaks plain HTTP on loopback
		RebalanceInterval: opts.RebalanceInterval, Gateway: opts.Gateway,
		TLS: c.TLS, GatewayTLS: gwTLS, AdminKey: opts.AdminKey, MetricsToken: opts.MetricsToken,
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

// NSClient returns a nameserver API client that signs with the cluster
// key (and speaks the cluster's TLS).
func (c *Cluster) NSClient() *nsclient.Client {
	return nsclient.NewTLS(c.Local.NameserverURLs(), c.Key, c.TLS)
}

// AdminClient returns a nameserver API client that signs with the admin
// credential (Options.AdminKey, else the cluster key).
func (c *Cluster) AdminClient() *nsclient.Client {
	k := c.Opts.AdminKey
	if k == nil {
		k = c.Key
	}
	return nsclient.NewTLS(c.Local.NameserverURLs(), k, c.TLS)
}

// HTTPClient returns a client that trusts the cluster CA and presents a
// node certificate (a plain client without TLS). It does not sign
// requests.
func (c *Cluster) HTTPClient() *http.Client {
	return &http.Client{Transport: c.TLS.Transport(), Timeout: 30 * time.Second}
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
