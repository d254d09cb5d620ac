package dataserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"depot"
)

// slowWrite is a write whose body arrives through a pipe the test feeds.
type slowWrite struct {
	pw   *io.PipeWriter
	body []byte
	done chan error
}

// startSlowWrite starts writing needle id of n bytes (size declared, or
// -1) to shard 1/0 of s and feeds it the first sent bytes; it returns once
// the store has read them.
func startSlowWrite(t *testing.T, s *Store, id depot.NeedleID, n, sent int, declared bool) *slowWrite {
	t.Helper()
	pr, pw := io.Pipe()
	sw := &slowWrite{pw: pw, body: payload(id, n), done: make(chan error, 1)}
	// Cleanups run last first: this one before the store closes.
	t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) })
	size := int64(-1)
	if declared {
		size = int64(n)
	}
	go func() {
		_, err := s.Write(context.Background(), 1, 0, id, 1, pr, size)
		pr.CloseWithError(errors.New("write returned"))
		sw.done <- err
	}()
	// The pipe hands bytes over only as the store reads them.
	if _, err := pw.Write(sw.body[:sent]); err != nil {
		t.Fatalf("feeding the slow write: %v", err)
	}
	return sw
}

// finish sends the rest of the body and returns the write's result.
func (sw *slowWrite) finish(t *testing.T, sent int) error {
	t.Helper()
	go func() {
		sw.pw.Write(sw.body[sent:])
		sw.pw.Close()
	}()
	return waitDone(t, sw.done)
}

func waitDone(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("write did not end within 10s")
		return nil
	}
}

