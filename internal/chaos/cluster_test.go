package chaos

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"depot/internal/auth"
	"depot/nameserver/nsclient"
)

// nodeState is what the nemesis did to a process last.
type nodeState int

const (
	stateUp nodeState = iota
	stateDown
	statePaused
	stateRemoved  // killed for good, its directory gone
	stateStarting // started, not ready yet: not a victim yet
)

func (s nodeState) String() string {
	return [...]string{"up", "down", "paused", "removed", "starting"}[s]
}

// node is one depot process of the cluster, with the addresses it keeps
// across restarts (so the others find it where it was).
type node struct {
	role, id, rack string
	dir            string
	http, gossip   string // host:port
	raft           string // nameservers only
	logPath        string

	px *proxy // dataservers: what the others dial

	mu      sync.Mutex
	state   nodeState
	cut     bool  // its proxy is a black hole
	maxDir  int64 // dataservers: --max-dir-bytes of the next start (a full disk)
	cmd     *exec.Cmd
	done    chan struct{}
	started time.Time // of the current process
}

// cluster is a depot cluster of separate processes on loopback: three
// nameservers in a raft group, dataservers in three racks, two gateways.
type cluster struct {
	bin  string
	dir  string
	env  []string
	key  auth.Key
	user string
	pass string
	log  func(format string, args ...any)

	mu  sync.Mutex
	ns  []*node
	ds  []*node
	gw  []*node
	hc  *http.Client
	nsc *nsclient.Client
	// nsSlow is nsc with a longer bound on a request, for backups and
	// restores (a restore asks every dataserver for its id marks).
	nsSlow *nsclient.Client
}

// deleteGrace is the nameservers' delete grace: a restore of a backup
// younger than it (the nemesis restores none older than maxBackupAge)
// finds every segment the backup references still stored.
const deleteGrace = 60 * time.Second

// repairAfter is how long a dataserver stays down before the nameserver
// rebuilds its shards elsewhere; the nemesis pauses members for longer.
const repairAfter = 8 * time.Second

// orphanGrace is how old an uncommitted segment must be before the orphan
// sweep reclaims it: longer than any upload of the run takes to commit.
const orphanGrace = 30 * time.Second

// freeAddr returns a loopback address free now for TCP and UDP (gossip
// takes both), below the kernel's ephemeral port range. A port from that
// range can be taken as the source port of an outgoing connection between
// now and the process's bind, and stay taken for as long as that
// connection lives (CI and a long run saw "bind: address already in use"
// five times in a row); ports below it are only ever taken by a listener.
func freeAddr() (string, error) {
	low := ephemeralLow()
	const first = 10000
	for range 1000 {
		addr := fmt.Sprintf("127.0.0.1:%d", first+mrand.IntN(low-first))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return addr, nil
	}
	return "", fmt.Errorf("no free port from %d to %d", first, low)
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// where it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || lo <= 11000 {
		return 32768
	}
	return lo
}

