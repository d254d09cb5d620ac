package dataserver

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"depot"
)

// On-disk constants. The format is specified in doc.go; keep the two in step.
const (
	superMagic   = "DEPOTSHD" // shard file superblock magic
	indexMagic   = "DEPOTIDX" // index checkpoint magic
	needleMagic  = "NDL1"     // needle header magic
	formatV1     = 1          // shard file and index format version
	superSize    = 64         // bytes of superblock at the start of a shard file
	headerSize   = 32         // bytes of needle header
	crcSize      = 4          // bytes of one block checksum
	recordAlign  = 8          // needle records start at multiples of this
	defaultBlock = 16 << 10   // data bytes covered by one block checksum

	flagTombstone = 1 << 0 // needle header flag: this record deletes the needle

	// maxNeedleSize is the largest needle the index can describe (27 bits).
	maxNeedleSize = 1<<27 - 1
	// maxFileOffset is the largest record offset the index can describe
	// (36 bits of 8-byte units).
	maxFileOffset = (1<<36 - 1) * recordAlign
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// superblock is the first superSize bytes of a shard file.
type superblock struct {
	Version   uint16
	BlockSize uint32
	Volume    depot.VolumeID
	Index     uint32
	Gen       uint64 // random; changes on every compaction, matches the .idx
}

func (sb superblock) encode() []byte {
	b := make([]byte, superSize)
	copy(b[0:8], superMagic)
	binary.LittleEndian.PutUint16(b[8:], sb.Version)
	binary.LittleEndian.PutUint32(b[12:], sb.BlockSize)
	binary.LittleEndian.PutUint32(b[16:], uint32(sb.Volume))
	binary.LittleEndian.PutUint32(b[20:], sb.Index)
	binary.LittleEndian.PutUint64(b[24:], sb.Gen)
	binary.LittleEndian.PutUint32(b[60:], crc32c(b[:60]))
	return b
}

func decodeSuperblock(b []byte) (superblock, error) {
	if len(b) < superSize {
		return superblock{}, fmt.Errorf("%w: superblock: short (%d bytes)", depot.ErrCorrupt, len(b))
	}
	if string(b[0:8]) != superMagic {
		return superblock{}, fmt.Errorf("%w: superblock: bad magic %q", depot.ErrCorrupt, b[0:8])
	}
	if got, want := crc32c(b[:60]), binary.LittleEndian.Uint32(b[60:]); got != want {
		return superblock{}, fmt.Errorf("%w: superblock: checksum %08x, want %08x", depot.ErrCorrupt, got, want)
	}
	sb := superblock{
		Version:   binary.LittleEndian.Uint16(b[8:]),
		BlockSize: binary.LittleEndian.Uint32(b[12:]),
		Volume:    depot.VolumeID(binary.LittleEndian.Uint32(b[16:])),
		Index:     binary.LittleEndian.Uint32(b[20:]),
		Gen:       binary.LittleEndian.Uint64(b[24:]),
	}
	if sb.Version != formatV1 {
		return superblock{}, fmt.Errorf("%w: superblock: unknown format version %d", depot.ErrCorrupt, sb.Version)
	}
	if sb.BlockSize < 512 || sb.BlockSize > 1<<20 {
		return superblock{}, fmt.Errorf("%w: superblock: bad block size %d", depot.ErrCorrupt, sb.BlockSize)
	}
	return sb, nil
}

// header is a needle header as stored before the needle's blocks.
type header struct {
	Flags  uint8
	Needle depot.NeedleID
	Cookie depot.Cookie
	Size   int64
}

func (h header) tombstone() bool { return h.Flags&flagTombstone != 0 }

// headerCRC is the header checksum: CRC32C over the file's generation
// (8 bytes little-endian, from the superblock) and header bytes 0..27.
// Seeding with the generation means bytes inside a needle's data that
// happen to look like a header never pass for one during recovery.
func headerCRC(gen uint64, b []byte) uint32 {
	var seed [8]byte
	binary.LittleEndian.PutUint64(seed[:], gen)
	return crc32.Update(crc32.Update(0, castagnoli, seed[:]), castagnoli, b[:28])
}

func (h header) put(b []byte, gen uint64) {
	copy(b[0:4], needleMagic)
	b[4] = h.Flags
	b[5], b[6], b[7] = 0, 0, 0
	binary.LittleEndian.PutUint64(b[8:], uint64(h.Needle))
	binary.LittleEndian.PutUint32(b[16:], uint32(h.Cookie))
	binary.LittleEndian.PutUint64(b[20:], uint64(h.Size))
	binary.LittleEndian.PutUint32(b[28:], headerCRC(gen, b))
}

// errBadHeader is wrapped by decodeHeader errors; it wraps depot.ErrCorrupt.
var errBadHeader = fmt.Errorf("%w: bad needle header", depot.ErrCorrupt)

func decodeHeader(b []byte, gen uint64) (header, error) {
	if len(b) < headerSize {
		return header{}, fmt.Errorf("%w: short", errBadHeader)
	}
	if string(b[0:4]) != needleMagic {
		return header{}, fmt.Errorf("%w: bad magic", errBadHeader)
	}
	if got, want := headerCRC(gen, b), binary.LittleEndian.Uint32(b[28:]); got != want {
		return header{}, fmt.Errorf("%w: checksum %08x, want %08x", errBadHeader, got, want)
	}
	h := header{
		Flags:  b[4],
		Needle: depot.NeedleID(binary.LittleEndian.Uint64(b[8:])),
		Cookie: depot.Cookie(binary.LittleEndian.Uint32(b[16:])),
		Size:   int64(binary.LittleEndian.Uint64(b[20:])),
	}
	if h.Flags&^flagTombstone != 0 || b[5]|b[6]|b[7] != 0 {
		return header{}, fmt.Errorf("%w: unknown flags %#x", errBadHeader, b[4:8])
	}
	if h.Size < 0 || h.Size > maxNeedleSize || (h.tombstone() && h.Size != 0) {
		return header{}, fmt.Errorf("%w: bad size %d", errBadHeader, h.Size)
	}
	return h, nil
}

// nblocks returns how many checksum blocks a needle of size bytes has.
func nblocks(size, block int64) int64 { return (size + block - 1) / block }

// recordLen returns the bytes a needle record of size bytes occupies,
// including header, block checksums and alignment padding.
func recordLen(size, block int64) int64 {
	n := headerSize + size + crcSize*nblocks(size, block)
	return (n + recordAlign - 1) &^ (recordAlign - 1)
}

// blockCRC is the checksum of block i of needle id: CRC32C over the needle
// id (8 bytes little-endian), the block number (4 bytes little-endian) and
// the block's data. Seeding with the id and number catches blocks that were
// written to the wrong place.
func blockCRC(id depot.NeedleID, i int64, data []byte) uint32 {
	var seed [12]byte
	binary.LittleEndian.PutUint64(seed[0:], uint64(id))
	binary.LittleEndian.PutUint32(seed[8:], uint32(i))
	c := crc32.Update(0, castagnoli, seed[:])
	return crc32.Update(c, castagnoli, data)
}
