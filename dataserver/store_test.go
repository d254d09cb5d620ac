package dataserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"depot"
)

// testStoreConfig returns a config for dirs with fast settings.
func testStoreConfig(dirs ...string) StoreConfig {
	c := DefaultStoreConfig(dirs...)
	c.Fsync = FsyncNone
	c.CheckpointInterval = -1
	return c
}

// MustOpenStore opens a store and closes it when the test ends.
func MustOpenStore(t testing.TB, cfg StoreConfig) *Store {
	t.Helper()
	s, err := OpenStore(cfg)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// payload returns deterministic bytes for needle id of n bytes.
func payload(id depot.NeedleID, n int) []byte {
	r := rand.New(rand.NewPCG(uint64(id), uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustWrite(t testing.TB, s *Store, vol depot.VolumeID, idx int, id depot.NeedleID, ck depot.Cookie, b []byte) {
	t.Helper()
	n, err := s.Write(context.Background(), vol, idx, id, ck, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Write %x: %v", uint64(id), err)
	}
	if n != int64(len(b)) {
		t.Fatalf("Write %x: stored %d bytes, want %d", uint64(id), n, len(b))
	}
}

func mustRead(t testing.TB, s *Store, vol depot.VolumeID, idx int, id depot.NeedleID, ck depot.Cookie, want []byte) {
	t.Helper()
	got, err := s.Read(context.Background(), vol, idx, id, ck)
	if err != nil {
		t.Fatalf("Read %x: %v", uint64(id), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Read %x: %d bytes differ from the %d written", uint64(id), len(got), len(want))
	}
}

// onlyReader hides any other method of a reader (no size known).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// errReader fails after n bytes.
type errReader struct {
	n   int
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, e.err
	}
	m := min(len(p), e.n)
	clear(p[:m])
	e.n -= m
	return m, nil
}

func TestStore_Write(t *testing.T) {
	ctx := context.Background()
	s := MustOpenStore(t, testStoreConfig(t.TempDir()))
	sizes := []int{0, 1, 7, defaultBlock - 1, defaultBlock, defaultBlock + 1, 3*defaultBlock + 5, bufBlocks*defaultBlock + 3, 3<<20 + 11}

	t.Run("OK", func(t *testing.T) {
		for i, n := range sizes {
			id := depot.NeedleID(i + 1)
			mustWrite(t, s, 1, 0, id, 0xabcd, payload(id, n))
		}
		for i, n := range sizes {
			id := depot.NeedleID(i + 1)
			mustRead(t, s, 1, 0, id, 0xabcd, payload(id, n))
		}
	})
	t.Run("UnknownSize", func(t *testing.T) {
		for i, n := range sizes {
			id := depot.NeedleID(100 + i)
			b := payload(id, n)
			got, err := s.Write(ctx, 1, 0, id, 7, onlyReader{bytes.NewReader(b)}, -1)
			if err != nil || got != int64(n) {
				t.Fatalf("Write(size -1, %d bytes) = %d, %v", n, got, err)
			}
			mustRead(t, s, 1, 0, id, 7, b)
		}
	})
	t.Run("Replace", func(t *testing.T) {
		// A retry, with the same cookie, replaces.
		mustWrite(t, s, 1, 1, 5, 1, payload(5, 100))
		mustWrite(t, s, 1, 1, 5, 1, payload(6, 300))
		mustRead(t, s, 1, 1, 5, 1, payload(6, 300))
		// Repair replaces whatever the cookie.
		if _, err := s.Rewrite(ctx, 1, 1, 5, 2, bytes.NewReader(payload(7, 200)), 200); err != nil {
			t.Fatalf("Rewrite: %v", err)
		}
		mustRead(t, s, 1, 1, 5, 2, payload(7, 200))
		if _, err := s.Read(ctx, 1, 1, 5, 1); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("old cookie: %v, want ErrNotFound", err)
		}
	})
	t.Run("ErrTooLarge", func(t *testing.T) {
		c := testStoreConfig(t.TempDir())
		c.MaxNeedleSize = 1000
		s := MustOpenStore(t, c)
		if _, err := s.Write(ctx, 1, 0, 1, 1, bytes.NewReader(make([]byte, 1001)), 1001); !errors.Is(err, depot.ErrTooLarge) {
			t.Fatalf("declared: %v", err)
		}
		if _, err := s.Write(ctx, 1, 0, 1, 1, onlyReader{bytes.NewReader(make([]byte, 1001))}, -1); !errors.Is(err, depot.ErrTooLarge) {
			t.Fatalf("streamed: %v", err)
		}
		if _, err := s.Read(ctx, 1, 0, 1, 1); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("after failed writes: %v, want ErrNotFound", err)
		}
	})
	t.Run("ErrBadRequest", func(t *testing.T) {
		before := s.Status()
		for name, c := range map[string]struct {
			r    io.Reader
			size int64
		}{
			"Short":      {bytes.NewReader(make([]byte, 10)), 20},
			"ShortBig":   {bytes.NewReader(make([]byte, 2<<20)), 3 << 20},
			"Long":       {bytes.NewReader(make([]byte, 30)), 20},
			"LongBig":    {bytes.NewReader(make([]byte, 3<<20)), 2 << 20},
			"ReadError":  {&errReader{n: 2 << 20, err: errors.New("connection reset")}, -1},
			"ReadError2": {&errReader{n: 100, err: errors.New("connection reset")}, 200},
		} {
			t.Run(name, func(t *testing.T) {
				_, err := s.Write(ctx, 1, 0, 999, 1, c.r, c.size)
				if !errors.Is(err, depot.ErrBadRequest) {
					t.Fatalf("Write = %v, want ErrBadRequest", err)
				}
				if _, err := s.Read(ctx, 1, 0, 999, 1); !errors.Is(err, depot.ErrNotFound) {
					t.Fatalf("failed write is visible: %v", err)
				}
			})
		}
		after := s.Status()
		if before.Files[0].FileBytes != after.Files[0].FileBytes {
			t.Fatalf("failed writes left %d bytes behind", after.Files[0].FileBytes-before.Files[0].FileBytes)
		}
		mustRead(t, s, 1, 0, 3, 0xabcd, payload(3, sizes[2]))
	})
	t.Run("ErrBadRequest/Index", func(t *testing.T) {
		if _, err := s.Write(ctx, 1, -1, 1, 1, bytes.NewReader(nil), 0); !errors.Is(err, depot.ErrBadRequest) {
			t.Fatalf("negative index: %v", err)
		}
	})
}

func TestStore_Read(t *testing.T) {
	ctx := context.Background()
	s := MustOpenStore(t, testStoreConfig(t.TempDir()))
	big := payload(1, 5*defaultBlock+123)
	mustWrite(t, s, 2, 3, 1, 42, big)
	mustWrite(t, s, 2, 3, 2, 42, nil)

	t.Run("ErrNotFound", func(t *testing.T) {
		for name, f := range map[string]func() error{
			"UnknownNeedle": func() error { _, err := s.Read(ctx, 2, 3, 77, 42); return err },
			"WrongCookie":   func() error { _, err := s.Read(ctx, 2, 3, 1, 43); return err },
			"UnknownShard":  func() error { _, err := s.Read(ctx, 9, 3, 1, 42); return err },
			"StatCookie":    func() error { _, err := s.Stat(ctx, 2, 3, 1, 43); return err },
		} {
			if err := f(); !errors.Is(err, depot.ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", name, err)
			}
		}
	})
	t.Run("Range", func(t *testing.T) {
		for _, r := range [][2]int64{{0, 1}, {0, int64(len(big))}, {5, 10}, {defaultBlock - 1, 2}, {defaultBlock, defaultBlock}, {3*defaultBlock + 7, 2*defaultBlock + 100}, {int64(len(big)) - 1, 1}, {100, 0}} {
			var buf bytes.Buffer
			n, err := s.ReadRange(ctx, 2, 3, 1, 42, r[0], r[1], &buf)
			if err != nil || n != r[1] || !bytes.Equal(buf.Bytes(), big[r[0]:r[0]+r[1]]) {
				t.Fatalf("ReadRange(%d, %d) = %d, %v", r[0], r[1], n, err)
			}
		}
		var buf bytes.Buffer
		if _, err := s.ReadRange(ctx, 2, 3, 1, 42, int64(len(big)), 1, &buf); !errors.Is(err, depot.ErrBadRequest) {
			t.Fatalf("past the end: %v", err)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		mustRead(t, s, 2, 3, 2, 42, []byte{})
		if n, err := s.Stat(ctx, 2, 3, 2, 42); n != 0 || err != nil {
			t.Fatalf("Stat = %d, %v", n, err)
		}
	})
}

// needleOffset returns the record offset of a needle, for tests that
// damage files.
func needleOffset(t testing.TB, s *Store, vol depot.VolumeID, idx int, id depot.NeedleID) (string, int64) {
	t.Helper()
	f, err := s.shard(shardKey{vol, idx})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	l, ok := f.idx.get(id)
	if !ok {
		t.Fatalf("needle %x not indexed", uint64(id))
	}
	return f.path, l.offset()
}

func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := []byte{0}
	if _, err := fh.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := fh.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestStore_Corrupt(t *testing.T) {
	ctx := context.Background()
	s := MustOpenStore(t, testStoreConfig(t.TempDir()))
	for id := depot.NeedleID(1); id <= 4; id++ {
		mustWrite(t, s, 1, 0, id, 9, payload(id, 3*defaultBlock))
	}
	t.Run("ErrCorrupt/Data", func(t *testing.T) {
		path, off := needleOffset(t, s, 1, 0, 2)
		flipByte(t, path, off+headerSize+defaultBlock+crcSize+100) // inside block 1
		before := s.ChecksumFailures()
		_, err := s.Read(ctx, 1, 0, 2, 9)
		if !errors.Is(err, depot.ErrCorrupt) {
			t.Fatalf("Read = %v, want ErrCorrupt", err)
		}
		if want := fmt.Sprintf("needle %x", 2); !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Fatalf("error %q does not name the needle", err)
		}
		if s.ChecksumFailures() != before+1 {
			t.Fatalf("checksum failures %d, want %d", s.ChecksumFailures(), before+1)
		}
		// A range that avoids the damaged block still reads; one that
		// touches it does not, and hands on only verified bytes.
		var buf bytes.Buffer
		if _, err := s.ReadRange(ctx, 1, 0, 2, 9, 0, defaultBlock, &buf); err != nil {
			t.Fatalf("range before the damage: %v", err)
		}
		buf.Reset()
		n, err := s.ReadRange(ctx, 1, 0, 2, 9, 10, 2*defaultBlock, &buf)
		if !errors.Is(err, depot.ErrCorrupt) || n != defaultBlock-10 || buf.Len() != defaultBlock-10 {
			t.Fatalf("range over the damage = %d, %v", n, err)
		}
		for _, id := range []depot.NeedleID{1, 3, 4} {
			mustRead(t, s, 1, 0, id, 9, payload(id, 3*defaultBlock))
		}
	})
	t.Run("ErrCorrupt/Header", func(t *testing.T) {
		path, off := needleOffset(t, s, 1, 0, 3)
		flipByte(t, path, off+17) // cookie byte
		if _, err := s.Read(ctx, 1, 0, 3, 9); !errors.Is(err, depot.ErrCorrupt) {
			t.Fatalf("Read = %v, want ErrCorrupt", err)
		}
		if _, err := s.Stat(ctx, 1, 0, 3, 9); !errors.Is(err, depot.ErrCorrupt) {
			t.Fatalf("Stat = %v, want ErrCorrupt", err)
		}
		mustRead(t, s, 1, 0, 4, 9, payload(4, 3*defaultBlock))
	})
	t.Run("Reopen", func(t *testing.T) {
		// Recovery from a full scan skips the damaged records and keeps
		// every needle after them.
		dir := s.cfg.Dirs[0]
		s.Close()
		os.Remove(filepath.Join(dir, "1_0.idx"))
		s2 := MustOpenStore(t, testStoreConfig(dir))
		mustRead(t, s2, 1, 0, 1, 9, payload(1, 3*defaultBlock))
		mustRead(t, s2, 1, 0, 4, 9, payload(4, 3*defaultBlock))
		for _, id := range []depot.NeedleID{2, 3} {
			if _, err := s2.Read(ctx, 1, 0, id, 9); err == nil {
				t.Fatalf("damaged needle %d reads", id)
			}
		}
	})
}

func TestStore_Delete(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := MustOpenStore(t, testStoreConfig(dir))
	mustWrite(t, s, 1, 0, 1, 5, payload(1, 100))
	mustWrite(t, s, 1, 0, 2, 5, payload(2, 100))
	t.Run("OK", func(t *testing.T) {
		if err := s.Delete(ctx, 1, 0, 1, 5); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Read(ctx, 1, 0, 1, 5); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("read after delete: %v", err)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		for name, err := range map[string]error{
			"Again":       s.Delete(ctx, 1, 0, 1, 5),
			"Unknown":     s.Delete(ctx, 1, 0, 3, 5),
			"WrongCookie": s.Delete(ctx, 1, 0, 2, 6),
			"NoShard":     s.Delete(ctx, 2, 0, 2, 5),
		} {
			if !errors.Is(err, depot.ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", name, err)
			}
		}
		mustRead(t, s, 1, 0, 2, 5, payload(2, 100))
	})
	t.Run("List", func(t *testing.T) {
		l, err := s.List(ctx, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Record: where each needle's latest record is (the tombstone of
		// 1 came after 2).
		if len(l) != 2 || l[1].Record <= 0 || l[0].Record <= l[1].Record {
			t.Fatalf("List = %v: records not where written", l)
		}
		for i := range l {
			l[i].Record = 0
		}
		want := []NeedleInfo{{ID: 1, Cookie: 5, Deleted: true}, {ID: 2, Cookie: 5, Size: 100}}
		if fmt.Sprint(l) != fmt.Sprint(want) {
			t.Fatalf("List = %v, want %v", l, want)
		}
	})
	t.Run("Reopen", func(t *testing.T) {
		s.Close()
		s := MustOpenStore(t, testStoreConfig(dir))
		if _, err := s.Read(ctx, 1, 0, 1, 5); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("deleted needle back after reopen: %v", err)
		}
		mustRead(t, s, 1, 0, 2, 5, payload(2, 100))
	})
}

// copyDir copies the shard and index files of src to a new directory: a
// snapshot of what a crash at this instant would leave (no writes are in
// flight).
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestStore_Recover(t *testing.T) {
	ctx := context.Background()
	t.Run("Checkpoint", func(t *testing.T) {
		dir := t.TempDir()
		s := MustOpenStore(t, testStoreConfig(dir))
		for id := depot.NeedleID(1); id <= 50; id++ {
			mustWrite(t, s, 1, 0, id, 1, payload(id, int(id)*100))
		}
		if err := s.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		for id := depot.NeedleID(51); id <= 60; id++ {
			mustWrite(t, s, 1, 0, id, 1, payload(id, int(id)*100))
		}
		s.Delete(ctx, 1, 0, 7, 1)
		crashed := copyDir(t, dir)
		// Damage the data before the checkpoint: if recovery scanned it,
		// it would notice; it must only scan after the checkpoint.
		f, _ := s.shard(shardKey{1, 0})
		s2 := MustOpenStore(t, testStoreConfig(crashed))
		if got := s2.ChecksumFailures(); got != 0 {
			t.Fatalf("failures %d", got)
		}
		f2, _ := s2.shard(shardKey{1, 0})
		if f2.ckptEnd == superSize || f2.ckptEnd >= f.end {
			t.Fatalf("checkpoint covers %d of %d bytes; want a tail to scan", f2.ckptEnd, f.end)
		}
		for id := depot.NeedleID(1); id <= 60; id++ {
			if id == 7 {
				if _, err := s2.Read(ctx, 1, 0, id, 1); !errors.Is(err, depot.ErrNotFound) {
					t.Fatalf("deleted needle: %v", err)
				}
				continue
			}
			mustRead(t, s2, 1, 0, id, 1, payload(id, int(id)*100))
		}
	})
	t.Run("ScanOnlyTail", func(t *testing.T) {
		// Bytes before the checkpoint are not read at start-up: a damaged
		// block there goes unnoticed until a read finds it.
		dir := t.TempDir()
		s := MustOpenStore(t, testStoreConfig(dir))
		mustWrite(t, s, 1, 0, 1, 1, payload(1, 1000))
		s.Close()
		path := filepath.Join(dir, "1_0.shard")
		flipByte(t, path, superSize+headerSize+10)
		s2 := MustOpenStore(t, testStoreConfig(dir))
		if s2.ChecksumFailures() != 0 {
			t.Fatal("start-up read data covered by the checkpoint")
		}
		if _, err := s2.Read(ctx, 1, 0, 1, 1); !errors.Is(err, depot.ErrCorrupt) {
			t.Fatalf("Read = %v, want ErrCorrupt", err)
		}
	})
	t.Run("TornTail", func(t *testing.T) {
		dir := t.TempDir()
		s := MustOpenStore(t, testStoreConfig(dir))
		for id := depot.NeedleID(1); id <= 5; id++ {
			mustWrite(t, s, 1, 0, id, 1, payload(id, 40000))
		}
		s.Close()
		path := filepath.Join(dir, "1_0.shard")
		fi, _ := os.Stat(path)
		os.Remove(filepath.Join(dir, "1_0.idx"))
		// Cut the last record in the middle, then add junk: a torn write.
		if err := os.Truncate(path, fi.Size()-20000); err != nil {
			t.Fatal(err)
		}
		fh, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		fh.Write(bytes.Repeat([]byte{0xee}, 333))
		fh.Close()
		s2 := MustOpenStore(t, testStoreConfig(dir))
		for id := depot.NeedleID(1); id <= 4; id++ {
			mustRead(t, s2, 1, 0, id, 1, payload(id, 40000))
		}
		if _, err := s2.Read(ctx, 1, 0, 5, 1); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("torn needle: %v, want ErrNotFound", err)
		}
		mustWrite(t, s2, 1, 0, 6, 1, payload(6, 10))
		s2.Close()
		fi2, _ := os.Stat(path)
		if fi2.Size() >= fi.Size() {
			t.Fatalf("torn tail not cut: %d bytes", fi2.Size())
		}
		s3 := MustOpenStore(t, testStoreConfig(dir))
		mustRead(t, s3, 1, 0, 6, 1, payload(6, 10))
	})
	t.Run("BadCheckpoint", func(t *testing.T) {
		dir := t.TempDir()
		s := MustOpenStore(t, testStoreConfig(dir))
		for id := depot.NeedleID(1); id <= 5; id++ {
			mustWrite(t, s, 1, 0, id, 1, payload(id, 500))
		}
		s.Close()
		flipByte(t, filepath.Join(dir, "1_0.idx"), 50)
		s2 := MustOpenStore(t, testStoreConfig(dir))
		for id := depot.NeedleID(1); id <= 5; id++ {
			mustRead(t, s2, 1, 0, id, 1, payload(id, 500))
		}
	})
}

func TestStore_GarbageFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := MustOpenStore(t, testStoreConfig(dir))
	mustWrite(t, s, 1, 0, 1, 1, payload(1, 5000))
	s.Close()
	junk := map[string][]byte{
		"README":          []byte("hello"),
		"7_1.shard":       bytes.Repeat([]byte("garbage!"), 100), // looks like a shard file
		"8_0.shard":       {1, 2, 3},                             // shorter than a superblock
		"9_0.idx":         []byte("orphan index"),
		"1_0.shard.bad":   []byte("x"),
		"x.shard":         nil,
		"12_3.shard.junk": nil,
	}
	for name, b := range junk {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dir, "subdir"), 0o755)
	s2 := MustOpenStore(t, testStoreConfig(dir))
	mustRead(t, s2, 1, 0, 1, 1, payload(1, 5000))
	if len(s2.Ignored()) < len(junk) {
		t.Fatalf("ignored %v", s2.Ignored())
	}
	// The slot of the unreadable shard file is free for repair to rebuild.
	mustWrite(t, s2, 7, 1, 1, 1, payload(1, 10))
	mustRead(t, s2, 7, 1, 1, 1, payload(1, 10))
	if _, err := os.Stat(filepath.Join(dir, "7_1.shard.bad")); err != nil {
		t.Fatalf("quarantined file: %v", err)
	}
	if _, err := s2.Read(ctx, 8, 0, 1, 1); !errors.Is(err, depot.ErrNotFound) {
		t.Fatalf("read from a tiny file: %v", err)
	}
}

