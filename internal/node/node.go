// Package node composes depot's roles with gossip membership: it starts a
// nameserver, a dataserver or a gateway together with its memberlist node,
// announces the role's HTTP address and free space in the node metadata,
// and stops both in order. cmd/depot and the test harness use it, so a
// process and a test start roles the same way.
//
// Local starts a whole cluster in one process (one nameserver, N
// dataservers, one gateway), which is what `depot server` runs.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"depot"
	"depot/client"
	"depot/dataserver"
	"depot/gateway"
	"depot/internal/auth"
	"depot/internal/membership"
	"depot/internal/tlsconf"
	"depot/nameserver"
	"depot/nameserver/nsclient"
	"depot/repair"
)

// Gossip is the membership part shared by every role.
type Gossip struct {
	// Key is the cluster key. Required.
	Key auth.Key
	// BindAddr is the gossip listen address (TCP and UDP). Default
	// "127.0.0.1:0".
	BindAddr string
	// AdvertiseAddr is the gossip address announced to others, when it
	// differs from BindAddr.
	AdvertiseAddr string
	// AdvertiseHTTP is the HTTP host:port announced in the node metadata,
	// when the listener's address (say 0.0.0.0:9331 in a container) is not
	// one the others can reach. Optional.
	AdvertiseHTTP string
	// Join lists gossip addresses of existing members.
	Join []string
	// Timing is the failure-detector preset.
	Timing membership.Timing
	// TLS, when not nil, is the cluster's mutual TLS for internal HTTP:
	// every role's server requires client certificates signed by the
	// cluster CA and every internal client uses https. Gossip is encrypted
	// with a key derived from Key whether or not TLS is on. Default nil:
	// plain HTTP.
	TLS *tlsconf.Cluster
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// httpAddr returns the HTTP address to announce for a listener at addr.
func (g Gossip) httpAddr(addr string) string {
	if g.AdvertiseHTTP != "" {
		return g.AdvertiseHTTP
	}
	return addr
}

func (g Gossip) config(meta membership.NodeMeta) membership.Config {
	bind := g.BindAddr
	if bind == "" {
		bind = "127.0.0.1:0"
	}
	return membership.Config{
		Name: meta.ID, BindAddr: bind, AdvertiseAddr: g.AdvertiseAddr, Key: g.Key,
		Meta: meta, Join: g.Join, Logger: g.Logger, Timing: g.Timing,
	}
}

// lazyMembers lets a role be built before its membership exists.
type lazyMembers struct {
	mu sync.Mutex
	m  *membership.Membership
}

func (l *lazyMembers) set(m *membership.Membership) {
	l.mu.Lock()
	l.m = m
	l.mu.Unlock()
}

// Members returns the gossip view, empty before the membership started.
func (l *lazyMembers) Members() []membership.Node {
	l.mu.Lock()
	m := l.m
	l.mu.Unlock()
	if m == nil {
		return nil
	}
	return m.Members()
}

// Nameserver is a running nameserver and its gossip node.
type Nameserver struct {
	Server *nameserver.Server
	Gossip *membership.Membership
}

// StartNameserver starts a nameserver and joins it to gossip.
func StartNameserver(ctx context.Context, g Gossip, cfg nameserver.Config, id string) (*Nameserver, error) {
	lazy := &lazyMembers{}
	cfg.Key = g.Key
	cfg.TLS = g.TLS
	cfg.Members = lazy
	ns, err := nameserver.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := ns.Start(); err != nil {
		ns.Close()
		return nil, err
	}
	gm, err := startGossip(ctx, g, membership.NodeMeta{Role: depot.RoleNameserver, ID: id, Addr: g.httpAddr(ns.Addr())},
		func(membership.Node) { ns.MembersChanged() })
	if err != nil {
		ns.Close()
		return nil, err
	}
	lazy.set(gm)
	return &Nameserver{Server: ns, Gossip: gm}, nil
}

// Close leaves gossip and stops the nameserver.
func (n *Nameserver) Close() error {
	return errors.Join(n.Gossip.Close(), n.Server.Close())
}

func startGossip(ctx context.Context, g Gossip, meta membership.NodeMeta, onChange func(membership.Node)) (*membership.Membership, error) {
	cfg := g.config(meta)
	cfg.OnChange = onChange
	gm, err := membership.New(cfg)
	if err != nil {
		return nil, err
	}
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := gm.Start(jctx); err != nil {
		gm.Close()
		return nil, err
	}
	return gm, nil
}

// Dataserver is a running dataserver and its gossip node.
type Dataserver struct {
	Server *dataserver.Server
	Gossip *membership.Membership
	Repair *repair.Worker
	rack   string
	addr   string // announced HTTP address, when not the listener's
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StatsInterval is how often a dataserver re-announces its free space.
const StatsInterval = 5 * time.Second

// StartDataserver opens a dataserver's store, serves it and joins gossip,
// announcing rack and free space, and starts its repair worker (package
// repair), configured by rc; rc's Node, Store, Key, Nameserver (found in
// gossip), Logger and Registerer are filled in here.
func StartDataserver(ctx context.Context, g Gossip, cfg dataserver.Config, rack string, rc repair.Config) (*Dataserver, error) {
	cfg.Key = g.Key
	cfg.TLS = g.TLS
	ds, err := dataserver.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := ds.Start(); err != nil {
		ds.Close()
		return nil, err
	}
	d := &Dataserver{Server: ds, rack: rack, addr: g.AdvertiseHTTP}
	var worker atomic.Pointer[repair.Worker]
	gm, err := startGossip(ctx, g, d.meta(cfg.ID), rejoinWatch(func() {
		if w := worker.Load(); w != nil {
			w.Rejoined()
		}
	}))
	if err != nil {
		ds.Close()
		return nil, err
	}
	d.Gossip = gm
	if err := ds.Registry().Register(membership.NewCollector(gm)); err != nil {
		gm.Close()
		ds.Close()
		return nil, fmt.Errorf("gossip metrics: %w", err)
	}
	rc.Node, rc.Store, rc.Key, rc.TLS = cfg.ID, ds.Store(), g.Key, g.TLS
	rc.Nameserver = NewResolver(FromGossip(gm, g.TLS), g.Key, g.TLS).Client
	rc.Registerer = ds.Registry()
	if rc.Logger == nil {
		rc.Logger = cfg.Logger
	}
	w, err := repair.New(rc)
	if err != nil {
		gm.Close()
		ds.Close()
		return nil, err
	}
	d.Repair = w
	worker.Store(w)
	w.Start()
	bg, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.wg.Go(func() { d.announce(bg, cfg.ID) })
	return d, nil
}

// rejoinWatch returns a gossip change callback that calls rejoined when a
// nameserver this node had seen down turns alive again: after a partition
// or a pause, this dataserver is back in the cluster, and the writes it
// missed meanwhile are to be caught up at once (repair.Worker.Rejoined).
func rejoinWatch(rejoined func()) func(membership.Node) {
	var mu sync.Mutex
	down := make(map[string]bool)
	return func(n membership.Node) {
		if n.Meta.Role != depot.RoleNameserver {
			return
		}
		mu.Lock()
		was := down[n.Meta.ID]
		down[n.Meta.ID] = n.State != membership.StateAlive
		mu.Unlock()
		if was && n.State == membership.StateAlive {
			rejoined()
		}
	}
}

func (d *Dataserver) meta(id string) membership.NodeMeta {
	st := d.Server.Stats()
	addr := d.addr
	if addr == "" {
		addr = d.Server.Addr()
	}
	return membership.NodeMeta{Role: depot.RoleDataserver, ID: id, Addr: addr, Rack: d.rack,
		Free: uint64(max(st.Free, 0)), Used: uint64(max(st.Used, 0))}
}

// announce refreshes the free-space figures in the gossip metadata.
func (d *Dataserver) announce(ctx context.Context, id string) {
	t := time.NewTicker(StatsInterval)
	defer t.Stop()
	last := d.meta(id)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := d.meta(id)
		if m == last {
			continue
		}
		if err := d.Gossip.UpdateMeta(ctx, m); err == nil {
			last = m
		}
	}
}

// Close leaves gossip, then stops the dataserver gracefully.
func (d *Dataserver) Close() error {
	d.cancel()
	d.wg.Wait()
	return errors.Join(d.Repair.Close(), d.Gossip.Close(), d.Server.Close())
}

// Kill stops the dataserver as a crash would look to the others: gossip
// stops without leaving, and the HTTP server and files are closed.
func (d *Dataserver) Kill() error {
	d.cancel()
	d.wg.Wait()
	return errors.Join(d.Repair.Close(), d.Gossip.Kill(), d.Server.Close())
}

// NameserverFinder returns the nameserver's base URL, e.g. from gossip.
type NameserverFinder func() (string, error)

// FromGossip finds the alive nameservers in the gossip view: their base
// URLs (https when tc is not nil), comma-separated and by id (several when
// they run as a raft group; nsclient takes them all and finds the leader).
func FromGossip(gm interface{ Members() []membership.Node }, tc *tlsconf.Cluster) NameserverFinder {
	return func() (string, error) {
		var found []membership.Node
		for _, n := range gm.Members() {
			if n.Meta.Role == depot.RoleNameserver && n.State == membership.StateAlive && n.Meta.Addr != "" {
				found = append(found, n)
			}
		}
		if len(found) == 0 {
			return "", fmt.Errorf("%w: no alive nameserver in gossip", depot.ErrNotEnoughNodes)
		}
		slices.SortFunc(found, func(a, b membership.Node) int { return strings.Compare(a.Meta.ID, b.Meta.ID) })
		urls := make([]string, len(found))
		for i, n := range found {
			urls[i] = tc.URL(n.Meta.Addr)
		}
		return strings.Join(urls, ","), nil
	}
}

// Fixed always answers url.
func Fixed(url string) NameserverFinder { return func() (string, error) { return url, nil } }

// Resolver is a nameserver client that finds the nameserver's address
// anew when it changes (a restarted nameserver may listen elsewhere).
type Resolver struct {
	find NameserverFinder
	key  auth.Key
	tls  *tlsconf.Cluster

	hc    *http.Client   // nil: nsclient's own
	local nsclient.Local // nil: none in this process

	mu  sync.Mutex
	url string
	cl  *nsclient.Client
}

// NewResolver returns a Resolver whose clients sign with key and, when tc
// is not nil, speak mutual TLS.
func NewResolver(find NameserverFinder, key auth.Key, tc *tlsconf.Cluster) *Resolver {
	return &Resolver{find: find, key: key, tls: tc}
}

// Client returns a client for the current nameserver.
func (r *Resolver) Client() (*nsclient.Client, error) {
	url, err := r.find()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cl == nil || url != r.url {
		if r.cl != nil {
			r.cl.CloseIdleConnections()
		}
		if r.hc != nil {
			r.url, r.cl = url, nsclient.New(url, r.key, r.hc)
		} else {
			r.url, r.cl = url, nsclient.NewTLS(url, r.key, r.tls)
		}
		if r.local != nil {
			r.cl.WithLocal(r.local)
		}
	}
	return r.cl, nil
}

var _ client.Nameserver = (*Resolver)(nil)

// Assign implements client.Nameserver.
func (r *Resolver) Assign(ctx context.Context, k, m, count int) (nsclient.Assignment, error) {
	c, err := r.Client()
	if err != nil {
		return nsclient.Assignment{}, err
	}
	return c.Assign(ctx, k, m, count)
}

// Volume implements client.Nameserver.
func (r *Resolver) Volume(ctx context.Context, id depot.VolumeID) (depot.Volume, error) {
	c, err := r.Client()
	if err != nil {
		return depot.Volume{}, err
	}
	return c.Volume(ctx, id)
}

// Missed implements client.Nameserver.
func (r *Resolver) Missed(ctx context.Context, fid depot.Fid, shards []int) error {
	c, err := r.Client()
	if err != nil {
		return err
	}
	return c.Missed(ctx, fid, shards)
}

// Gateway is a running gateway and its gossip node.
type Gateway struct {
	Server   *gateway.Gateway
	Gossip   *membership.Membership
	Client   *client.Client
	Resolver *Resolver
}

// GatewayConfig configures StartGateway.
type GatewayConfig struct {
	// ID is the gateway's node id. Required.
	ID string
	// Gateway is the HTTP side; its Client and Ready are filled in here.
	Gateway gateway.Config
	// Client configures the native client; Nameserver, Key and TLS are
	// filled in here.
	Client client.Config
	// Nameserver is the nameserver's base URL; empty finds it in gossip.
	Nameserver string
	// NameserverTransport, when set, carries every request to the
	// nameserver (httpx.InProcess in depot server); nil: TCP.
	NameserverTransport http.RoundTripper
	// NameserverLocal, when set, is a nameserver in this process that
	// answers the hot lookups directly (nsclient.Local; depot server).
	NameserverLocal nsclient.Local
}

// StartGateway joins gossip, builds a client that finds the nameserver
// through gossip (or the given URL) and serves the gateway.
func StartGateway(ctx context.Context, g Gossip, cfg GatewayConfig) (*Gateway, error) {
	gm, err := startGossip(ctx, g, membership.NodeMeta{Role: depot.RoleGateway, ID: cfg.ID}, nil)
	if err != nil {
		return nil, err
	}
	find := FromGossip(gm, g.TLS)
	if cfg.Nameserver != "" {
		find = Fixed(cfg.Nameserver)
	}
	res := NewResolver(find, g.Key, g.TLS)
	if cfg.NameserverTransport != nil {
		res.hc = &http.Client{Transport: cfg.NameserverTransport}
	}
	res.local = cfg.NameserverLocal
	cc := cfg.Client
	cc.Nameserver = res
	cc.Key, cc.TLS = g.Key, g.TLS
	if cc.Logger == nil {
		cc.Logger = g.Logger
	}
	cl, err := client.New(cc)
	if err != nil {
		gm.Close()
		return nil, err
	}
	gc := cfg.Gateway
	gc.Client = cl
	gc.S3.Namespace = res.Client
	if gc.Logger == nil {
		gc.Logger = g.Logger
	}
	gc.Ready = func(ctx context.Context) error {
		c, err := res.Client()
		if err != nil {
			return err
		}
		return c.Ready(ctx)
	}
	gw, err := gateway.New(gc)
	if err != nil {
		gm.Close()
		return nil, err
	}
	if err := gw.Registry().Register(membership.NewCollector(gm)); err != nil {
		gm.Close()
		return nil, fmt.Errorf("gossip metrics: %w", err)
	}
	if err := gw.Start(); err != nil {
		gm.Close()
		return nil, err
	}
	meta := gm.Meta()
	meta.Addr = g.httpAddr(gw.Addr())
	if err := gm.UpdateMeta(ctx, meta); err != nil {
		gw.Close(ctx)
		gm.Close()
		return nil, err
	}
	return &Gateway{Server: gw, Gossip: gm, Client: cl, Resolver: res}, nil
}

// Close stops serving (waiting for requests in flight up to ctx) and leaves
// gossip.
func (g *Gateway) Close(ctx context.Context) error {
	return errors.Join(g.Server.Close(ctx), g.Gossip.Close())
}