// One client trickling a large shard must not hold up other writes to the
// same shard file: the store reads its body without holding the file's
// append lock. Both a declared length (the record's place is reserved)
// and a chunked body of unknown length (spooled) are tried, the slow body
// well past the bytes read before any lock is taken.
func TestStore_SlowWriterDoesNotBlock(t *testing.T) {
	for _, declared := range []bool{true, false} {
		name := map[bool]string{true: "Declared", false: "Unknown"}[declared]
		t.Run(name, func(t *testing.T) {
			s := MustOpenStore(t, testStoreConfig(t.TempDir()))
			mustWrite(t, s, 1, 0, 100, 1, payload(100, 10)) // the shard file exists
			const n, sent = 4 << 20, 3 << 19
			slow := startSlowWrite(t, s, 1, n, sent, declared)

			done := make(chan error, 1)
			go func() {
				for id := depot.NeedleID(2); id < 10; id++ {
					size := 1000 * int(id)
					if id == 9 {
						size = 2 << 20 // a large one too
					}
					if _, err := s.Write(context.Background(), 1, 0, id, 1, bytes.NewReader(payload(id, size)), int64(size)); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("write beside the slow one: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("writes to the shard file are blocked behind a slow client")
			}
			if err := slow.finish(t, sent); err != nil {
				t.Fatalf("slow write: %v", err)
			}
			mustRead(t, s, 1, 0, 1, 1, slow.body)
			for id := depot.NeedleID(2); id < 10; id++ {
				size := 1000 * int(id)
				if id == 9 {
					size = 2 << 20
				}
				mustRead(t, s, 1, 0, id, 1, payload(id, size))
			}
		})
	}
}

// A write whose body stops half-way leaves a reserved region that never
// completes, with records written after it. A crash then must keep the
// later records, never resurrect the unfinished one, and not count it as
// damage; a failed slow write likewise stores nothing, and compaction
// reclaims its bytes.
func TestStore_UnfinishedRegion(t *testing.T) {
	for _, declared := range []bool{true, false} {
		name := map[bool]string{true: "Declared", false: "Unknown"}[declared]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			c := testStoreConfig(dir)
			c.CheckpointInterval = -1
			s := MustOpenStore(t, c)
			mustWrite(t, s, 1, 0, 100, 1, payload(100, 10))
			if err := s.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			const n, sent = 4 << 20, 3 << 19
			slow := startSlowWrite(t, s, 1, n, sent, declared)
			after := []int{5000, 3 << 20, 70}
			for i, size := range after {
				id := depot.NeedleID(2 + i)
				mustWrite(t, s, 1, 0, id, 1, payload(id, size))
			}
			// A checkpoint taken now covers the file only up to the
			// region still awaiting its body.
			if err := s.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			f, err := s.shard(shardKey{1, 0})
			if err != nil {
				t.Fatal(err)
			}
			f.ckptMu.Lock()
			covered := f.ckptEnd
			f.ckptMu.Unlock()
			f.appendMu.Lock()
			end, pending := f.end, len(f.pending)
			f.appendMu.Unlock()
			if declared && (pending != 1 || covered >= end) {
				t.Fatalf("checkpoint covers %d of %d bytes with %d regions pending", covered, end, pending)
			}
			// Crash now: the slow write's region is reserved (or its bytes
			// spooled), the later records complete.
			img := copyDir(t, dir)

			// The slow client gives up: nothing is stored.
			slow.pw.CloseWithError(errors.New("client gave up"))
			if err := waitDone(t, slow.done); err == nil {
				t.Fatal("a write whose body failed succeeded")
			}
			if _, err := s.Read(context.Background(), 1, 0, 1, 1); !errors.Is(err, depot.ErrNotFound) {
				t.Fatalf("failed slow write: Read = %v, want ErrNotFound", err)
			}
			mustWrite(t, s, 1, 0, 1, 1, payload(1, 100))
			res, err := s.Compact(context.Background(), 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			var live int64
			for _, f := range s.Status().Files {
				live = f.LiveBytes
			}
			if res.After > live+int64(len(after)+2)*(headerSize+recordAlign+crcSize)+superSize+3<<20/defaultBlock*crcSize {
				t.Fatalf("compaction kept %d bytes for %d live bytes", res.After, live)
			}
			mustRead(t, s, 1, 0, 1, 1, payload(1, 100))

			s2 := MustOpenStore(t, testStoreConfig(img))
			if _, err := s2.Read(context.Background(), 1, 0, 1, 1); !errors.Is(err, depot.ErrNotFound) {
				t.Fatalf("after a crash, the unfinished needle: Read = %v, want ErrNotFound", err)
			}
			mustRead(t, s2, 1, 0, 100, 1, payload(100, 10))
			for i, size := range after {
				id := depot.NeedleID(2 + i)
				mustRead(t, s2, 1, 0, id, 1, payload(id, size))
			}
			if f := s2.ChecksumFailures(); f != 0 {
				t.Fatalf("an unfinished region counted as %d checksum failures", f)
			}
			mustWrite(t, s2, 1, 0, 1, 1, payload(1, 200))
			mustRead(t, s2, 1, 0, 1, 1, payload(1, 200))
		})
	}
}

// A write of an id that is live with another cookie is refused, whichever
// way its body comes (whole, declared and long, unknown length and long),
// and the live needle stays; a retry with the same cookie, a write after a
// delete and a repair's Rewrite are allowed.
func TestStore_CookieConflict(t *testing.T) {
	ctx := context.Background()
	s := MustOpenStore(t, testStoreConfig(t.TempDir()))
	for i, tc := range []struct {
		name     string
		size     int
		declared bool
	}{
		{"Whole", 3000, true},
		{"Declared", 3 << 20, true},
		{"Unknown", 3 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := depot.NeedleID(10 + i)
			live := payload(id, 500)
			mustWrite(t, s, 1, 0, id, 1, live)
			other := payload(id+100, tc.size)
			size := int64(-1)
			if tc.declared {
				size = int64(tc.size)
			}
			_, err := s.Write(ctx, 1, 0, id, 2, onlyReader{bytes.NewReader(other)}, size)
			if !errors.Is(err, ErrCookieConflict) || !errors.Is(err, depot.ErrExists) {
				t.Fatalf("Write with another cookie = %v, want ErrCookieConflict", err)
			}
			mustRead(t, s, 1, 0, id, 1, live)
			if _, err := s.WriteNoSync(ctx, 1, 0, id, 2, bytes.NewReader(other), int64(len(other))); !errors.Is(err, ErrCookieConflict) {
				t.Fatalf("WriteNoSync with another cookie = %v, want ErrCookieConflict", err)
			}
			// A retry of the live needle's write is allowed.
			mustWrite(t, s, 1, 0, id, 1, live)
			mustRead(t, s, 1, 0, id, 1, live)
			// Repair replaces it.
			if _, err := s.RewriteNoSync(ctx, 1, 0, id, 3, bytes.NewReader(other), int64(len(other))); err != nil {
				t.Fatalf("RewriteNoSync: %v", err)
			}
			mustRead(t, s, 1, 0, id, 3, other)
			// Once deleted, the id may be written with any cookie.
			if err := s.Delete(ctx, 1, 0, id, 3); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, s, 1, 0, id, 4, live)
			mustRead(t, s, 1, 0, id, 4, live)
		})
	}
	// Two writes of one id with different cookies racing: the one that
	// publishes first wins, the other is refused (the check before the
	// body is read cannot see a needle not yet published).
	t.Run("Race", func(t *testing.T) {
		const id = 99
		a := startSlowWrite(t, s, id, 3<<20, 3<<19, true) // cookie 1
		b := payload(id+1, 2<<20)
		if _, err := s.Write(ctx, 1, 0, id, 2, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatalf("first write to publish: %v", err)
		}
		if err := a.finish(t, 3<<19); !errors.Is(err, ErrCookieConflict) {
			t.Fatalf("second write to publish = %v, want ErrCookieConflict", err)
		}
		mustRead(t, s, 1, 0, id, 2, b)
	})
}