func TestStore_DiskFull(t *testing.T) {
	ctx := context.Background()
	t.Run("Limit", func(t *testing.T) {
		d1, d2 := t.TempDir(), t.TempDir()
		c := testStoreConfig(d1, d2)
		c.MaxDirBytes = 200 << 10
		s := MustOpenStore(t, c)
		mustWrite(t, s, 1, 0, 1, 1, payload(1, 50<<10))
		first := s.Status().Files[0].Dir
		var err error
		id := depot.NeedleID(2)
		for ; id < 10 && err == nil; id++ {
			_, err = s.Write(ctx, 1, 0, id, 1, bytes.NewReader(payload(id, 50<<10)), 50<<10)
		}
		if !errors.Is(err, depot.ErrDiskFull) {
			t.Fatalf("Write = %v, want ErrDiskFull", err)
		}
		st := s.Status()
		for _, d := range st.Dirs {
			if d.ReadOnly != (d.Path == first) {
				t.Fatalf("dir %s read-only %v", d.Path, d.ReadOnly)
			}
		}
		if _, err := s.Write(ctx, 1, 0, 100, 1, bytes.NewReader([]byte("x")), 1); !errors.Is(err, depot.ErrDiskFull) {
			t.Fatalf("write to read-only dir: %v", err)
		}
		for i := depot.NeedleID(1); i < id-1; i++ {
			mustRead(t, s, 1, 0, i, 1, payload(i, 50<<10))
		}
		// A new shard file goes to the other directory.
		mustWrite(t, s, 1, 1, 1, 1, payload(1, 50<<10))
		for _, f := range s.Status().Files {
			if f.Index == 1 && f.Dir == first {
				t.Fatalf("new shard file placed in the full directory")
			}
		}
	})
	t.Run("ENOSPC", func(t *testing.T) {
		d1, d2 := t.TempDir(), t.TempDir()
		c := testStoreConfig(d1, d2)
		var full sync.Map
		c.writeFault = func(path string, off int64, n int) error {
			if _, ok := full.Load(filepath.Dir(path)); ok {
				return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
			}
			return nil
		}
		s := MustOpenStore(t, c)
		mustWrite(t, s, 1, 0, 1, 1, payload(1, 3<<20))
		dir := s.Status().Files[0].Dir
		full.Store(dir, true)
		_, err := s.Write(ctx, 1, 0, 2, 1, bytes.NewReader(payload(2, 3<<20)), 3<<20)
		if !errors.Is(err, depot.ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Write = %v, want ErrDiskFull", err)
		}
		mustRead(t, s, 1, 0, 1, 1, payload(1, 3<<20))
		mustWrite(t, s, 2, 0, 1, 1, payload(1, 100))
		if got := s.Status().Files[1].Dir; got == dir {
			t.Fatal("new shard file placed in the full directory")
		}
		s.Close()
		s2 := MustOpenStore(t, testStoreConfig(d1, d2))
		mustRead(t, s2, 1, 0, 1, 1, payload(1, 3<<20))
		if _, err := s2.Read(ctx, 1, 0, 2, 1); !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("failed write visible after reopen: %v", err)
		}
	})
	t.Run("RealENOSPC", func(t *testing.T) {
		dir := t.TempDir()
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("cannot mount a small tmpfs under CI (the CI run is root): %v", err)
			}
			t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
		}
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		s := MustOpenStore(t, testStoreConfig(dir))
		var stored []depot.NeedleID
		var err error
		for id := depot.NeedleID(1); id < 100; id++ {
			if _, err = s.Write(ctx, 1, 0, id, 1, bytes.NewReader(payload(id, 100<<10)), 100<<10); err != nil {
				break
			}
			stored = append(stored, id)
		}
		if !errors.Is(err, depot.ErrDiskFull) {
			t.Fatalf("Write = %v, want ErrDiskFull", err)
		}
		if len(stored) < 5 {
			t.Fatalf("only %d needles fit", len(stored))
		}
		for _, id := range stored {
			mustRead(t, s, 1, 0, id, 1, payload(id, 100<<10))
		}
		if !s.Status().Dirs[0].ReadOnly {
			t.Fatal("full directory not read-only")
		}
		if _, err := s.Write(ctx, 2, 0, 1, 1, bytes.NewReader([]byte("x")), 1); !errors.Is(err, depot.ErrDiskFull) {
			t.Fatalf("new shard file with no room: %v", err)
		}
		s.Close()
		// Reopened with a second, roomy directory: nothing was lost and new
		// shard files go there.
		other := t.TempDir()
		s2 := MustOpenStore(t, testStoreConfig(dir, other))
		mustWrite(t, s2, 2, 0, 1, 1, []byte("x"))
		for _, id := range stored {
			mustRead(t, s2, 1, 0, id, 1, payload(id, 100<<10))
		}
	})
}