func newNode(dir, role, id, rack string, raft bool) (*node, error) {
	n := &node{role: role, id: id, rack: rack, dir: filepath.Join(dir, id), logPath: filepath.Join(dir, "logs", id+".log"), state: stateDown}
	var err error
	if n.http, err = freeAddr(); err != nil {
		return nil, err
	}
	if n.gossip, err = freeAddr(); err != nil {
		return nil, err
	}
	if raft {
		if n.raft, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// startCluster starts the nameservers, dataservers dataservers in three
// racks and two gateways, and waits until both gateways are ready.
func startCluster(ctx context.Context, bin, dir string, dataservers int, log func(string, ...any)) (*cluster, error) {
	key, err := auth.GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir, key: key, user: "CHAOSROOT", pass: "chaos-secret-" + fmt.Sprint(time.Now().UnixNano()),
		log: log, hc: &http.Client{Timeout: 30 * time.Second}}
	c.env = []string{"DEPOT_CLUSTER_KEY=" + key.String(), "DEPOT_ROOT_USER=" + c.user, "DEPOT_ROOT_PASSWORD=" + c.pass,
		"DEPOT_LOG_LEVEL=info", "DEPOT_GOSSIP_TIMING=test",
		// SIGKILL keeps the page cache: acknowledged writes survive
		// without fsync, and the shared disk is spared.
		"DEPOT_FSYNC=none"}
	for i := range 3 {
		n, err := newNode(dir, "nameserver", fmt.Sprintf("ns%d", i+1), "", true)
		if err != nil {
			return nil, err
		}
		c.ns = append(c.ns, n)
	}
	var urls []string
	for _, n := range c.ns {
		urls = append(urls, "http://"+n.http)
	}
	c.nsc = nsclient.New(strings.Join(urls, ","), key, c.hc)
	c.nsSlow = nsclient.New(strings.Join(urls, ","), key, &http.Client{Timeout: 2 * time.Minute})
	for range dataservers {
		if _, err := c.newDataserver(); err != nil {
			return nil, err
		}
	}
	for i := range 2 {
		n, err := newNode(dir, "gateway", fmt.Sprintf("gw%d", i+1), "", false)
		if err != nil {
			return nil, err
		}
		c.gw = append(c.gw, n)
	}
	// Nameservers first, together: the raft group needs a majority to
	// elect a leader, and each start waits for its own ready line only.
	errs := make(chan error, len(c.ns))
	for i, n := range c.ns {
		go func() { errs <- c.start(ctx, n) }()
		if i == 0 {
			// The others join the first one's gossip (retrying until it
			// listens): wait for its process to exist.
			if err := poll(ctx, 10*time.Second, func() error {
				if st := n.getState(); st != stateStarting && st != stateUp {
					return errors.New("ns1 not started")
				}
				return nil
			}); err != nil {
				return c, err
			}
		}
	}
	for range c.ns {
		if err := <-errs; err != nil {
			return c, err
		}
	}
	for _, n := range c.ds {
		if err := c.start(ctx, n); err != nil {
			return c, err
		}
	}
	for _, n := range c.gw {
		if err := c.start(ctx, n); err != nil {
			return c, err
		}
	}
	for _, n := range c.gw {
		if err := c.waitReady(ctx, n, 2*time.Minute); err != nil {
			return c, err
		}
	}
	return c, nil
}

// newDataserver adds a dataserver slot (not started) in the next rack.
func (c *cluster) newDataserver() (*node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := len(c.ds)
	n, err := newNode(c.dir, "dataserver", fmt.Sprintf("ds%d", i+1), fmt.Sprintf("rack%d", i%3+1), false)
	if err != nil {
		return nil, err
	}
	if n.px, err = newProxy(n.http); err != nil {
		return nil, err
	}
	c.ds = append(c.ds, n)
	return n, nil
}

// nodes returns every node of a role (all roles for "").
func (c *cluster) nodes(role string) []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*node
	for _, l := range [][]*node{c.ns, c.ds, c.gw} {
		for _, n := range l {
			if role == "" || n.role == role {
				out = append(out, n)
			}
		}
	}
	return out
}

func (n *node) getState() nodeState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// joinAddrs returns the gossip addresses of up to three running nodes
// other than self, nameservers first.
func (c *cluster) joinAddrs(self *node) []string {
	var out []string
	for _, n := range c.nodes("") {
		if n != self && n.role != "gateway" && n.getState() == stateUp && len(out) < 3 {
			out = append(out, n.gossip)
		}
	}
	return out
}

func (c *cluster) args(n *node) []string {
	args := []string{n.role, "--id", n.id, "--addr", n.http, "--gossip-addr", n.gossip}
	for _, j := range c.joinAddrs(n) {
		args = append(args, "--join", j)
	}
	switch n.role {
	case "nameserver":
		var peers []string
		for _, p := range c.ns {
			peers = append(peers, p.id+"="+p.raft)
		}
		args = append(args, "--dir", n.dir, "--raft-addr", n.raft, "--peers", strings.Join(peers, ","),
			"--repair-after", repairAfter.String(), "--rebalance-interval", "5s", "--delete-grace", deleteGrace.String())
	case "dataserver":
		args = append(args, "--dir", n.dir, "--rack", n.rack, "--orphan-grace", orphanGrace.String(),
			"--advertise-addr", n.px.addr())
		n.mu.Lock()
		if n.maxDir > 0 {
			args = append(args, "--max-dir-bytes", fmt.Sprint(n.maxDir))
		}
		n.mu.Unlock()
	case "gateway":
		var urls []string
		for _, p := range c.ns {
			urls = append(urls, "http://"+p.http)
		}
		args = append(args, "--nameserver", strings.Join(urls, ","))
	}
	return args
}

// start starts n's process and waits for its ready line.
func (c *cluster) start(ctx context.Context, n *node) error {
	n.mu.Lock()
	if n.state != stateDown {
		n.mu.Unlock()
		return fmt.Errorf("%w: %s is %s", errNotDown, n.id, n.state)
	}
	n.state = stateStarting
	n.mu.Unlock()
	err := c.spawn(ctx, n)
	// A port picked free can be taken before the process binds it (other
	// packages' tests run beside this one, and their connections take
	// ephemeral ports): try again, a few times, while the log says so.
	for try := 0; err != nil && try < 5 && portTaken(n.logPath) && ctx.Err() == nil; try++ {
		time.Sleep(time.Second) // backoff before the next try, not synchronisation
		err = c.spawn(ctx, n)
	}
	if err != nil {
		n.mu.Lock()
		if n.state == stateStarting {
			n.state = stateDown
		}
		n.mu.Unlock()
		return err
	}
	return nil
}