// A compaction that swaps the shard file while a slow body fills its
// region: the write moves its record into the new file when it completes,
// and the needle is there after a reopen.
func TestStore_SlowWriteAcrossCompaction(t *testing.T) {
	for _, declared := range []bool{true, false} {
		name := map[bool]string{true: "Declared", false: "Unknown"}[declared]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := OpenStore(testStoreConfig(dir))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			mustWrite(t, s, 1, 0, 100, 1, payload(100, 5000))
			mustWrite(t, s, 1, 0, 101, 1, payload(101, 5000))
			if err := s.Delete(context.Background(), 1, 0, 101, 1); err != nil {
				t.Fatal(err)
			}
			const n, sent = 3 << 20, 3 << 19
			slow := startSlowWrite(t, s, 1, n, sent, declared)
			mustWrite(t, s, 1, 0, 102, 1, payload(102, 2<<20))
			if _, err := s.Compact(context.Background(), 1, 0); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, s, 1, 0, 103, 1, payload(103, 700))
			if err := slow.finish(t, sent); err != nil {
				t.Fatalf("slow write across a compaction: %v", err)
			}
			mustRead(t, s, 1, 0, 1, 1, slow.body)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := MustOpenStore(t, testStoreConfig(dir))
			mustRead(t, s2, 1, 0, 1, 1, slow.body)
			mustRead(t, s2, 1, 0, 100, 1, payload(100, 5000))
			mustRead(t, s2, 1, 0, 102, 1, payload(102, 2<<20))
			mustRead(t, s2, 1, 0, 103, 1, payload(103, 700))
			if f := s2.ChecksumFailures(); f != 0 {
				t.Fatalf("%d checksum failures", f)
			}
		})
	}
}

// A checkpoint taken while a body fills its region must not claim that
// region: the record completed there after the checkpoint is found on
// open after a crash, though records after it were checkpointed.
func TestStore_CheckpointBesidePendingRegion(t *testing.T) {
	for _, declared := range []bool{true, false} {
		name := map[bool]string{true: "Declared", false: "Unknown"}[declared]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := MustOpenStore(t, testStoreConfig(dir))
			mustWrite(t, s, 1, 0, 100, 1, payload(100, 10))
			const n, sent = 3 << 20, 3 << 19
			slow := startSlowWrite(t, s, 1, n, sent, declared)
			mustWrite(t, s, 1, 0, 2, 1, payload(2, 5000))
			if err := s.Checkpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := slow.finish(t, sent); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, s, 1, 0, 3, 1, payload(3, 700))
			img := copyDir(t, dir) // a crash now; the checkpoint predates the slow record
			s2 := MustOpenStore(t, testStoreConfig(img))
			mustRead(t, s2, 1, 0, 1, 1, slow.body)
			mustRead(t, s2, 1, 0, 2, 1, payload(2, 5000))
			mustRead(t, s2, 1, 0, 3, 1, payload(3, 700))
			mustRead(t, s2, 1, 0, 100, 1, payload(100, 10))
		})
	}
}