func TestStore_Compact(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := testStoreConfig(dir)
	s := MustOpenStore(t, c)
	const n = 300
	for id := depot.NeedleID(1); id <= n; id++ {
		mustWrite(t, s, 1, 0, id, 3, payload(id, 20000))
	}
	for id := depot.NeedleID(1); id <= n; id += 2 {
		if err := s.Delete(ctx, 1, 0, id, 3); err != nil {
			t.Fatal(err)
		}
	}
	before := s.Status().Files[0].FileBytes

	// Readers and writers run throughout the compaction.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	var mu sync.Mutex
	written := map[depot.NeedleID]int{}
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 400; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := depot.NeedleID(1000 + w*100000 + i)
				b := payload(id, 5000+i%7000)
				if _, err := s.Write(ctx, 1, 0, id, 3, bytes.NewReader(b), int64(len(b))); err != nil {
					errc <- err
					return
				}
				mu.Lock()
				written[id] = len(b)
				mu.Unlock()
			}
		}()
	}
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := depot.NeedleID(2 + 2*((i*7+r)%(n/2)))
				got, err := s.Read(ctx, 1, 0, id, 3)
				if err != nil || !bytes.Equal(got, payload(id, 20000)) {
					errc <- fmt.Errorf("read %d during compaction: %v", id, err)
					return
				}
			}
		}()
	}
	res, err := s.Compact(ctx, 1, 0)
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	after := s.Status().Files[0]
	t.Logf("compaction %+v with %d concurrent writes", res, len(written))
	if res.Reclaimed < n/2*20000 || res.After >= res.Before || res.Before < before {
		t.Fatalf("compaction %+v: file had %d bytes when it started", res, before)
	}
	if after.GarbageBytes != 0 {
		t.Fatalf("garbage after compaction: %+v", after)
	}
	check := func(s *Store) {
		t.Helper()
		for id := depot.NeedleID(1); id <= n; id++ {
			if id%2 == 1 {
				if _, err := s.Read(ctx, 1, 0, id, 3); !errors.Is(err, depot.ErrNotFound) {
					t.Fatalf("deleted %d: %v", id, err)
				}
				continue
			}
			mustRead(t, s, 1, 0, id, 3, payload(id, 20000))
		}
		for id, size := range written {
			mustRead(t, s, 1, 0, id, 3, payload(id, size))
		}
		l, err := s.List(ctx, 1, 0)
		if err != nil || len(l) != n+len(written) {
			t.Fatalf("List: %d entries, %v", len(l), err)
		}
	}
	check(s)
	if len(written) == 0 {
		t.Log("no write overlapped the compaction")
	}
	s.Close()
	fi, _ := os.Stat(filepath.Join(dir, "1_0.shard"))
	if fi.Size() != after.FileBytes || fi.Size() >= res.Before {
		t.Fatalf("file size %d after compaction, want %d (< %d)", fi.Size(), after.FileBytes, res.Before)
	}
	check(MustOpenStore(t, c))
}

