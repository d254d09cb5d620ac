package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"depot/internal/membership"
	"depot/nameserver"
)

// NameserverID returns the id of nameserver i.
func NameserverID(i int) string { return fmt.Sprintf("ns%d", i+1) }

// NameserverDir returns the directory of nameserver i: Dir/nameserver
// when it runs alone, Dir/ns1, Dir/ns2 ... in a raft group.
func (l *Local) NameserverDir(i int) string {
	if l.cfg.Nameservers == 1 {
		return filepath.Join(l.cfg.Dir, "nameserver")
	}
	return filepath.Join(l.cfg.Dir, NameserverID(i))
}

// startNameservers starts every nameserver: in a raft group, the raft
// listeners first, so that the group is bootstrapped with their addresses.
func (l *Local) startNameservers(ctx context.Context) error {
	if l.cfg.Nameservers > 1 {
		for i := range l.nss {
			ln, err := nameserver.ListenRaft("127.0.0.1:0", "")
			if err != nil {
				return err
			}
			ln.Close() // reopened by startNameserver on the same port
			l.nsAddrs[i].raft = ln.Addr().String()
		}
	}
	for i := range l.nss {
		if err := l.startNameserver(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// peers returns the raft group's members.
func (l *Local) peers() []nameserver.Peer {
	var out []nameserver.Peer
	for i, a := range l.nsAddrs {
		out = append(out, nameserver.Peer{ID: NameserverID(i), Addr: a.raft})
	}
	return out
}

// startNameserver starts (or restarts) nameserver i on its directory and,
// after a restart, on its former addresses.
func (l *Local) startNameserver(ctx context.Context, i int) error {
	l.mu.Lock()
	running := l.nss[i] != nil
	addrs := l.nsAddrs[i]
	var join []string
	for j, n := range l.nss {
		if n != nil && j != i {
			join = append(join, n.Gossip.GossipAddr())
		}
	}
	for _, d := range l.ds {
		if d != nil {
			join = append(join, d.Gossip.GossipAddr())
		}
	}
	l.mu.Unlock()
	if running {
		return fmt.Errorf("nameserver %d is running", i)
	}
	nc := l.nsCfg
	nc.Dir = l.NameserverDir(i)
	if err := os.MkdirAll(nc.Dir, 0o755); err != nil {
		return err
	}
	if addrs.http != "" {
		nc.Addr = addrs.http
	}
	g := l.gossip(join, "nameserver")
	if addrs.gossip != "" {
		g.BindAddr = addrs.gossip
	}
	var ns *Nameserver
	var err error
	for attempt := 0; ; attempt++ { // the ports may take a moment to be free again
		if l.cfg.Nameservers > 1 {
			if nc.Raft, err = l.raftConfig(i); err != nil {
				return err
			}
		}
		ns, err = StartNameserver(ctx, g, nc, NameserverID(i))
		if err == nil || addrs.http == "" || attempt == 50 {
			break
		}
		if nc.Raft.Layer != nil {
			nc.Raft.Layer.Close()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("start nameserver %s: %w", NameserverID(i), err)
	}
	l.mu.Lock()
	l.nss[i] = ns
	l.nsAddrs[i].http, l.nsAddrs[i].gossip = ns.Server.Addr(), ns.Gossip.GossipAddr()
	if i == 0 || l.NS == nil {
		l.NS = ns
	}
	l.mu.Unlock()
	if i == 0 && l.cfg.Nameservers <= 1 {
		l.setNameserverAPI(ns)
	}
	return nil
}

// raftConfig returns nameserver i's raft configuration, with its listener
// open on its raft address.
func (l *Local) raftConfig(i int) (nameserver.RaftConfig, error) {
	ln, err := nameserver.ListenRaft(l.nsAddrs[i].raft, "")
	if err != nil {
		return nameserver.RaftConfig{}, err
	}
	var layer raft.StreamLayer = ln
	if l.cfg.RaftLayer != nil {
		layer = l.cfg.RaftLayer(i, ln)
	}
	rc := nameserver.DefaultRaftConfig()
	if l.cfg.Timing == membership.TimingTest {
		rc = nameserver.TestRaftConfig("", nil, nil)
	}
	rc.ID, rc.Layer, rc.Peers, rc.Addr = NameserverID(i), layer, l.peers(), l.nsAddrs[i].raft
	if l.cfg.RaftSnapshotThreshold > 0 {
		rc.SnapshotThreshold = l.cfg.RaftSnapshotThreshold
	}
	return rc, nil
}

// Nameserver returns nameserver i, or nil when it is stopped.
func (l *Local) Nameserver(i int) *Nameserver {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nss[i]
}

// Nameservers returns how many nameserver slots the cluster has.
func (l *Local) Nameservers() int { return len(l.nss) }

// NameserverURLs returns the nameservers' base URLs, comma-separated, as
// nsclient.New takes them.
func (l *Local) NameserverURLs() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var urls []string
	for _, a := range l.nsAddrs {
		if a.http != "" {
			urls = append(urls, l.cfg.TLS.URL(a.http))
		}
	}
	return strings.Join(urls, ",")
}

// Leader returns the index of the running nameserver that leads (serves
// the API itself), or -1.
func (l *Local) Leader() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, n := range l.nss {
		if n != nil && n.Server.IsLeader() {
			return i
		}
	}
	return -1
}

// StopNameserver stops nameserver i gracefully (gossip leaves).
func (l *Local) StopNameserver(i int) error {
	if n := l.takeNameserver(i); n != nil {
		return n.Close()
	}
	return nil
}

// KillNameserver stops nameserver i as a crash looks to the others: gossip
// stops without leaving, raft and the HTTP server stop.
func (l *Local) KillNameserver(i int) error {
	if n := l.takeNameserver(i); n != nil {
		return errors.Join(n.Gossip.Kill(), n.Server.Kill())
	}
	return nil
}

// StartNameserver restarts nameserver i on its directory and addresses.
func (l *Local) StartNameserver(ctx context.Context, i int) error { return l.startNameserver(ctx, i) }

func (l *Local) takeNameserver(i int) *Nameserver {
	if i == 0 {
		l.setNameserverAPI(nil)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.nss[i]
	l.nss[i] = nil
	return n
}

// ServingNameserver returns a running nameserver, the leader when there is one.
func (l *Local) ServingNameserver() *Nameserver {
	l.mu.Lock()
	defer l.mu.Unlock()
	var any *Nameserver
	for _, n := range l.nss {
		if n == nil {
			continue
		}
		if n.Server.IsLeader() {
			return n
		}
		any = n
	}
	return any
}

// WipeNameservers stops every nameserver, deletes their directories and
// starts them again empty, on the same addresses (a raft group is
// bootstrapped anew): the loss of the nameservers' state, for restore
// tests.
func (l *Local) WipeNameservers(ctx context.Context) error {
	for i := range l.nss {
		if err := l.KillNameserver(i); err != nil {
			l.cfg.Logger.Warn("wipe nameserver: close", "err", err)
		}
		if err := os.RemoveAll(l.NameserverDir(i)); err != nil {
			return err
		}
	}
	for i := range l.nss {
		if err := l.startNameserver(ctx, i); err != nil {
			return err
		}
	}
	return l.WaitReady(ctx)
}
