// Package dataserver keeps shard files on local disks and serves them over
// depot's internal HTTP shard API.
//
// A Store holds one shard file per (volume, shard index) it was sent, in
// one of its data directories (one per disk). Each shard file is an
// append-only sequence of needles; an in-memory index maps needle ids to
// the latest record of each, so a read costs one disk read. A Server wraps
// a Store with the HTTP API, metrics and a lifecycle (New, Start, Close).
//
// # Durability
//
// A write is acknowledged only once its record is durable under the fsync
// policy: "always" (fdatasync before each acknowledgement), "group" (the
// default: one fdatasync covers every write appended while it gathered,
// waiting at most GroupCommitDelay and only while other appends are under
// way) or "none" (tests). An fsync covers the records completed before it
// began, wherever they lie in the file (records complete out of file
// order, see below), so durability is counted in completed records.
// Store.WriteNoSync appends without waiting for durability and Store.Sync
// makes a shard file's appends durable with one fdatasync: repair writes
// rebuilt needles so (Store.RewriteNoSync) and syncs before it reports its
// cursor.
//
// No lock is held while a client's bytes are awaited. A shard file's
// append lock only allocates space, publishes records and swaps files. A
// body of up to 64 blocks is read before the lock is taken and its record
// written in one piece under it. A longer body gets a region reserved at
// the end of the file, for its declared length (Content-Length), and is
// streamed into it with the lock released; a longer body of unknown length
// (chunked) is first spooled to an unlinked temporary file in the same
// directory, and copied into a region reserved once its length is known.
// Its header is written last, under the lock, when the record is
// published to the index. A body that fails, ends early (a chunked body
// without its last chunk, a connection closed before Content-Length
// bytes) or is refused leaves no visible needle: its region keeps a zero
// header, is cut off if nothing follows it, and is otherwise garbage that
// compaction drops and recovery skips. A write whose region was in a file
// that a compaction replaced meanwhile copies its record into the new
// file when it completes.
//
// A write of a needle id that is live with another cookie is refused
// (ErrCookieConflict, 409): ids are never meant to be reused, so such a
// write is a second needle given the same id (after a nameserver restore,
// say) and must not destroy the first. A retry with the same cookie
// replaces the needle; repair, which rebuilds what the nameserver records,
// replaces whatever the cookie (Store.Rewrite, Store.RewriteNoSync).
//
// On open every shard file is recovered: its index checkpoint (.idx) is
// loaded, and only the records after the offset it covers are read and
// verified, header by header and block by block. A damaged record followed
// by a valid one is skipped and counted as a checksum failure; a record
// with an all-zero header is one never finished and is skipped as garbage
// without being counted; either with nothing valid after it is a torn tail
// and is cut off. Checkpoints are written every CheckpointInterval, after
// compaction and on Close, and only ever cover records already fsynced; a
// checkpoint covers the file only up to the first region still awaiting
// its body, and leaves out the records after it, which the scan on open
// finds.
//
// A write that finds its disk full (ENOSPC, EDQUOT, or the MaxDirBytes
// limit) fails with depot.ErrDiskFull, is truncated away, and turns its
// directory read-only; new shard files go to the directory with the most
// room. Reads and deletes go on.
//
// Compaction copies the records the index still refers to (live needles
// and tombstones) to a new file, verifying each, while reads and writes go
// on; then it copies the records published meanwhile (a log kept while it
// runs, not the file's tail, which may hold unfinished regions), the last
// of them under the append lock, fsyncs, renames the new file over the old
// one and swaps the index.
// Readers holding the old file keep reading it until they close it.
//
// Store.Scrub re-reads every live needle and verifies its checksums at a
// rate its caller bounds, reporting corrupt needles to a callback (the
// repair worker records them with the nameserver for rebuild).
// Store.DropShard closes and removes a stale shard file whose slot was
// rebuilt on another dataserver (scrub.go).
//
// # Files in a data directory
//
//	LOCK                  flock(2)ed while a Store has the directory open
//	<vol>_<idx>.shard     shard file (vol, idx decimal)
//	<vol>_<idx>.idx       index checkpoint of that shard file
//	*.new *.compact *.tmp temporaries of creation, compaction, checkpoint
//	                      and body spooling (spool-*.tmp, unlinked once
//	                      opened); removed on open (a crash interrupted them)
//	*.bad                 a shard file whose superblock could not be read,
//	                      moved aside on open so repair can rebuild the slot
//
// Any other file is reported (Store.Ignored, the log, /status) and left
// alone.
//
// # Shard file format, version 1
//
// All integers are little-endian. CRC32C is CRC-32 with the Castagnoli
// polynomial.
//
// The file starts with a 64-byte superblock:
//
//	offset size field
//	0      8    magic "DEPOTSHD"
//	8      2    format version, 1
//	10     2    reserved, 0
//	12     4    block size B: needle bytes per checksum block (default 16384)
//	16     4    volume id
//	20     4    shard index
//	24     8    generation: random, new for every compaction; never 0
//	32     28   reserved, 0
//	60     4    CRC32C of bytes 0..59
//
// Needle records follow from offset 64, each starting at a multiple of 8.
// A record is a 32-byte header, the needle's bytes in blocks of B bytes
// (the last one shorter) each followed by its 4-byte checksum, and zero
// padding to the next multiple of 8:
//
//	offset size field
//	0      4    magic "NDL1"
//	4      1    flags: bit 0 = tombstone (the record deletes the needle);
//	            other bits 0
//	5      3    reserved, 0
//	8      8    needle id
//	16     4    cookie
//	20     8    size n in bytes (0 for a tombstone; at most 2^27-1)
//	28     4    header checksum: CRC32C over the generation (8 bytes,
//	            from the superblock) followed by header bytes 0..27
//	32     ...  for each block i = 0..ceil(n/B)-1:
//	              data  min(B, n-i*B) bytes
//	              crc   4 bytes: CRC32C over needle id (8 bytes), i (4 bytes)
//	                    and the data
//	            zero padding to a multiple of 8
//
// so a record takes align8(32 + n + 4*ceil(n/B)) bytes. Seeding the header
// checksum with the file's generation keeps bytes inside a needle that
// look like a header from ever passing for one; seeding block checksums
// with the needle id and block number catches misplaced blocks. A range
// read verifies exactly the blocks it touches. A record written in more
// than one piece has a zero header until its header is written, last, so
// until it is complete it is not valid; such an unfinished record may be
// followed by complete ones (its body was still arriving when they were
// written) and is skipped as garbage. A later record for the same needle
// id replaces an earlier one. (This is how version 1 was always read: an
// all-zero header never passed for a record; the format is unchanged.)
//
// # Index checkpoint format, version 1
//
//	offset size field
//	0      8    magic "DEPOTIDX"
//	8      2    format version, 1
//	10     6    reserved, 0
//	16     8    generation of the shard file it describes
//	24     8    covered: records in [64, covered) are reflected here
//	32     8    entry count c
//	40     16*c entries: needle id (8 bytes), location (8 bytes)
//	40+16c 4    CRC32C of all preceding bytes
//
// A location packs bits 0..35 = record offset / 8, bits 36..62 = needle
// size, bit 63 = tombstone. In memory the same 16-byte entries fill an
// open-addressing table kept between 40% and 80% full: 20 to 40 bytes per
// needle. A checkpoint whose generation, checksum or covered offset does
// not match its shard file is ignored and the file is scanned in full.
//
// # Open readers and holds
//
// A GET that started before its object was overwritten or deleted must
// not be cut when the nameserver's delete queue reaches the old segments.
// The server counts, per needle, the GETs it is serving, and keeps holds:
// (hold id, needle) pairs with an expiry, set by POST /holds. A DELETE
// with ifidle=1 of a needle with a GET in progress or an unexpired hold
// is refused with 423 InUse. The delete queue sends ifidle=1 for a bounded
// time (the nameserver's ReadHoldMax past its DeleteGrace) and plain
// DELETEs after it, so a dead or hostile reader keeps no space for longer;
// other deleters (a native DeleteBlob, repair) never send it. A healthy
// single-segment read costs nothing more: its shard GETs themselves are
// what holds the needle. A reader of several segments (package client)
// holds its later segments, on every member, when it starts, renews the
// hold while it reads, and releases it on Close; a reader that vanishes
// stops renewing, and its hold expires after its TTL. Counts and holds
// live in memory: a restart cuts every stream, and live readers renew.
//
// # HTTP API
//
// Every request except /healthz, /readyz and /metrics carries the cluster
// token (internal/auth); without it the answer is 401, with a wrong one
// 403. With Config.TLS the server speaks TLS, and those requests also need
// a client certificate from the cluster CA (401 without one); with
// Config.MetricsToken, /metrics needs it as a bearer token. {needle} is the needle id in lower-case hex, {cookie} exactly 8 hex
// digits, {vol} and {idx} decimal. Errors are JSON bodies from
// internal/httpx: {"code": "NotFound", "error": "..."}; 400 for bad input
// (a body cut short among it), 404 for an unknown needle or shard file or
// a wrong cookie, 409 with code Exists for a PUT of a needle live with
// another cookie, 413 for a needle over MaxNeedleSize, 500 with code
// Corrupt for a checksum failure, 507 for a full disk.
//
//	PUT    /shard/{vol}/{idx}/{needle}?cookie={cookie}
//	       Body: the shard's bytes (Content-Length or chunked). Stores the
//	       needle, replacing one with the same id and cookie (a retry);
//	       409 Exists when the id is live with another cookie; creates the
//	       shard file on first write. 201 {"size": n} once durable. A body
//	       that ends early (fewer bytes than Content-Length, a chunked
//	       body without its terminating chunk) stores nothing. With
//	       Content-Length a body over 64 blocks is written straight into
//	       its place in the file; a chunked one is spooled first, unless
//	       it declares its length in X-Depot-Length (a decimal byte
//	       count): then it is held to that length exactly, as with
//	       Content-Length, and written straight into its place. Writers
//	       send shards chunked (the internal token's body MAC travels in
//	       the trailer) and declare the length whenever they know it. A
//	       malformed X-Depot-Length is 400.
//	GET    /shard/{vol}/{idx}/{needle}?cookie={cookie}
//	       The bytes, Content-Length set, X-Depot-Size: total size. One
//	       "Range: bytes=a-b" (or a-, or -n) is honoured: 206 with
//	       Content-Range, 416 with "Content-Range: bytes */n" when outside
//	       the needle; several ranges or a malformed one are ignored.
//	       Each block is verified before any of its bytes is sent; a
//	       failure before the first byte is a 500 error, after it the
//	       connection is cut so the client sees a read error.
//	HEAD   same path: headers only, X-Depot-Size: n.
//	DELETE /shard/{vol}/{idx}/{needle}?cookie={cookie}[&ifidle=1]
//	       Writes a tombstone: 204; 404 when unknown or already deleted.
//	       With ifidle=1, a needle being read or held (below) is left as
//	       it is: 423 {"code":"InUse"}, a definite "retry later".
//	POST   /holds
//	       {"id":"<16 hex>","ttl_ms":t,"release":false,
//	       "needles":[{"vol":17,"idx":2,"needle":"3f9a"}, ...]}
//	       Sets (or, with release, drops) the reader's hold id on each
//	       needle, expiring t ms later (capped at MaxHoldTTL, 5m); at most
//	       4096 needles a request. 200 {"held":n}; 413 when the server
//	       already keeps 2^18 holds.
//	GET    /shard/{vol}/{idx}
//	       {"needles":[{"id":"3f9a","cookie":"0c21e4b7","size":123,
//	       "deleted":false}, ...]} sorted by id, deleted needles included
//	       (size 0) so repair does not resurrect them.
//	GET    /shard/{vol}/{idx}/needles?after={needle}&until={needle}
//	       A run of whole needles: every live needle with after < id <=
//	       until (both optional, hex), in id order, as the index holds
//	       them when the request arrives (a needle deleted or replaced
//	       since is skipped or sent as it now is). Repair rebuilds a lost
//	       shard from k of these streams instead of k requests per needle.
//	       200, then frames, each a 24-byte header (little-endian):
//
//	         0   8  needle id
//	         8   4  cookie
//	         12  4  kind: 0 needle, 1 corrupt, 2 end, 3 record
//	         16  8  size n
//	         24  n  the needle's bytes (kind 0 only)
//
//	       Each needle's record is read whole, in one read, and verified
//	       block by block before its frame is sent (Store.Run); one that
//	       fails is a corrupt frame with no bytes (cookie 0 if its header
//	       is damaged; the receiver gets it elsewhere), and the run goes on. A run
//	       ends with an end frame (id, cookie and size 0): a response
//	       without one was cut short (the server closing, a read error)
//	       and its last frames must not be trusted to be all there were.
//	       dataserver.FrameReader reads a run.
//
//	       With format=raw over plain HTTP the server takes the connection
//	       over: the response has no length and no chunking and ends with
//	       the connection, and each needle goes as a record frame (kind 3,
//	       cookie 0, size n the record's length), sent from the page cache
//	       with sendfile(2), unread and unverified by the sender:
//
//	         24   8  the needle's data size
//	         32   8  the generation its header checksum is seeded with
//	         40   8  the shard file's block size
//	         48   n  the record exactly as in the shard file (format below)
//
//	       The receiver verifies the header and every block (FrameReader:
//	       a record that fails becomes a corrupt frame there, and the run
//	       goes on). Over TLS format=raw is ignored. Repair asks for raw
//	       runs: a member serving one spends almost no CPU on it.
//	POST   /shard/{vol}/{idx}/compact
//	       {"before":b,"after":a,"reclaimed":b-a,"needles":k,"dropped":d}
//	GET    /status
//	       {"id":"ds1","dirs":[{"path","used","free","read_only"}],
//	       "files":[{"volume","index","dir","needles","live_bytes",
//	       "garbage_bytes","file_bytes","max_needle"}],"ignored":[paths]}
//	       max_needle is the highest needle id in the file's index (live
//	       or deleted); a nameserver restoring a backup leases above it
//	GET    /healthz  200 while the server is open
//	GET    /readyz   200 once serving, 503 before Start and after Close
//	GET    /metrics  the server's own prometheus registry:
//	       depot_dataserver_requests_total{op,status},
//	       depot_dataserver_bytes_received_total,
//	       depot_dataserver_bytes_sent_total, depot_dataserver_needles,
//	       depot_dataserver_checksum_failures_total, Go and process metrics.
package dataserver