// portTaken reports whether the last start logged in path failed to bind
// an address already in use.
func portTaken(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	if i := bytes.LastIndex(b, []byte("=== ")); i >= 0 {
		b = b[i:]
	}
	return bytes.Contains(b, []byte("address already in use"))
}

// errNotDown refuses to start a process that runs or is starting.
var errNotDown = errors.New("not down")

// spawn runs n's process and waits for its ready line.
func (c *cluster) spawn(ctx context.Context, n *node) error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== %s start %s\n", time.Now().Format(time.RFC3339Nano), n.id)
	cmd := exec.Command(c.bin, c.args(n)...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.HasPrefix(sc.Text(), "ready ") {
				close(ready)
				signalled = true
			}
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done, n.started = cmd, done, time.Now()
	n.mu.Unlock()
	t := time.NewTimer(90 * time.Second)
	defer t.Stop()
	select {
	case <-ready:
		n.mu.Lock()
		n.state = stateUp
		n.mu.Unlock()
		return nil
	case <-done:
		return fmt.Errorf("%s exited before it was ready (%v); see %s", n.id, cmd.ProcessState, n.logPath)
	case <-t.C:
		c.kill(n)
		return fmt.Errorf("%s: not ready within 90s; see %s", n.id, n.logPath)
	case <-ctx.Done():
		c.kill(n)
		return ctx.Err()
	}
}

// kill sends SIGKILL (after SIGCONT, so a paused process dies too) and
// waits for the process to exit.
func (c *cluster) kill(n *node) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	if n.state == stateUp || n.state == statePaused || n.state == stateStarting {
		n.state = stateDown
	}
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Process.Signal(syscall.SIGCONT)
	<-done
}

// pause stops n with SIGSTOP: its sockets stay open and answer nothing.
func (c *cluster) pause(n *node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != stateUp {
		return fmt.Errorf("%s: pause while %s", n.id, n.state)
	}
	if err := n.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	n.state = statePaused
	return nil
}

// resume continues a paused n.
func (c *cluster) resume(n *node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != statePaused {
		return nil
	}
	n.state = stateUp
	return n.cmd.Process.Signal(syscall.SIGCONT)
}

// remove kills n for good and deletes its data directory.
func (c *cluster) remove(n *node) error {
	c.kill(n)
	n.mu.Lock()
	n.state = stateRemoved
	n.mu.Unlock()
	return os.RemoveAll(n.dir)
}

// stop stops n for good with SIGTERM (SIGKILL after 15s).
func (c *cluster) stop(n *node) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.state = stateRemoved
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// stopAll stops every process: SIGTERM, then SIGKILL after a while.
func (c *cluster) stopAll() {
	var wg sync.WaitGroup
	for _, n := range c.nodes("") {
		n.mu.Lock()
		cmd, done, st := n.cmd, n.done, n.state
		n.mu.Unlock()
		if cmd == nil || (st != stateUp && st != statePaused && st != stateStarting) {
			continue
		}
		wg.Go(func() {
			cmd.Process.Signal(syscall.SIGCONT)
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				c.kill(n)
			}
		})
	}
	wg.Wait()
	for _, n := range c.nodes("dataserver") {
		n.px.close()
	}
}

// setCut starts or ends a partition of n's HTTP from every other role.
func (c *cluster) setCut(n *node, cut bool) {
	n.mu.Lock()
	n.cut = cut
	n.mu.Unlock()
	n.px.setCut(cut)
}

func (n *node) isCut() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut || n.maxDir > 0
}

func (n *node) setMaxDir(b int64) {
	n.mu.Lock()
	n.maxDir = b
	n.mu.Unlock()
}

// waitReady polls n's /readyz until it answers 200.
func (c *cluster) waitReady(ctx context.Context, n *node, timeout time.Duration) error {
	return poll(ctx, timeout, func() error {
		resp, err := c.hc.Get("http://" + n.http + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s /readyz: %s", n.id, resp.Status)
		}
		return nil
	})
}

// poll calls cond until it returns nil, every half second, failing with
// its last error after timeout.
func poll(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(500 * time.Millisecond): // poll interval; cond decides
		}
	}
}

// leader returns the raft leader among the running nameservers, or nil.
func (c *cluster) leader(ctx context.Context) *node {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	infos, err := c.nsc.Nameservers(ctx)
	if err != nil {
		return nil
	}
	for _, in := range infos {
		if in.Leader {
			for _, n := range c.nodes("nameserver") {
				if n.id == in.ID {
					return n
				}
			}
		}
	}
	return nil
}

// tail returns the last lines of n's log.
func (n *node) tail(lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
