package dataserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"depot"
)

const crashEnv = "DEPOT_DATASERVER_CRASH_CHILD"

// crashChild is the child half of TestStore_Crash: it writes and deletes
// needles from several goroutines, compacting now and then, and prints
// "w <vol> <id> <size>" or "d <vol> <id>" for each acknowledged write or
// delete, until it is killed.
func crashChild(dir string, seed uint64) {
	c := DefaultStoreConfig(dir)
	c.Fsync = FsyncGroup
	c.CheckpointInterval = 30 * time.Millisecond
	s, err := OpenStore(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	ack := func(format string, args ...any) {
		out.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		out.Unlock()
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			var mine []depot.NeedleID
			for i := 0; ; i++ {
				vol := depot.VolumeID(1 + w%2)
				if len(mine) > 4 && r.IntN(8) == 0 {
					j := r.IntN(len(mine))
					id := mine[j]
					mine = append(mine[:j], mine[j+1:]...)
					ack("D %d %d", vol, id) // intent: from here on it may be gone
					if err := s.Delete(ctx, vol, 0, id, depot.Cookie(id)); err == nil {
						ack("d %d %d", vol, id)
					}
					continue
				}
				id := depot.NeedleID(seed<<32 | uint64(w)<<24 | uint64(i))
				size := r.IntN(3 * defaultBlock)
				if r.IntN(20) == 0 {
					size = r.IntN(2 << 20) // streamed in several pieces
				}
				b := payload(id, size)
				sz := int64(size)
				if r.IntN(2) == 0 {
					sz = -1
				}
				if _, err := s.Write(ctx, vol, 0, id, depot.Cookie(id), bytes.NewReader(b), sz); err != nil {
					fmt.Fprintln(os.Stderr, "write:", err)
					continue
				}
				mine = append(mine, id)
				ack("w %d %d %d", vol, id, size)
			}
		}()
	}
	// A slow client: large bodies trickling in, so the kill often finds
	// regions reserved but unfinished between complete records.
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(seed, 99))
		for i := 0; ; i++ {
			id := depot.NeedleID(seed<<32 | 99<<24 | uint64(i))
			size := 1<<20 + r.IntN(2<<20)
			sz := int64(size)
			if i%2 == 1 {
				sz = -1
			}
			body := &trickle{b: payload(id, size), step: 64 << 10}
			if _, err := s.Write(ctx, 1, 0, id, depot.Cookie(id), body, sz); err != nil {
				fmt.Fprintln(os.Stderr, "slow write:", err)
				continue
			}
			ack("w %d %d %d", 1, id, size)
		}
	}()
	go func() {
		for {
			time.Sleep(10 * time.Millisecond)
			s.Compact(ctx, 1, 0)
		}
	}()
	wg.Wait()
}

// trickle yields b step bytes at a time, pausing between reads like a
// slow client (load for the crash child, not synchronisation).
type trickle struct {
	b    []byte
	step int
}

func (t *trickle) Read(p []byte) (int, error) {
	if len(t.b) == 0 {
		return 0, io.EOF
	}
	time.Sleep(500 * time.Microsecond)
	n := copy(p[:min(len(p), t.step)], t.b)
	t.b = t.b[n:]
	return n, nil
}

func TestStore_Crash(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		seed, _ := strconv.ParseUint(os.Getenv(crashEnv+"_SEED"), 10, 64)
		crashChild(dir, seed)
		return
	}
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	dir := t.TempDir()
	type key struct {
		vol depot.VolumeID
		id  depot.NeedleID
	}
	acked := map[key]int{} // size; -1 once deleted; -size-2 while a delete is in flight
	budget := time.Now().Add(10 * time.Second)
	rounds := 0
	for round := 1; round <= 20 && time.Now().Before(budget); round++ {
		rounds++
		cmd := exec.Command(os.Args[0], "-test.run=^TestStore_Crash$")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashEnv+"_SEED="+strconv.Itoa(round))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill the child at a random moment once it has acknowledged a
		// random number of operations.
		killAfter := 10 + rand.IntN(200)
		lines := 0
		sc := bufio.NewScanner(stdout)
		killed := false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			vol, _ := strconv.ParseUint(f[1], 10, 32)
			id, _ := strconv.ParseUint(f[2], 10, 64)
			k := key{depot.VolumeID(vol), depot.NeedleID(id)}
			switch f[0] {
			case "w":
				size, _ := strconv.Atoi(f[3])
				acked[k] = size
			case "D":
				acked[k] = -acked[k] - 2 // either state is right
			case "d":
				acked[k] = -1
			}
			lines++
			if lines == killAfter && !killed {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed {
			t.Fatalf("child exited on its own: %v\n%s", err, stderr.String())
		}

		c := testStoreConfig(dir)
		c.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
		s, err := OpenStore(c)
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		ctx := context.Background()
		for k, size := range acked {
			got, err := s.Read(ctx, k.vol, 0, k.id, depot.Cookie(k.id))
			if size < -1 {
				if errors.Is(err, depot.ErrNotFound) {
					acked[k] = -1
					continue
				}
				size = -size - 2
				acked[k] = size
			}
			if size == -1 {
				if !errors.Is(err, depot.ErrNotFound) {
					t.Fatalf("round %d: deleted needle %d/%x: %v", round, k.vol, uint64(k.id), err)
				}
				continue
			}
			if err != nil {
				f, _ := s.shard(shardKey{k.vol, 0})
				f.mu.RLock()
				l, ok := f.idx.get(k.id)
				f.mu.RUnlock()
				t.Logf("index: %v ok=%v off=%d size=%d del=%v", l, ok, l.offset(), l.size(), l.deleted())
				fh, _ := os.Open(f.path)
				fi, _ := fh.Stat()
				rr := newRecordReader(f.gen, f.block)
				rr.br.Reset(io.NewSectionReader(fh, superSize, fi.Size()-superSize))
				for off := int64(superSize); off < fi.Size(); {
					h, rl, err := rr.next(fi.Size()-off, nil)
					if err != nil {
						t.Logf("scan stops at %d: %v", off, err)
						break
					}
					if h.Needle == k.id {
						t.Logf("record at %d: %+v", off, h)
					}
					off += rl
				}
				t.Fatalf("round %d: acknowledged needle %d/%x: %v", round, k.vol, uint64(k.id), err)
			}
			if !bytes.Equal(got, payload(k.id, size)) {
				t.Fatalf("round %d: acknowledged needle %d/%x: wrong bytes", round, k.vol, uint64(k.id))
			}
		}
		// Needles written but not acknowledged may or may not be there,
		// but whatever is there must be intact.
		for _, vol := range []depot.VolumeID{1, 2} {
			l, err := s.List(ctx, vol, 0)
			if err != nil {
				continue
			}
			for _, n := range l {
				if n.Deleted {
					continue
				}
				if _, err := s.Read(ctx, vol, 0, n.ID, n.Cookie); err != nil {
					t.Fatalf("round %d: needle %d/%x: %v", round, vol, uint64(n.ID), err)
				}
			}
		}
		if s.ChecksumFailures() != 0 {
			t.Fatalf("round %d: %d checksum failures", round, s.ChecksumFailures())
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d crash rounds, %d acknowledged needles checked", rounds, len(acked))
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
