// Package repair is the worker that heals a depot cluster. One Worker runs
// inside every dataserver process (internal/node starts it beside the
// dataserver); the nameserver only decides and records what is to be
// repaired (see the nameserver's doc.go, "Repair") and never sees a byte
// of an object.
//
// # Why in the dataservers
//
// Rebuilding a shard means reading k shards and writing one. Run by the
// dataserver that is to hold the rebuilt shard, the k reads cross the
// network and the write stays local (straight into the Store, no HTTP);
// the work spreads over every dataserver that receives a replacement
// shard, so repair bandwidth grows with the cluster; and the gateways stay
// stateless and the nameserver byte-free. A repair worker in the gateway
// would move every rebuilt byte twice over the network and tie repair to
// how many gateways happen to run.
//
// # What a worker does
//
// Every Config.Interval it asks the nameserver for its tasks
// (GET /repair/tasks?node=ID) and then:
//
//   - Needle-level repair, in a loop of its own (catchup.go) so that no
//     shard rebuild delays it, see "Catch-up" below. For every recorded
//     missed write or corrupt needle whose shard it holds, it reads the same needle from k other
//     members, strips the segment tag suffix (client/doc.go: the tag JSON,
//     its uint16 length and "DT"; identical on every shard), rebuilds its
//     shard with erasure.Codec.Rebuild, appends the tag and writes the
//     needle to its own store, replacing whatever was there. Then it tells
//     the nameserver (POST /repair/repaired). A needle that at least m of
//     the other members do not have (404: deleted, or written but never
//     acknowledged) is not resurrected; its record is cleared. So is a
//     needle never written whole (see "Failures").
//   - Shard rebuilds. For every job that targets it (a member dead past the
//     nameserver's RepairAfter), it lists the needles of the volume's other
//     members (GET /shard/{vol}/{idx}), takes the union of their live
//     needles in id order, skips needles deleted anywhere, and rebuilds
//     them after the job's cursor, streaming (stream.go): one needle run
//     (GET /shard/{vol}/{idx}/needles?format=raw, dataserver/doc.go)
//     from each of k members, read side by side in id order; the members
//     send the records as their files hold them (sendfile) and every
//     needle is verified here, checksums first, then checked alike (length, tag suffix) on k members
//     before it is rebuilt; a needle the runs do not give k consistent
//     shards of is rebuilt as above from all other members. A worker runs
//     Config.Streams such streams at once: as many jobs side by side
//     (others wait), and when it has fewer jobs and no rate bound, each
//     job's needles are cut into consecutive parts of about equal bytes,
//     each streamed on its own. Rebuilt needles are appended without an fsync each
//     (Store.RewriteNoSync); every second one Store.Sync makes them durable
//     and then progress (cursor, needles, bytes, total) goes to the
//     nameserver, which keeps it in its database, so after a crash of the
//     worker, its dataserver or the nameserver the job resumes after the
//     cursor: the last needle before which every needle is written (with
//     parts, later parts' needles past it are rebuilt again; the writes
//     are idempotent: a needle rebuilt twice is the same bytes).
//     A needle that cannot be rebuilt does not stop the job: it is
//     skipped and reported (see "Failures"). At the end it reports done
//     and the nameserver switches the member.
//     Writes that reach the volume during the rebuild miss the dead
//     member and are recorded as missed; once the member is switched they
//     are needle-level tasks of the new member. Writes the old member
//     took (it came back) are caught up after the switch ("Catch-up").
//     A job the nameserver cancels (its lost member came back with its
//     copy) or gives to another target leaves a partial copy here, which
//     the next pass drops.
//   - Anti-entropy, every Config.AntiEntropyInterval: it compares the
//     shard files it holds with what the nameserver says it should hold.
//     A shard file it holds that is neither a member slot nor a job target
//     is stale (its slot was rebuilt elsewhere while this dataserver was
//     away) and is dropped, but only when the nameserver knows its volume:
//     the file of a volume it does not know is kept and counted
//     (kind="unknown_volume"), since that means the nameserver lost state
//     (a wiped database before a restore), not that the data is garbage.
//     For every slot it holds, it compares its
//     needle list with the next member's: a live needle there that is
//     missing here (a write whose missed report was lost) is recorded as
//     missed, so needle-level repair fetches it. Differences are logged
//     and counted in depot_antientropy_differences_total{kind}.
//   - Compaction of shard files whose garbage passed
//     Config.CompactGarbage of the file, off the request path.
//   - The orphan sweep, with each anti-entropy pass (orphans.go), below.
//
// Jobs with Move set are moves of healthy shards (move.go), below.
//
// Rebuild and move writes are throttled to Config.Rate bytes per second
// (0: as fast as the disks and network allow). The throttle paces each
// needle's write, and the runs' readers only read ahead a few needles, so
// a throttled rebuild draws on its peers' disks at the same pace.
// internal/testcluster's BenchmarkRepair_Unthrottled and
// BenchmarkRepair_ForegroundP99 measure both ends.
//
// # Moves (rebalance and drain)
//
// A move takes a healthy shard slot off its member From (the nameserver
// plans moves: `depot admin rebalance`, `depot admin drain`, see its
// doc.go) and gives it to To, whose worker runs the job. A move is a copy,
// not a rebuild, and the volume never drops below full width: From stays
// a member, serving reads and taking writes, until To holds everything.
//
//  1. Copy. To lists From's needles (GET /shard/{vol}/{idx}) and copies
//     every live one after the job's cursor whole, tag suffix included
//     (GET /shard/{vol}/{idx}/{needle}?cookie=, checksummed by From), into
//     its store, Config.Parallel at a time, reporting the cursor every
//     second as a rebuild does, so a crash of either side resumes it. A
//     needle that From fails to give is rebuilt from k peers instead; when
//     From cannot even be listed (it died), the job runs as a rebuild.
//  2. Catch-up. Writes kept reaching From during the copy. To lists From
//     again and copies what it lacks, and deletes what From deleted (or
//     no longer lists at all: deleted, then compacted away), until a pass
//     finds nothing new (at most 5 passes).
//  3. Switch. To reports the job done (POST /repair/progress, done): the
//     nameserver switches the member list to To in the same command and
//     records the slot as retired: From keeps its copy (anti-entropy does
//     not drop a retired slot's file) and stays readable.
//  4. Settle. Writers and readers cache member lists for the client's
//     VolumeTTL (10s; a lease's writes also take the members from that
//     cache, not from the assignment), so for that long some still write
//     to From. Config.MoveSettle (15s, above VolumeTTL) after the switch,
//     To catches up with From once more (the settle tasks of GET
//     /repair/tasks carry From's address) and reports POST
//     /rebalance/settled. The retired record goes, and From's next
//     anti-entropy pass drops its copy.
//
// A writer stalled longer than MoveSettle with an old member list does
// not count the old member's acknowledgement: the client checks a member
// list older than its VolumeTTL when the write ends, and a slot whose
// member changed is reported missed (client/put.go), so To gets the
// shard by needle-level repair. Whatever still escapes is what
// anti-entropy exists for: To's slot is compared with the next member's,
// a needle missing on To is recorded as missed and rebuilt needle by
// needle.
//
// # Catch-up
//
// After every member switch to this dataserver (a rebuild or a move
// done), it lists all its peers in the volume and records every live
// needle one of them holds and it lacks as a missed write of its slot,
// at once and again Config.MoveSettle later (writers cache member lists
// for their VolumeTTL, below MoveSettle): every acknowledged needle then
// has all k+m shards or is queued for needle-level repair, without
// waiting for anti-entropy. The second comparison is kept in memory only;
// after a crash anti-entropy covers it.
//
// A dataserver that returns (its process starts; or its gossip sees a
// nameserver alive again after losing it: a partition healed, a pause
// ended, Worker.Rejoined) repairs the writes it missed at once, before
// its first task pass, and keeps going without pause while the
// nameserver lists more. depot_repair_catchup_seconds is how long the
// last return took to reach an empty backlog (depot_repair_catchups_total
// counts them), so a test or a chaos run can bound it.
//
// # Failures
//
// A needle is unrebuildable in two ways. Partial: every other member
// answered, k or more hold it, but no k alike (same length, a valid tag
// suffix) — the pieces of a shard upload cut short that an older
// dataserver kept; it was never acknowledged and cannot ever be rebuilt,
// so it is handed to the orphan sweep's nameserver side (POST /orphans),
// which queues it for deletion unless a namespace entry references it.
// Unavailable: too few members answered; a rebuild records it as a missed
// write of the slot and goes on (needle-level repair retries it after the
// switch), and stops, to retry from its cursor, once more than 64
// needles of one attempt were unavailable (then the peers are failing,
// not single needles). Every failure is counted in
// depot_repair_failures_total{reason} and logged at warn level at most
// once a minute per fid or job (debug in between); a failed job attempt is
// also reported to the nameserver, whose job record keeps the error and
// the count of attempts failed since the job last moved, for
// `depot admin status`.
//
// # Orphans
//
// Segments written for the S3 namespace carry "n" (pending commit) and "w"
// (write time, Unix seconds) in their tags (client/doc.go). For every shard
// slot it holds, the worker lists its live needles, reads each one's tag
// from the local store (the last 512 bytes; no bytes cross the network),
// and collects those with "n" whose "w" is Config.OrphanGrace (1h) old or
// more. Member 0 of a volume speaks for every needle it holds live (every
// member holds the same tags); any other member lists member 0's needles
// (only when it has needles to look at) and speaks for those member 0 does
// not hold live: a cut write that never reached member 0, or a needle that
// reached this member after its delete had passed (a late write, a move or
// rebuild copy). So in the steady state each needle is checked once, and
// none is left to nobody. It posts them to the nameserver (POST /orphans),
// which in one transaction queues for deletion those that no object or
// recorded part references and no delete is queued for, and refuses later
// commits of them (the nameserver's doc.go, "Orphans"); the ordinary
// delete queue then deletes them on every member. Needles with neither
// "n" nor "w" (older writes) are never candidates; native needles (no
// "n") follow the rule below. Per slot the worker remembers the live needles it decided
// (native, member 0's, or answered by the nameserver), each with the
// offset of its record (dataserver.NeedleInfo.Record), so a pass reads
// only the tags of needles new to it — whatever their id, since ids come
// from leases that writers may hold for long — or written again since (a
// copy after a delete); a compaction moves every record, so the slot is
// read once more after one. What it remembers is forgotten every 24h,
// and whenever the nameserver's count of restores from a backup
// (RepairTasks.Restored) changes: a restore rewinds the namespace, so a
// segment committed before it may be referenced no more.
// Queued orphans are counted in
// depot_antientropy_differences_total{kind="orphan"}.
//
// # Failed native writes
//
// Native blobs (client.PutBlob) are committed by being written: no
// namespace entry lists them, so the refs check cannot tell a failed
// write's leftovers from a blob. Their tags carry "w" without "n", and
// every segment of a blob of several carries "o", the fid of the blob's
// manifest (client/doc.go, "Failed writes"). A native needle whose "w" is
// OrphanGrace old is a candidate when fewer than k members of its volume
// hold it live, or when its "o" names a needle that fewer than k members
// of that volume hold: both mean a write that failed (a needle with fewer
// than k shards cannot be read, so deleting it loses nothing; a blob is
// readable only through its manifest). The worker lists every member of
// the volumes concerned once per pass (GET /shard/{vol}/{idx}); when a
// member does not answer, or the volume is being repaired, the needle is
// undecided and looked at again next pass. Candidates go to POST /orphans
// like S3 orphans (nothing references them, so the nameserver queues them
// all for deletion). A needle with k or more copies is kept: it is
// readable, and anti-entropy completes it to k+m.
//
// A separate loop scrubs: every Config.ScrubInterval it re-reads every
// needle of the local store at Config.ScrubRate bytes per second, verifying
// its checksums (dataserver.Store.Scrub), and records every corrupt needle
// with the nameserver as a missed shard, which needle-level repair then
// rebuilds from the other members. Reads never return the corrupt bytes
// meanwhile: the dataserver refuses them and the client decodes around.
//
// # Metrics
//
// On the dataserver's registry: depot_repair_bytes_total,
// depot_repair_needles_total{kind=missed|job|move},
// depot_repair_failures_total{reason=partial|unavailable|write|job},
// depot_repair_catchup_seconds, depot_repair_catchups_total,
// depot_scrub_bytes_total, depot_scrub_corrupt_total,
// depot_antientropy_differences_total{kind=stale|missing_needle|orphan},
// depot_compactions_total.
package repair
