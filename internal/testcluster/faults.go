package testcluster

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// FaultLayer wraps a nameserver's raft stream layer so that a test can cut
// it off from the others (Isolate) and join it again (Heal): every
// connection it dialed or accepted breaks, and new ones are refused, which
// is what a network partition looks like to raft. The HTTP API stays
// reachable, as it would for clients on the nameserver's side.
type FaultLayer struct {
	raft.StreamLayer
	isolated atomic.Bool

	mu    sync.Mutex
	conns map[*faultConn]struct{}
}

var _ raft.StreamLayer = (*FaultLayer)(nil)

// errIsolated is what the connections of an isolated layer fail with.
var errIsolated = errors.New("testcluster: partitioned away")

// NewFaultLayer wraps inner.
func NewFaultLayer(inner raft.StreamLayer) *FaultLayer {
	return &FaultLayer{StreamLayer: inner, conns: make(map[*faultConn]struct{})}
}

// Isolate cuts the layer off: open connections break, new ones fail.
func (l *FaultLayer) Isolate() {
	l.isolated.Store(true)
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Conn.Close()
	}
	clear(l.conns)
}

// Heal lets connections through again.
func (l *FaultLayer) Heal() { l.isolated.Store(false) }

// Accept implements net.Listener, dropping connections while isolated.
func (l *FaultLayer) Accept() (net.Conn, error) {
	for {
		c, err := l.StreamLayer.Accept()
		if err != nil {
			return nil, err
		}
		if l.isolated.Load() {
			c.Close()
			continue
		}
		return l.track(c), nil
	}
}

// Dial implements raft.StreamLayer.
func (l *FaultLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if l.isolated.Load() {
		return nil, errIsolated
	}
	c, err := l.StreamLayer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	return l.track(c), nil
}

func (l *FaultLayer) track(c net.Conn) net.Conn {
	fc := &faultConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[fc] = struct{}{}
	l.mu.Unlock()
	return fc
}

type faultConn struct {
	net.Conn
	l *FaultLayer
}

func (c *faultConn) Read(b []byte) (int, error) {
	if c.l.isolated.Load() {
		return 0, errIsolated
	}
	return c.Conn.Read(b)
}

func (c *faultConn) Write(b []byte) (int, error) {
	if c.l.isolated.Load() {
		return 0, errIsolated
	}
	return c.Conn.Write(b)
}

func (c *faultConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
