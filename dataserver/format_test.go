package dataserver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"depot"
)

// The v1 fixture in testdata/v1 was written by this package: shard 5/1
// with needles 1..4 (needle i holds payload(i, i*7000), cookie 0x1234),
// needle 3 deleted, and an index checkpoint. Regenerate with
// DEPOT_WRITE_FIXTURES=1 go test -run TestFormat_V1Fixture.
func TestFormat_V1Fixture(t *testing.T) {
	src := filepath.Join("testdata", "v1")
	if os.Getenv("DEPOT_WRITE_FIXTURES") != "" {
		os.RemoveAll(src)
		s := MustOpenStore(t, testStoreConfig(src))
		for i := depot.NeedleID(1); i <= 4; i++ {
			mustWrite(t, s, 5, 1, i, 0x1234, payload(i, int(i)*7000))
		}
		if err := s.Delete(context.Background(), 5, 1, 3, 0x1234); err != nil {
			t.Fatal(err)
		}
		s.Close()
		os.Remove(filepath.Join(src, "LOCK"))
	}
	for _, withIndex := range []bool{true, false} {
		dir := copyDir(t, src)
		if !withIndex {
			os.Remove(filepath.Join(dir, "5_1.idx"))
		}
		s := MustOpenStore(t, testStoreConfig(dir))
		for i := depot.NeedleID(1); i <= 4; i++ {
			if i == 3 {
				if _, err := s.Read(context.Background(), 5, 1, i, 0x1234); !errors.Is(err, depot.ErrNotFound) {
					t.Fatalf("deleted needle: %v", err)
				}
				continue
			}
			mustRead(t, s, 5, 1, i, 0x1234, payload(i, int(i)*7000))
		}
		if s.ChecksumFailures() != 0 || len(s.Ignored()) != 0 {
			t.Fatalf("fixture: %d failures, ignored %v", s.ChecksumFailures(), s.Ignored())
		}
	}
}

func FuzzDecodeHeader(f *testing.F) {
	var b [headerSize]byte
	header{Needle: 7, Cookie: 9, Size: 100}.put(b[:], 42)
	f.Add(b[:])
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := decodeHeader(in, 42)
		if err != nil {
			if !errors.Is(err, depot.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		var out [headerSize]byte
		h.put(out[:], 42)
		if string(out[:]) != string(in[:headerSize]) {
			t.Fatal("decode/encode round trip differs")
		}
	})
}