func TestStore_Close(t *testing.T) {
	ctx := context.Background()
	s := MustOpenStore(t, testStoreConfig(t.TempDir()))
	mustWrite(t, s, 1, 0, 1, 1, []byte("abc"))
	n, err := s.Open(ctx, 1, 0, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var buf bytes.Buffer
	if _, err := n.ReadRange(ctx, &buf, 0, 3); err != nil || buf.String() != "abc" {
		t.Fatalf("needle opened before Close: %q, %v", buf.String(), err)
	}
	n.Close()
	if _, err := s.Write(ctx, 1, 0, 2, 1, bytes.NewReader(nil), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if _, err := s.Read(ctx, 1, 0, 1, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

func TestStore_GroupCommit(t *testing.T) {
	for _, p := range []FsyncPolicy{FsyncGroup, FsyncAlways} {
		t.Run(string(p), func(t *testing.T) {
			dir := t.TempDir()
			c := testStoreConfig(dir)
			c.Fsync = p
			s := MustOpenStore(t, c)
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 20 {
						id := depot.NeedleID(w*100 + i)
						mustWrite(t, s, 1, 0, id, 1, payload(id, 3000))
					}
				}()
			}
			wg.Wait()
			f, _ := s.shard(shardKey{1, 0})
			f.mu.RLock()
			h := f.h
			f.mu.RUnlock()
			h.mu.Lock()
			synced := h.synced
			h.mu.Unlock()
			if done := h.seq.Load(); synced < done {
				t.Fatalf("acknowledged writes not synced: %d of %d records", synced, done)
			}
		})
	}
}

func TestStoreConfig_Validate(t *testing.T) {
	for name, c := range map[string]StoreConfig{
		"NoDirs":     {},
		"BadFsync":   {Dirs: []string{"a"}, Fsync: "sometimes"},
		"Duplicate":  {Dirs: []string{"a", "./a"}},
		"HugeNeedle": {Dirs: []string{"a"}, MaxNeedleSize: 1 << 30},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := DefaultStoreConfig("a").Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestStore_Concurrent(t *testing.T) {
	// Many writers over a few shard files with group commit, with time
	// bounded; every acknowledged needle reads back.
	c := testStoreConfig(t.TempDir())
	c.Fsync = FsyncGroup
	s := MustOpenStore(t, c)
	deadline := time.Now().Add(500 * time.Millisecond)
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[[2]uint64]int{}
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200 && time.Now().Before(deadline); i++ {
				vol := depot.VolumeID(1 + w%3)
				id := depot.NeedleID(w<<20 | i)
				size := (w*i*131 + 1) % 70000
				mustWrite(t, s, vol, 0, id, 1, payload(id, size))
				mu.Lock()
				acked[[2]uint64{uint64(vol), uint64(id)}] = size
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for k, size := range acked {
		mustRead(t, s, depot.VolumeID(k[0]), 0, depot.NeedleID(k[1]), 1, payload(depot.NeedleID(k[1]), size))
	}
}
