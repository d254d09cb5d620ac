// Package client is depot's native Go API: it stores objects erasure-coded
// across dataservers and reads them back.
//
// A Client talks to the nameserver for metadata only (volume leases and
// volume member lists) and streams shard bytes straight to and from the
// dataservers; object bytes never pass through the nameserver.
//
// # Writes
//
// Put splits a body into segments of at most Config.SegmentSize bytes. Each
// segment becomes one needle in one volume: the client takes a needle id
// from a lease (a batch of ids the nameserver granted for one writable
// volume, so most writes never wait on the nameserver), encodes the segment
// stripe by stripe with the erasure package and streams shard i to member
// i of the volume, all members in parallel, each on one streaming HTTP
// request. Memory is a few stripes per write, whatever the body's size. A
// segment is stored once at least Config.Quorum members (k+1 by default)
// answered that it is durable; members that missed it are reported to the
// nameserver for repair. A write that ends with a member list older than
// Config.VolumeTTL looks the volume up again: a member replaced meanwhile
// (a move or a rebuild switched its slot) is reported missed too, since
// its copy leaves with the slot. A segment whose volume cannot reach quorum is
// retried on another volume when the body can be rewound (an io.Seeker) or
// when no byte of it was sent yet.
//
// # Segment tags
//
// Every shard of a segment ends with a small tag, after the erasure-coded
// bytes (which the erasure package's layout fixes; the tag is invisible to
// range reads): the tag's compact JSON, its length as a little-endian
// uint16, and the two bytes "DT":
//
//	{"s":1234,"e":"<md5 hex>","t":"image/jpeg","m":false} <len:2> "DT"
//
// s is the segment's length in bytes, e the MD5 of the blob (set on the
// only segment of a blob and on manifests), t the content type given at
// upload, m true when the segment is a manifest. Segments stored with
// PutOptions.Pending (the S3 gateway's, before their commit to the
// namespace) also carry "n":true and "w", the write time in Unix seconds:
// the orphan sweep (package repair) deletes such a segment once it is older
// than its grace period and no namespace entry references its fid. Native
// blobs' segments (PutBlob) carry "w" without "n", and each segment of a
// blob of several also "o", the fid of the blob's manifest; see "Failed
// writes". Tags with neither "n" nor "w" are never swept. The tag is at most 508
// bytes, so one suffix range request (the last 512 bytes) reads it. Tags
// let a fid be read with no namespace lookup, and let repair and fsck know
// a needle's logical size. Every shard carries the same tag, so a lost
// shard's tag is copied from any other.
//
// # Blobs and manifests
//
// PutBlob stores a body under a single fid for the native /v1 API. A body
// of one segment is that segment's fid. A longer body is stored as its
// segments plus one manifest segment, whose bytes are the JSON
//
//	{"size":N,"etag":"<md5 hex>","segments":[{"fid":"3,1a2b...","size":33554432},...]}
//
// and whose tag has m true; the blob's fid is the manifest's fid. PutBlob
// reserves the manifest's fid (a needle id from a lease) when it writes the
// first segment's tag, names it in every segment's tag ("o"), and writes
// the manifest to exactly that fid at the end, or fails.
//
// # Failed writes
//
// A write that fails is refused to its caller, who never learns its fids,
// so what it stored is garbage: a segment attempt that missed its quorum
// (its members that took the whole stream keep the needle), an attempt
// retried on another volume, the segments stored before a later segment
// or the manifest failed. The client deletes them at once from every
// member (best effort, 10s). What that misses (a member unreachable, a
// crash of the writer) is the orphan sweep's: S3 segments by their "n"
// tag and the namespace's references; native needles, which nothing
// commits, by a rule on the needles themselves (package repair, "Failed
// native writes"): once "w" is the sweep's grace old, a native needle is
// garbage when fewer than k members of its volume hold it (it cannot be
// read: deleting it loses nothing) or when it names in "o" a manifest that
// fewer than k members hold (the blob never came to be). A healthy native
// PUT costs what it did: no request is added. A failed write that left k
// or more copies of its one needle is readable, and anti-entropy completes
// it like a write whose missed report was lost: it is kept (a leak, never
// a loss). A blob of several segments must be written within
// Config.MaxBlobWrite (30m), below the sweep's grace (1h), or its early
// segments could be swept before its manifest is written: PutBlob fails
// past it.
//
// # Reads
//
// Get reads a byte range of an object: it maps the range onto segments and,
// for each segment, onto the data shards that hold it (erasure.Codec
// NewReader), reading them in parallel with HTTP range requests and handing
// bytes to the caller as they arrive. A dead, slow or corrupt member is
// replaced by a parity member and the stripe is decoded; reads are hedged
// after Config.HedgeAfter.
//
// A read must outlive an overwrite or delete of its object, whose old
// segments the nameserver's delete queue deletes DeleteGrace later. The
// dataservers refuse the queue's deletes of a needle they are serving
// (dataserver/doc.go, "Open readers and holds"), so a read of one segment
// needs nothing more: its shard requests are open from start to end. A
// read that spans several segments also holds them all, on every member of
// their volumes (POST /holds, one request per member, sent in the
// background when the read opens its first segment), renews the hold every
// Config.HoldTTL/3 and releases it on Close; a reader that vanishes stops
// renewing and its hold expires after HoldTTL. The nameserver stops
// yielding to readers ReadHoldMax past DeleteGrace, so no reader keeps
// space for longer.
package client
