package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"depot"
	"depot/client"
	"depot/dataserver"
	"depot/gateway"
	"depot/gateway/s3/sse"
	"depot/internal/auth"
	"depot/internal/httpx"
	"depot/internal/membership"
	"depot/internal/tlsconf"
	"depot/nameserver"
	"depot/nameserver/nsclient"
	"depot/repair"
)

// LocalConfig configures a whole cluster in one process.
type LocalConfig struct {
	// Dir holds every role's data: Dir/nameserver, Dir/ds1 ... Required.
	Dir string
	// Key is the cluster key. Required.
	Key auth.Key
	// RootUser and RootPassword are the gateway's root credentials.
	// Required.
	RootUser, RootPassword string
	// Dataservers is how many dataservers run. Default 6.
	Dataservers int
	// Racks, when above 1, spreads the dataservers over that many racks.
	Racks int
	// K and M are the erasure scheme. Default 4 and 2.
	K, M int
	// Unit is the stripe unit in bytes. Default 1 MiB.
	Unit int
	// SegmentSize is the client's segment size. Default
	// client.DefaultSegmentSize.
	SegmentSize int64
	// MinWritable is how many writable volumes the nameserver keeps.
	// Default the nameserver's.
	MinWritable int
	// GatewayAddr is the gateway's listen address. Default
	// gateway.DefaultAddr.
	GatewayAddr string
	// Domain enables virtual-hosted-style S3 requests on the gateway:
	// a Host of "<bucket>.<Domain>" names the bucket.
	Domain string
	// SSEKeys are the gateway's SSE-S3 master keys (s3.Config.Keyring).
	// Nil: SSE-S3 is off; SSE-C works without.
	SSEKeys *sse.Keyring
	// SSECOverHTTP lets the gateway take SSE-C keys over plain HTTP
	// (s3.Config.SSECOverHTTP). Default false.
	SSECOverHTTP bool
	// Gateway configures the gateway's limits and S3 settings (timeouts,
	// rate limits, S3 size limits); its Addr, root credentials, Client,
	// S3.Domain, S3.Keyring, TLS and MetricsToken come from the fields
	// here.
	Gateway gateway.Config
	// Timing is the gossip failure-detector preset. Default TimingLocal.
	Timing membership.Timing
	// Fsync is the dataservers' durability policy. Default group commit.
	Fsync dataserver.FsyncPolicy
	// RepairAfter is how long a dataserver stays down before its shards
	// are rebuilt elsewhere. Default the nameserver's (10m).
	RepairAfter time.Duration
	// RebalanceInterval, when positive, lets the nameserver start
	// rebalance runs on its own (nameserver.Config.RebalanceInterval).
	// Default 0: off.
	RebalanceInterval time.Duration
	// Repair configures the dataservers' repair workers (rate, intervals);
	// with TimingTest, zero intervals get short test values.
	Repair repair.Config
	// TLS, when not nil, is mutual TLS for the internal traffic between
	// the roles (Gossip.TLS). Default nil: plain HTTP on loopback.
	TLS *tlsconf.Cluster
	// GatewayTLS, when not nil, makes the gateway serve HTTPS with this
	// certificate (gateway.Config.TLS). Default nil: plain HTTP.
	GatewayTLS *tlsconf.Cert
	// AdminKey is the nameserver's admin credential
	// (nameserver.Config.AdminKey). Default nil: the cluster key.
	AdminKey auth.Key
	// MetricsToken, when not empty, is the bearer token every role's
	// /metrics requires. Default empty: open.
	MetricsToken string
	// Nameservers is how many nameservers run: 1 (the default) runs one
	// alone, as before; 3 or 5 run a raft group (nameserver.RaftConfig),
	// and the gateway and the dataservers talk to any of them.
	Nameservers int
	// RaftLayer, when set, wraps each nameserver's raft listener (tests
	// inject faults through it); i is the nameserver's index.
	RaftLayer func(i int, inner raft.StreamLayer) raft.StreamLayer
	// RaftSnapshotThreshold, when set, replaces the nameservers' raft
	// SnapshotThreshold (tests of catching up from a snapshot).
	RaftSnapshotThreshold uint64
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *LocalConfig) setDefaults() error {
	if c.Dir == "" || len(c.Key) == 0 || c.RootUser == "" || c.RootPassword == "" {
		return errors.New("node: LocalConfig needs Dir, Key, RootUser and RootPassword")
	}
	if c.Dataservers == 0 {
		c.Dataservers = 6
	}
	if c.K == 0 && c.M == 0 {
		c.K, c.M = 4, 2
	}
	if c.Unit == 0 {
		c.Unit = 1 << 20
	}
	if c.GatewayAddr == "" {
		c.GatewayAddr = gateway.DefaultAddr
	}
	if c.Timing == 0 {
		c.Timing = membership.TimingLocal
	}
	if c.Nameservers == 0 {
		c.Nameservers = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// testVolumeTTL is the gateway client's VolumeTTL with TimingTest; the
// repair workers keep the old copy of a moved shard twice as long.
const testVolumeTTL = time.Second

// Local is a whole cluster running in this process.
type Local struct {
	cfg LocalConfig

	// NS is the first nameserver (the only one unless
	// LocalConfig.Nameservers > 1; see Nameserver(i) for the others).
	NS *Nameserver
	GW *Gateway

	nsCfg nameserver.Config // to restart the nameserver
	// nsRun is the running nameserver, which the gateway calls
	// in-process; nil while it is down.
	nsRun atomic.Pointer[runningNS]

	mu  sync.Mutex
	ds  []*Dataserver // nil where stopped
	nss []*Nameserver // nil where stopped
	// per nameserver: addresses kept across restarts
	nsAddrs []nsAddrs
}

type nsAddrs struct{ http, gossip, raft string }

// StartLocal starts a nameserver, the dataservers and a gateway, and waits
// until the nameserver sees enough dataservers to place a volume.
func StartLocal(ctx context.Context, cfg LocalConfig) (*Local, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	l := &Local{cfg: cfg, ds: make([]*Dataserver, cfg.Dataservers)}
	nc := nameserver.DefaultConfig()
	nc.Addr = "127.0.0.1:0"
	nc.DefaultK, nc.DefaultM, nc.Unit = cfg.K, cfg.M, cfg.Unit
	if cfg.MinWritable > 0 {
		nc.MinWritable = cfg.MinWritable
	}
	if cfg.Timing == membership.TimingTest {
		nc.SyncInterval = 50 * time.Millisecond
		nc.ShutdownTimeout = 2 * time.Second
		nc.RepairInterval, nc.DeleteGrace = 200*time.Millisecond, time.Second
		nc.ReadHoldMax = 5 * time.Second
		nc.LifecycleInterval = 200 * time.Millisecond
	}
	if cfg.RepairAfter > 0 {
		nc.RepairAfter = cfg.RepairAfter
	}
	nc.RebalanceInterval = cfg.RebalanceInterval
	nc.AdminKey, nc.MetricsToken = cfg.AdminKey, cfg.MetricsToken
	nc.Logger = cfg.Logger.With("role", "nameserver")
	l.nsCfg = nc
	l.nss = make([]*Nameserver, cfg.Nameservers)
	l.nsAddrs = make([]nsAddrs, cfg.Nameservers)
	if err := l.startNameservers(ctx); err != nil {
		l.Close(context.Background())
		return nil, err
	}
	ns := l.NS
	for i := range cfg.Dataservers {
		if err := l.StartDataserver(ctx, i); err != nil {
			l.Close(context.Background())
			return nil, err
		}
	}
	gwc := cfg.Gateway
	gwc.Addr, gwc.RootUser, gwc.RootPassword, gwc.S3.Domain = cfg.GatewayAddr, cfg.RootUser, cfg.RootPassword, cfg.Domain
	gwc.S3.Keyring, gwc.S3.SSECOverHTTP = cfg.SSEKeys, cfg.SSECOverHTTP
	gwc.TLS, gwc.MetricsToken = cfg.GatewayTLS, cfg.MetricsToken
	gc := GatewayConfig{
		ID:         "gw1",
		Gateway:    gwc,
		Client:     client.Config{K: cfg.K, M: cfg.M, SegmentSize: cfg.SegmentSize},
		Nameserver: l.NameserverURLs(),
	}
	if cfg.Nameservers <= 1 {
		// One nameserver: the gateway reaches it by a call, not a socket.
		gc.NameserverTransport = httpx.InProcess{Handler: l.nameserverAPI}
		gc.NameserverLocal = localNS{l}
	}
	if cfg.Timing == membership.TimingTest {
		gc.Client.VolumeTTL = testVolumeTTL
	}
	gw, err := StartGateway(ctx, l.gossip([]string{ns.Gossip.GossipAddr()}, "gateway"), gc)
	if err != nil {
		l.Close(context.Background())
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	l.GW = gw
	if err := l.WaitReady(ctx); err != nil {
		l.Close(context.Background())
		return nil, err
	}
	return l, nil
}

func (l *Local) gossip(join []string, role string) Gossip {
	return Gossip{Key: l.cfg.Key, BindAddr: "127.0.0.1:0", Join: join, Timing: l.cfg.Timing,
		Logger: l.cfg.Logger.With("role", role), TLS: l.cfg.TLS}
}

// DataserverID returns the node id of dataserver i.
func DataserverID(i int) string { return fmt.Sprintf("ds%d", i+1) }

// DataserverDir returns the data directory of dataserver i.
func (l *Local) DataserverDir(i int) string { return filepath.Join(l.cfg.Dir, DataserverID(i)) }

// StartDataserver starts (or restarts) dataserver i on its directory.
func (l *Local) StartDataserver(ctx context.Context, i int) error {
	return l.StartDataserverAt(ctx, i, "127.0.0.1:0")
}

// StartDataserverAt is StartDataserver listening on addr: a restart on
// the address it had, as a real host comes back, where writers that
// cached it reach it again.
func (l *Local) StartDataserverAt(ctx context.Context, i int, addr string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ds[i] != nil {
		return fmt.Errorf("dataserver %d is running", i)
	}
	dir := l.DataserverDir(i)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dc := dataserver.DefaultConfig()
	dc.ID = DataserverID(i)
	dc.Dirs = []string{dir}
	dc.Addr = addr
	if l.cfg.Fsync != "" {
		dc.Fsync = l.cfg.Fsync
	}
	dc.Logger = l.cfg.Logger.With("role", "dataserver")
	dc.MetricsToken = l.cfg.MetricsToken
	rack := ""
	if l.cfg.Racks > 1 {
		rack = fmt.Sprintf("rack%d", i%l.cfg.Racks+1)
	}
	rc := l.cfg.Repair
	rc.Logger = dc.Logger
	if l.cfg.Timing == membership.TimingTest {
		if rc.Interval == 0 {
			rc.Interval = 200 * time.Millisecond
		}
		if rc.AntiEntropyInterval == 0 {
			rc.AntiEntropyInterval = 2 * time.Second
		}
		if rc.ScrubInterval == 0 {
			rc.ScrubInterval = time.Second
		}
		if rc.ScrubRate == 0 {
			rc.ScrubRate = 64 << 20
		}
		if rc.MoveSettle == 0 {
			rc.MoveSettle = 2 * testVolumeTTL
		}
	}
	var join []string
	for _, n := range l.nss {
		if n != nil {
			join = append(join, n.Gossip.GossipAddr())
		}
	}
	ds, err := StartDataserver(ctx, l.gossip(join, "dataserver"), dc, rack, rc)
	if err != nil {
		return fmt.Errorf("start dataserver %s: %w", dc.ID, err)
	}
	l.ds[i] = ds
	return nil
}

// Dataserver returns dataserver i, or nil when it is stopped.
func (l *Local) Dataserver(i int) *Dataserver {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ds[i]
}

// Dataservers returns how many dataserver slots the cluster has.
func (l *Local) Dataservers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ds)
}

// AddDataserver adds a dataserver slot and starts a new, empty dataserver
// in it; it returns the slot's index.
func (l *Local) AddDataserver(ctx context.Context) (int, error) {
	l.mu.Lock()
	i := len(l.ds)
	l.ds = append(l.ds, nil)
	l.mu.Unlock()
	if err := l.StartDataserver(ctx, i); err != nil {
		return i, err
	}
	return i, nil
}

// KillDataserver stops dataserver i as a crash would: no gossip leave.
func (l *Local) KillDataserver(i int) error {
	if d := l.take(i); d != nil {
		return d.Kill()
	}
	return nil
}

// StopDataserver stops dataserver i gracefully.
func (l *Local) StopDataserver(i int) error {
	if d := l.take(i); d != nil {
		return d.Close()
	}
	return nil
}

// take removes dataserver i from the running set and returns it.
func (l *Local) take(i int) *Dataserver {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.ds[i]
	l.ds[i] = nil
	return d
}

// Endpoint returns the gateway's base URL (https with GatewayTLS).
func (l *Local) Endpoint() string { return l.GW.Server.URL() }

// Reload reads the gateway's and the internal TLS certificates again
// (SIGHUP in depot server). A failure keeps the old certificate in use.
func (l *Local) Reload() error {
	err := l.GW.Server.Reload()
	if ierr := l.cfg.TLS.Reload(); ierr != nil {
		l.cfg.Logger.Error("internal TLS certificate reload failed; the old one stays in use", "err", ierr)
		err = errors.Join(err, ierr)
	}
	return err
}

// WaitReady waits until the nameserver (in a raft group: a leader) is
// ready.
func (l *Local) WaitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, alive := false, 0
		if n := l.ServingNameserver(); n != nil && n.Server.IsLeader() {
			ok, alive = n.Server.Ready()
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not ready after 60s: %d dataservers alive", alive)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close stops the gateway (letting requests finish up to ctx), the
// dataservers and the nameserver.
func (l *Local) Close(ctx context.Context) error {
	var errs []error
	if l.GW != nil {
		errs = append(errs, l.GW.Close(ctx))
	}
	l.mu.Lock()
	ds := l.ds
	l.ds = make([]*Dataserver, len(ds))
	l.mu.Unlock()
	var wg sync.WaitGroup
	dsErrs := make([]error, len(ds))
	for i, d := range ds {
		if d != nil {
			wg.Go(func() { dsErrs[i] = d.Close() })
		}
	}
	wg.Wait()
	errs = append(errs, dsErrs...)
	l.nsRun.Store(nil)
	l.mu.Lock()
	nss := l.nss
	l.nss = make([]*Nameserver, len(nss))
	l.mu.Unlock()
	nsErrs := make([]error, len(nss))
	for i, n := range nss {
		if n != nil {
			wg.Go(func() { nsErrs[i] = n.Close() })
		}
	}
	wg.Wait()
	errs = append(errs, nsErrs...)
	return errors.Join(errs...)
}

// CrashNameserver stops the nameserver as a crash would look to the
// others (gossip stops without leaving) and restarts it on the same
// directory, HTTP address and gossip address, so that its database must
// carry every decision over.
func (l *Local) CrashNameserver(ctx context.Context) error {
	old := l.Nameserver(0)
	l.setNameserverAPI(nil)
	// A crash does not wait for requests in flight: an HTTP shutdown that
	// runs out of time is no failure here. A database that did not close
	// shows up below, as a restart that cannot open it.
	if err := errors.Join(old.Gossip.Kill(), old.Server.Close()); err != nil {
		l.cfg.Logger.Warn("crash nameserver: close", "err", err)
	}
	l.takeNameserver(0)
	if err := l.startNameserver(ctx, 0); err != nil {
		return fmt.Errorf("restart nameserver: %w", err)
	}
	return l.WaitReady(ctx)
}

// runningNS is the nameserver that runs in l now: its API handler for
// the gateway's in-process transport, and the server for its direct
// lookups (nsclient.Local).
type runningNS struct {
	api http.Handler
	srv *nameserver.Server
}

// setNameserverAPI makes ns the nameserver the gateway calls in-process
// (nil: none is running).
func (l *Local) setNameserverAPI(ns *Nameserver) {
	if ns == nil {
		l.nsRun.Store(nil)
		return
	}
	l.nsRun.Store(&runningNS{api: ns.Server.Handler(), srv: ns.Server})
}

// nameserverAPI returns the running nameserver's API handler.
func (l *Local) nameserverAPI() (http.Handler, error) {
	if r := l.nsRun.Load(); r != nil {
		return r.api, nil
	}
	return nil, httpx.ErrNoHandler
}

// localNS is nsclient.Local over whichever nameserver runs in l now.
type localNS struct{ l *Local }

func (n localNS) server() (*nameserver.Server, error) {
	if r := n.l.nsRun.Load(); r != nil {
		return r.srv, nil
	}
	return nil, httpx.ErrNoHandler
}

func (n localNS) IsLeader() bool {
	s, err := n.server()
	return err == nil && s.IsLeader()
}

func (n localNS) GetObject(ctx context.Context, bucket, key string) (depot.Object, error) {
	s, err := n.server()
	if err != nil {
		return depot.Object{}, err
	}
	return s.GetObject(ctx, bucket, key)
}

func (n localNS) PutObject(ctx context.Context, o depot.Object) (nsclient.PutResult, error) {
	s, err := n.server()
	if err != nil {
		return nsclient.PutResult{}, err
	}
	return s.PutObject(ctx, o)
}

func (n localNS) Bucket(ctx context.Context, name string) (nsclient.Bucket, error) {
	s, err := n.server()
	if err != nil {
		return nsclient.Bucket{}, err
	}
	return s.Bucket(ctx, name)
}
