package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// depotBin is the depot binary built once for the process tests.
var depotBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "depot-bin")
	if err != nil {
		panic(err)
	}
	depotBin = filepath.Join(dir, "depot")
	out, err := exec.Command("go", "build", "-o", depotBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build depot: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a depot child process whose stdout lines are collected.
type proc struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
	err   error
	log   *bytes.Buffer
}

func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(depotBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, lines: make(chan string, 100), done: make(chan struct{}), log: &bytes.Buffer{}}
	cmd.Stderr = &lockedWriter{w: p.log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// waitLine returns the first stdout line with prefix, failing after a
// deadline.
func (p *proc) waitLine(prefix string) string {
	p.t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if strings.HasPrefix(strings.TrimSpace(l), prefix) {
				return strings.TrimSpace(l)
			}
		case <-p.done:
			p.t.Fatalf("%v exited (%v) before printing %q; stderr:\n%s", p.cmd.Args, p.err, prefix, p.log)
		case <-timeout:
			p.t.Fatalf("%v: no %q line within 60s; stderr:\n%s", p.cmd.Args, prefix, p.log)
		}
	}
}

func (p *proc) kill() {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			p.t.Fatalf("%v: exit after SIGTERM: %v; stderr:\n%s", p.cmd.Args, p.err, p.log)
		}
	case <-time.After(60 * time.Second):
		p.t.Fatalf("%v did not stop within 60s of SIGTERM", p.cmd.Args)
	}
}

// field returns the value of key=value in a ready line.
func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

type blobStore struct {
	endpoint, user, pass string
}

func (b blobStore) put(data []byte) (string, error) {
	req, _ := http.NewRequest(http.MethodPost, b.endpoint+"/v1/blobs", bytes.NewReader(data))
	req.SetBasicAuth(b.user, b.pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("%s: %s", resp.Status, msg)
	}
	var a struct{ Fid string }
	err = json.NewDecoder(resp.Body).Decode(&a)
	return a.Fid, err
}

