// Package erasure stripes an object into k data shards and m parity shards,
// maps byte ranges of the object onto the shards, and reads ranges back,
// rebuilding missing or failing shards on the fly. It wraps
// github.com/klauspost/reedsolomon (GF(2^8), its default matrix) and knows
// nothing of HTTP, disks or the cluster: shards come and go as byte slices
// (Encoder) and as io.ReadClosers opened through a ShardOpener (NewReader).
//
// # What it owns
//
//   - The layout: which bytes of an object every shard holds, and how long
//     every shard is (Codec.ShardSize). The layout is described below; it is
//     part of the on-disk format, because a shard's bytes are stored as they
//     are and a later reader must find them in the same places.
//   - Streaming encode (Codec.NewEncoder): any io.Reader, of a known or
//     unknown length, is cut into stripes and encoded one stripe at a time,
//     in memory bounded by one stripe.
//   - Range mapping (Codec.Map): which data shards, at which offsets, hold a
//     byte range of the object.
//   - Reads (Codec.NewReader): a healthy read touches only the data shards
//     that hold the range and decodes nothing; a degraded read replaces up to
//     m missing, failing or slow shards by others and reconstructs.
//
// Checksums are not the business of this package: the dataserver checks
// them and reports a mismatch as a read error, which marks the shard failed.
//
// # Layout
//
// A codec has k data shards, m parity shards (1 ≤ k, 1 ≤ m, k+m ≤ 32) and a
// stripe unit U (DefaultUnit, 1 MiB, unless configured). A stripe carries up
// to C = k×U bytes of the object. For an object of S bytes:
//
//	F = S / C              number of full stripes
//	R = S mod C            bytes in a last, partial stripe (none when R = 0)
//	L = ceil(R / k)        per-shard length of the partial stripe
//	ShardSize(S) = F×U + L bytes, the same for every shard, data or parity
//
// Stripe t (counting from 0) has a per-shard length Lt, which is U for a full
// stripe and L for the partial stripe, and occupies the bytes
// [t×U, t×U+Lt) of every shard: a shard is its stripes' pieces one after the
// other, with nothing in between, so the pieces of consecutive stripes are
// contiguous and any span of stripes is one contiguous byte range of a shard.
//
// Inside stripe t, the object bytes [t×C, t×C + k×Lt) are cut into k
// consecutive pieces of Lt bytes: data shard i (0 ≤ i < k) holds the object
// bytes [t×C + i×Lt, t×C + (i+1)×Lt), unchanged (the code is systematic).
// So the object byte at offset o lives in
//
//	stripe t = o / C,  w = o − t×C,
//	data shard w / Lt, at shard offset t×U + w mod Lt.
//
// Parity shard k+j (0 ≤ j < m) holds, in the same Lt bytes, the j-th
// Reed-Solomon parity of the stripe's k data pieces, computed column by
// column: byte x of a parity piece depends only on byte x of each data piece.
//
// Padding: only the partial stripe is padded. Its data pieces hold the R
// remaining object bytes followed by k×L − R zero bytes (fewer than k), so
// the padding sits at the end of the last data shard or shards; the parity is
// computed over the padded pieces. Padding is never returned by a read. The
// partial stripe is exactly what reedsolomon's Split would make of the R
// bytes. There is no alignment: reedsolomon accepts any shard length, and a
// small object costs (k+m)/k times its size, not k+m stripe units.
//
// A zero-byte object has no stripes: ShardSize(0) is 0 and every shard is
// empty. An Encoder fed an empty reader returns io.EOF from its first Next.
//
// # Examples
//
// k=4, m=2, U=1 MiB, a 10 KiB product thumbnail (S = 10240): F = 0,
// R = 10240, L = 2560. Each of the 6 shards holds 2560 bytes, 15360 bytes in
// all (1.5×S). Data shard 0 holds object bytes 0–2559, shard 1 2560–5119,
// shard 2 5120–7679, shard 3 7680–10239; shards 4 and 5 hold parity.
//
// k=4, m=2, U=1 MiB, S = 9 MiB + 5 = 9437189 bytes: C = 4 MiB, F = 2,
// R = 1048581, L = ceil(1048581/4) = 262146, ShardSize = 2097152 + 262146 =
// 2359298. Stripes 0 and 1 fill shard bytes [0, 1 MiB) and [1 MiB, 2 MiB);
// the partial stripe fills [2 MiB, 2359298). In it, data shard 3 holds the
// object bytes [9175046, 9437189), 262143 bytes, followed by 3 zero bytes of
// padding. The object byte at o = 5000000 is in stripe 1 (w = 805696), data
// shard 0, shard offset 1048576 + 805696 = 1854272.
//
// # Reads
//
// NewReader streams a range stripe by stripe. While every data shard it
// needs answers, it opens only those shards, each once, for the contiguous
// span that holds the range, and copies bytes without decoding. When a shard
// fails (the open fails, or a read fails or comes up short, at any point) it
// is never used again by that reader: from the stripe that was being read
// on, the reader reads the same column window of every stripe from k working
// shards (data shards first, then parity) and reconstructs the data shards it
// needs. With ReadOptions.HedgeAfter set, a stripe that has not arrived in
// time has another shard added to the race, and the first k to answer win.
// Memory is bounded by a few stripe units per opened shard.
package erasure
