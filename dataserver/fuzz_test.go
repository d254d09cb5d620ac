package dataserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"depot"
)

// fuzzStoreConfig is the test configuration with small checksum blocks,
// so that short inputs hold several blocks.
func fuzzStoreConfig(dir string) StoreConfig {
	c := testStoreConfig(dir)
	c.BlockSize = 512
	return c
}

// seedShard writes a small shard file with the store itself: three
// needles over several blocks, one deleted, and its index checkpoint.
func seedShard(f *testing.F) (shard, idx []byte) {
	dir := f.TempDir()
	s, err := OpenStore(fuzzStoreConfig(dir))
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	for i, n := range []int{700, 0, 1500} {
		id := depot.NeedleID(i + 1)
		if _, err := s.Write(ctx, 5, 1, id, 0x1234, bytes.NewReader(payload(id, n)), int64(n)); err != nil {
			f.Fatal(err)
		}
	}
	if err := s.Delete(ctx, 5, 1, 2, 0x1234); err != nil {
		f.Fatal(err)
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	shard, err = os.ReadFile(filepath.Join(dir, "5_1.shard"))
	if err != nil {
		f.Fatal(err)
	}
	idx, err = os.ReadFile(filepath.Join(dir, "5_1.idx"))
	if err != nil {
		f.Fatal(err)
	}
	return shard, idx
}

// fixChecksums makes checksums right again where the fuzzer broke them,
// so that its inputs reach the code behind each check: bit 0 repairs the
// superblock (magic, version, names shard 5/1, block size in range), bit 1
// every needle header and block found at an 8-byte boundary, bit 2 the
// index checkpoint (magic, version, generation). Counts, sizes and offsets
// are left as the fuzzer made them.
func fixChecksums(shard, idx []byte, fix uint8) {
	var gen uint64
	if len(shard) >= superSize {
		if fix&1 != 0 {
			copy(shard, superMagic)
			binary.LittleEndian.PutUint16(shard[8:], formatV1)
			if bs := binary.LittleEndian.Uint32(shard[12:]); bs < 512 || bs > 1<<20 {
				binary.LittleEndian.PutUint32(shard[12:], 512)
			}
			binary.LittleEndian.PutUint32(shard[16:], 5)
			binary.LittleEndian.PutUint32(shard[20:], 1)
			binary.LittleEndian.PutUint32(shard[60:], crc32c(shard[:60]))
		}
		gen = binary.LittleEndian.Uint64(shard[24:])
		if sb, err := decodeSuperblock(shard); err == nil && fix&2 != 0 {
			block := int64(sb.BlockSize)
			for p := int64(superSize); p+headerSize <= int64(len(shard)); p += recordAlign {
				if string(shard[p:p+4]) != needleMagic {
					continue
				}
				binary.LittleEndian.PutUint32(shard[p+28:], headerCRC(gen, shard[p:]))
				h, err := decodeHeader(shard[p:], gen)
				if err != nil {
					continue
				}
				off := p + headerSize
				for i := int64(0); i < nblocks(h.Size, block); i++ {
					bl := min(block, h.Size-i*block)
					if off+bl+crcSize > int64(len(shard)) {
						break
					}
					binary.LittleEndian.PutUint32(shard[off+bl:], blockCRC(h.Needle, i, shard[off:off+bl]))
					off += bl + crcSize
				}
				p += recordLen(h.Size, block) - recordAlign
			}
		}
	}
	if fix&4 != 0 && len(idx) >= 44 {
		copy(idx, indexMagic)
		binary.LittleEndian.PutUint16(idx[8:], formatV1)
		binary.LittleEndian.PutUint64(idx[16:], gen)
		binary.LittleEndian.PutUint32(idx[len(idx)-4:], crc32c(idx[:len(idx)-4]))
	}
}

// FuzzOpenShard opens a data directory holding a shard file and an index
// checkpoint made of arbitrary bytes: opening never panics; a superblock
// that cannot be read quarantines the file; every needle the store then
// lists reads back whole or fails with ErrCorrupt (or ErrNotFound), and a
// scrub agrees; the store still takes a new needle, which survives a
// reopen.
func FuzzOpenShard(f *testing.F) {
	shard, idx := seedShard(f)
	f.Add(shard, idx, uint8(0))
	f.Add(shard, []byte(nil), uint8(0))
	f.Add(shard[:len(shard)-9], idx, uint8(7))
	f.Add(shard[:superSize], []byte(nil), uint8(1))
	f.Add([]byte("DEPOTSHD"), []byte("DEPOTIDX"), uint8(7))
	big := bytes.Clone(idx)
	binary.LittleEndian.PutUint64(big[32:], 1<<60+uint64(len(idx)-44)/16) // 16*count wraps to the real length
	f.Add(shard, big, uint8(4))
	f.Fuzz(func(t *testing.T, shard, idx []byte, fix uint8) {
		if len(shard) > 1<<20 || len(idx) > 1<<20 {
			return
		}
		fixChecksums(shard, idx, fix)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "5_1.shard"), shard, 0o644); err != nil {
			t.Fatal(err)
		}
		if len(idx) > 0 {
			if err := os.WriteFile(filepath.Join(dir, "5_1.idx"), idx, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s, err := OpenStore(fuzzStoreConfig(dir))
		if err != nil {
			t.Fatalf("OpenStore: %v", err)
		}
		defer s.Close()
		ctx := context.Background()
		needles, err := s.List(ctx, 5, 1)
		if err != nil && !errors.Is(err, depot.ErrNotFound) {
			t.Fatalf("List: %v", err)
		}
		var corrupt int64
		for _, n := range needles {
			b, err := s.Read(ctx, 5, 1, n.ID, n.Cookie)
			switch {
			case n.Deleted || errors.Is(err, depot.ErrNotFound):
			case errors.Is(err, depot.ErrCorrupt):
				corrupt++
			case err != nil:
				t.Fatalf("Read %x: %v, want nil or ErrCorrupt", uint64(n.ID), err)
			case int64(len(b)) != n.Size:
				t.Fatalf("Read %x: %d bytes, listed with %d", uint64(n.ID), len(b), n.Size)
			}
		}
		res, err := s.Scrub(ctx, func(context.Context, int64) error { return nil }, func(depot.VolumeID, int, depot.NeedleID, depot.Cookie) {})
		if err != nil || res.Corrupt != corrupt {
			t.Fatalf("Scrub: %+v, %v; reads found %d corrupt", res, err, corrupt)
		}
		const fresh = depot.NeedleID(1 << 40)
		body := []byte("written after recovery")
		if _, err := s.Write(ctx, 5, 1, fresh, 7, bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatalf("Write after recovery: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		s2, err := OpenStore(fuzzStoreConfig(dir))
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer s2.Close()
		if got, err := s2.Read(ctx, 5, 1, fresh, 7); err != nil || !bytes.Equal(got, body) {
			t.Fatalf("needle written after recovery reads back %q, %v", got, err)
		}
	})
}