func (b blobStore) get(fid string) ([]byte, error) {
	resp, err := http.Get(b.endpoint + "/v1/blobs/" + fid)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", fid, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// waitReady polls the gateway's /readyz.
func waitReady(t *testing.T, endpoint string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(endpoint + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 60s: %v", endpoint, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func blob(rng *rand.Rand) []byte {
	b := make([]byte, rng.IntN(3<<20))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func checkBlobs(t *testing.T, bs blobStore, want map[string][32]byte) {
	t.Helper()
	for fid, sum := range want {
		got, err := bs.get(fid)
		if err != nil {
			t.Errorf("%s: %v", fid, err)
			continue
		}
		if sha256.Sum256(got) != sum {
			t.Errorf("%s: bytes differ", fid)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestServer_Restart runs `depot server` as a child process: objects stored
// before a clean stop (SIGTERM) and before a crash (SIGKILL in the middle
// of uploads) are all there after a restart.
func TestServer_Restart(t *testing.T) {
	dir := t.TempDir()
	env := []string{"DEPOT_ROOT_USER=proctest", "DEPOT_ROOT_PASSWORD=proctest-secret"}
	args := []string{"server", "--dir", dir, "--addr", "127.0.0.1:0", "--log-level", "error"}
	start := func() (*proc, blobStore) {
		p := startProc(t, env, args...)
		ep := strings.TrimSpace(strings.TrimPrefix(p.waitLine("endpoint:"), "endpoint:"))
		bs := blobStore{endpoint: ep, user: "proctest", pass: "proctest-secret"}
		waitReady(t, ep)
		return p, bs
	}
	rng := rand.New(rand.NewPCG(1, 1))
	want := make(map[string][32]byte)

	p, bs := start()
	checkBuildInfo(t, bs.endpoint)
	for range 20 {
		data := blob(rng)
		fid, err := bs.put(data)
		if err != nil {
			t.Fatal(err)
		}
		want[fid] = sha256.Sum256(data)
	}
	p.stop()

	p, bs = start()
	checkBlobs(t, bs, want)

	// Crash in the middle of uploads: every acknowledged one survives.
	var mu sync.Mutex
	acked := 0
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for ctx.Err() == nil {
				data := blob(r)
				fid, err := bs.put(data)
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				want[fid] = sha256.Sum256(data)
				acked++
				mu.Unlock()
			}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := acked
		mu.Unlock()
		if n >= 12 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.kill()
	cancel()
	wg.Wait()
	t.Logf("killed the server after %d acknowledged uploads in flight", acked)

	_, bs = start()
	checkBlobs(t, bs, want)
}

// TestRoles_SeparateProcesses runs a nameserver, six dataservers and a
// gateway as separate processes, kills them all with SIGKILL, restarts
// them, and reads every object back.
func TestRoles_SeparateProcesses(t *testing.T) {
	dir := t.TempDir()
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	env := []string{"DEPOT_CLUSTER_KEY=" + key, "DEPOT_ROOT_USER=roles", "DEPOT_ROOT_PASSWORD=roles-secret",
		"DEPOT_LOG_LEVEL=error", "DEPOT_GOSSIP_TIMING=local"}
	common := []string{"--addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0"}
	var procs []*proc
	var nsURL string
	startAll := func() blobStore {
		procs = nil
		ns := startProc(t, env, append([]string{"nameserver", "--dir", filepath.Join(dir, "ns")}, common...)...)
		procs = append(procs, ns)
		ready := ns.waitLine("ready")
		join := field(ready, "gossip")
		nsURL = "http://" + field(ready, "http")
		for i := range 6 {
			ds := startProc(t, env, append([]string{"dataserver", "--id", fmt.Sprintf("ds%d", i+1),
				"--dir", filepath.Join(dir, fmt.Sprintf("ds%d", i+1)), "--rack", fmt.Sprintf("r%d", i%2), "--join", join}, common...)...)
			procs = append(procs, ds)
		}
		for _, ds := range procs[1:] {
			ds.waitLine("ready")
		}
		gw := startProc(t, env, append([]string{"gateway", "--id", "gw1", "--join", join}, common...)...)
		procs = append(procs, gw)
		ep := "http://" + field(gw.waitLine("ready"), "http")
		waitReady(t, ep)
		return blobStore{endpoint: ep, user: "roles", pass: "roles-secret"}
	}
	bs := startAll()
	checkBuildInfo(t, bs.endpoint)
	checkBuildInfo(t, nsURL)
	rng := rand.New(rand.NewPCG(2, 2))
	want := make(map[string][32]byte)
	for range 20 {
		data := blob(rng)
		fid, err := bs.put(data)
		if err != nil {
			t.Fatal(err)
		}
		want[fid] = sha256.Sum256(data)
	}
	checkBlobs(t, bs, want)
	for _, p := range procs {
		p.kill()
	}
	bs = startAll()
	checkBlobs(t, bs, want)
	for _, p := range procs {
		p.stop()
	}
}

// TestCLI_PutGetStatRm drives the data commands against a depot server.
func TestCLI_PutGetStatRm(t *testing.T) {
	dir := t.TempDir()
	env := []string{"DEPOT_ROOT_USER=cli", "DEPOT_ROOT_PASSWORD=cli-secret"}
	p := startProc(t, env, "server", "--dir", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0", "--log-level", "error")
	ep := strings.TrimSpace(strings.TrimPrefix(p.waitLine("endpoint:"), "endpoint:"))
	waitReady(t, ep)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(depotBin, append(args[:1:1], append([]string{"--endpoint", ep, "-q"}, args[1:]...)...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("depot %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	src := filepath.Join(dir, "photo.jpg")
	data := blob(rand.New(rand.NewPCG(3, 3)))
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fid := strings.Fields(run("put", src))[0]
	dst := filepath.Join(dir, "copy.jpg")
	run("get", fid, "-o", dst)
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %v, equal=%v", err, bytes.Equal(got, data))
	}
	st := run("stat", fid)
	if !strings.Contains(st, fmt.Sprintf("size=%d", len(data))) || !strings.Contains(st, "type=image/jpeg") {
		t.Fatalf("stat: %s", st)
	}
	run("rm", fid)
	cmd := exec.Command(depotBin, "get", "--endpoint", ep, fid)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "404") {
		t.Fatalf("get after rm: %v %s", err, out)
	}
	p.stop()
}
