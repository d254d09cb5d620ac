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
// than its grace period and no namespace entry references its fid. Tags
// without "n" (native blobs) are never swept. The tag is at most 508
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
// and whose tag has m true; the blob's fid is the manifest's fid.
//
// # Reads
//
// Get reads a byte range of an object: it maps the range onto segments and,
// for each segment, onto the data shards that hold it (erasure.Codec
// NewReader), reading them in parallel with HTTP range requests and handing
// bytes to the caller as they arrive. A dead, slow or corrupt member is
// replaced by a parity member and the stripe is decoded; reads are hedged
// after Config.HedgeAfter.
package client
