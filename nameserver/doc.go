// Package nameserver keeps depot's cluster map and namespace: which
// dataservers exist and whether gossip says they are alive, which volumes
// exist and on which dataservers their shards live, needle-id leases, the
// buckets and keys of the namespace, the queue of segments to delete and
// the record of writes that some shards missed. It never carries object
// bytes.
//
// # State machine
//
// Every change of state is a Command (command.go) given to one function,
// store.apply, inside a bbolt read-write transaction. Apply is
// deterministic — it reads only the transaction and the command, whose Time
// stands in for the clock — so the same commands replicated through a raft
// log (see "Raft group") and applied by the FSM give every replica the same
// state. Decisions that depend on the
// outside world (gossip liveness, placement, which writable volume to lease
// from) are made by the proposer and carried in the payload.
//
// Commands are group-committed: one committer goroutine takes a command,
// gathers those that arrive within Config.GroupCommitWindow while other
// proposers are on their way (up to Config.MaxBatch), applies them all in
// one transaction and commits it with one fsync; each proposer then gets
// its own result. A command refused by apply (not found, exists, ...)
// leaves nothing behind, whatever it wrote before it failed: the committer
// rolls the transaction back and applies the batch again without the
// refused commands, until a pass refuses none, and commits that pass
// (store.applyBatch). The refusals depend only on the batch and the
// database, so raft members agree on them. Reads
// use bbolt read transactions directly, and volume lookups use an
// in-memory copy of the cluster map that apply updates once a transaction
// committed.
//
// # Database file
//
// The database is the bbolt file <Dir>/nameserver.db. Its free-page list
// is not written on each commit (bbolt's NoFreelistSync, as etcd runs it):
// a commit writes only the pages it changed, and opening the file rebuilds
// the list by scanning. Integers in keys and values are big-endian. JSON values are the encoding/json form of the Go
// types named. Top-level buckets:
//
//	meta         "version" → "2" (layout version; "1" is upgraded on open by
//	             building refs, other versions are refused)
//	             "restored", "backup_time": see "Backup and restore"
//	             "objects" → uint64: number of objects in the namespace
//	             "bytes"   → uint64: sum of their sizes
//	             "raft_index" → uint64: in a raft group, the log index of
//	             the last command applied (written in the same transaction)
//	nameservers  raft member id → JSON nsclient.NameserverInfo {id, addr,
//	             raft_addr}: the HTTP address of each member that led,
//	             recorded by command "nameserver" when it takes office
//	dataservers  node id → JSON dataserverRecord: id, addr (HTTP), gossip_addr,
//	             rack, free, used, state (alive|suspect|dead|left|unknown),
//	             since — what gossip said last; "unknown" while the node is
//	             absent from this nameserver's gossip view
//	volumes      uint32 volume id → JSON volumeRecord: depot.Volume (id, k, m,
//	             unit, members [{index, node, addr}], state
//	             writable|full|degraded|repairing) plus full (bool) and created.
//	             The bucket's sequence allocates volume ids, from 1.
//	needles      uint32 volume id → uint64: the next needle id not yet leased
//	             in that volume (needle ids start at 1)
//	nodevols     node id, 0x00, uint32 volume id → empty: index of the
//	             volumes each dataserver is a member of
//	buckets      bucket name → JSON nsclient.Bucket {name, created}
//	objects      one nested bucket per namespace bucket, named like it:
//	             key (bytes of the UTF-8 key) → JSON depot.Object, the
//	             key's current version (a delete marker included). Keys
//	             are kept in byte order, which is the order of listings.
//	             An encrypted object's segments hold its streams' stored
//	             size, its Size the plaintext (gateway/s3/sse).
//	deletes      uint64 sequence → JSON nsclient.PendingDelete {seq, fid,
//	             size, queued}: segments of deleted or replaced objects whose
//	             needles are still to be deleted; the bucket's sequence
//	             numbers them, so the queue is in order
//	queued       fid text → uint64 sequence of its latest entry in deletes,
//	             while it has one (created by the first queued segment;
//	             entries queued by older nameservers are not listed):
//	             put_object and put_part refuse a fid listed here, so a
//	             segment is never referenced and queued at once
//	users        access key → JSON nsclient.User {access_key, secret, created,
//	             policy}: S3 key pairs besides the gateway's root pair, each
//	             with its IAM-shaped identity policy (internal/policy)
//	uploads      uint16 length of the bucket name, bucket name, object key,
//	             0x00, upload id → JSON nsclient.Upload: multipart uploads
//	parts        the upload's key followed by the uint32 part number → JSON
//	             nsclient.Part {number, etag, size, segments, modified,
//	             stream (encrypted parts)}. complete_upload builds the
//	             object's encryption from the upload's mode and key check
//	             and the named parts' streams; delete_bucket refuses a
//	             bucket with uploads in progress (ErrNotEmpty, S3's
//	             BucketNotEmpty)
//	             The S3 settings of a bucket (public, cors, policy,
//	             encryption, owner, tags, versioning, object_lock,
//	             default_retention, lifecycle) are fields
//	             of its record in buckets. See s3meta.go for the commands.
//	versions     one nested bucket per namespace bucket that ever had
//	             versioning: escaped key, then uint64 complement of a
//	             sequence → JSON depot.Object: the versions a key's
//	             current one superseded, newest first (see "Versions";
//	             created by the first such version)
//	completed    the upload's key in uploads → JSON nsclient.CompletedUpload
//	             {bucket, key, id, etag, parts, completed}: uploads that
//	             complete_upload completed, kept RequestRetention by the
//	             command's Time, so that the S3 gateway answers a repeated
//	             CompleteMultipartUpload as S3 does (GET /completed/{bucket}
//	             ?key=K&id=I); created by the first completion
//	completed_times int64 Unix nanoseconds, then the upload's key → empty:
//	             the same in time order, for pruning (16 per completion)
//	refs         fid text → owner: 'o', uint16 bucket length, bucket, key
//	             (an object's segment) or 'p' and the key of a part in
//	             parts: every fid the namespace references (orphans.go)
//	swept        fid text → uint64 Unix nanoseconds: fids the orphan sweep
//	             queued for deletion, kept 7 days (created by the first sweep)
//	missed       fid text → JSON nsclient.MissedWrite {fid, shards, time}:
//	             shards that did not acknowledge a write, or that a scrub
//	             found corrupt, for needle-level repair
//	requests     request id, 0x00, command type → JSON requestRecord
//	             {time, result}: the result (JSON of the Go type apply
//	             returns for that type, null for none) of each command
//	             that carried a request id and succeeded, kept
//	             RequestRetention (1h) by the commands' Time (created by
//	             the first such command; see "Request ids")
//	request_times int64 Unix nanoseconds of the command's Time, then the
//	             requests key → empty: the same records in time order,
//	             for pruning
//	repairs      uint32 volume id, uint16 shard index → JSON
//	             nsclient.RepairJob {volume, index, from, to, started,
//	             updated, cursor, needles, bytes, total_bytes, skipped,
//	             failures, error}: shard rebuilds under way (created by
//	             the first job; repair.go)
//
// # Request ids
//
// A client that loses the answer to a change cannot tell whether it was
// applied. So every mutating request of nsclient carries a request id in
// the header Depot-Request-Id (nsclient.HeaderRequestID: printable ASCII,
// at most 128 bytes): a fresh random one per logical call, or the caller's
// (nsclient.WithRequestID), the same on every retry of the call. The
// handler passes it in the request's context to propose, which writes it
// into Command.ID; a follower forwards it to the leader with the request;
// nsclient.Local gets it in the context. Apply then applies a command of
// one id and type at most once: the first time it records the result in
// requests, in the same transaction; a repeat within RequestRetention gets
// that result (the same Go type) and changes nothing. A refused command
// records nothing, so its repeat is judged afresh. The type is part of the
// key because one call may propose several commands (an assign first syncs
// the gossip view). Every recorded command also removes up to 16 records
// older than RequestRetention, oldest first through request_times, so the
// pruning is cheap and, depending only on the state and the command, alike
// on every replica. An id names one call: a different payload under an id
// already recorded gets the first call's result. Repeats answered from a
// record are counted in depot_nameserver_command_repeats_total.
//
// With the ids, every change is safe to repeat, whatever it does: nsclient
// retries a broken connection, a lost answer, NoLeader and an unknown
// outcome, against one nameserver too, until RetryFor. An error that wraps
// depot.ErrUnknownOutcome (HTTP 503, code UnknownOutcome) is not a
// refusal: the change was handed over for commit and may be applied (the
// proposer's context ended, a raft leader lost office after appending it,
// a follower's forward broke after it reached the leader). Every other
// error answered is a definite refusal.
//
// # Raft group
//
// With Config.Raft.ID set, the nameserver is a member of a raft group
// (hashicorp/raft) of 3 or 5; without it, it runs alone exactly as before
// (the committer above; `depot server` does this). In a group:
//
//   - Proposals go through raft.Apply on the leader. Raft gathers
//     concurrent applies into one log append (one fsync) and one
//     AppendEntries per follower (BatchApplyCh, MaxAppendEntries), and the
//     FSM (raft.go) applies each batch of committed entries in ONE bbolt
//     transaction that also writes meta/raft_index. After a restart raft
//     replays entries after its last snapshot; the FSM skips those at or
//     below raft_index, so the database is never applied twice.
//     Not being the leader, or losing leadership before an entry commits,
//     is depot.ErrNoLeader (HTTP 503, code NoLeader).
//   - Snapshots are the bbolt file as of one read transaction
//     (tx.WriteTo), taken every Raft.SnapshotThreshold entries; the log is
//     then compacted to Raft.TrailingLogs entries. Since the database is
//     itself durable, a restart does not restore the snapshot
//     (NoSnapshotRestoreOnStart) — unless the database is behind it: raft
//     persists an installed snapshot before the FSM restores it, so a
//     crash in between leaves meta/raft_index below the snapshot's index.
//     Before raft starts, a database whose raft_index is below the newest
//     snapshot's index is restored from that snapshot (and raft_index set
//     to the snapshot's index), unless the log still holds every entry of
//     the gap and none is a command (no-ops and barriers advance the
//     snapshot's index only); a warning names both indexes. A member too
//     far behind installs the leader's snapshot: Restore replaces the
//     database's content (every bucket's keys and sequence) in one
//     transaction (it stages the file in Dir; memory grows with the
//     database) and reloads the in-memory cache.
//   - The leader waits for a barrier (every earlier entry applied here),
//     records its HTTP address (command "nameserver"), then serves the
//     API and alone runs the gossip sync, repair scheduling, the delete
//     queue and rebalancing. Followers forward every API request to it
//     (forward.go; the request carries Depot-Forwarded so it is never
//     forwarded twice) and answer NoLeader while none is known. Every
//     answer names the leader in Depot-Nameserver-Leader. Reads are
//     served by the leader from its database; a leader cut off from the
//     majority steps down after Raft.LeaderLeaseTimeout, so a stale read
//     is possible only within that lease.
//   - nsclient takes every member's URL (comma-separated), moves to the
//     leader a member names, and on a member that cannot be reached or
//     answers NoLeader tries the next one with backoff, up to its
//     RetryFor (15s) or the caller's context. A repeat carries the same
//     request id, so it is applied at most once (see "Request ids").
//
// The raft log and stable store are the bbolt file <Dir>/raft.db (not
// raft-boltdb, whose v2 no longer builds against the go-metrics that raft
// and memberlist need):
//
//	logs         uint64 index → uint64 term, uint8 type (raft.LogType),
//	             int64 appended-at Unix nanoseconds (0: unknown), uvarint
//	             length of the extensions, the extensions, then the data
//	             (for commands: the JSON of a Command)
//	stable       raft's keys (CurrentTerm, LastVoteTerm, ...) → their bytes
//
// Snapshots are raft's file snapshot store in <Dir>/snapshots (two kept).
// Members are added with `depot admin nameserver add ID RAFT_ADDR` (the new
// one started with --raft-addr and no --peers) and removed with `depot
// admin nameserver remove ID`.
//
// # Backup and restore
//
// GET /backup streams the database as of one read transaction while the
// nameserver serves, in this format:
//
//	offset 0   8 bytes  magic "DEPOTBK" and 0x01 (the header's version)
//	offset 8   8 bytes  int64 Unix nanoseconds, big-endian: the time of the
//	                    read transaction (the backup time)
//	offset 16  ...      the bbolt file (tx.WriteTo)
//
// POST /restore takes such a file, or a bare bbolt file (backups from
// before the header; their time is unknown), and rewinds the namespace to
// it: alone, in one transaction; in a group, the leader hands the merged
// file to raft.Restore, which installs it as a snapshot on every member
// (the backup's raft_index is dropped first). It answers JSON
// nsclient.RestoreResult {backup_time, age, delete_grace, whole, warning,
// restored}. `depot admin backup FILE` and `depot admin restore FILE`
// drive them; the latter prints the age and a WARNING when the backup is
// not whole.
//
// The contract. A restore rewinds the namespace to the backup's time:
// objects written, replaced or deleted since are as they were then; that
// is what the operator asks for. What the backup holds is served whole
// after the restore when the backup is younger than Config.DeleteGrace
// (--delete-grace, default 1m): a segment released since the backup
// (overwritten, deleted) waits that long in the delete queue before its
// needles go, and the restored queue is the backup's, in which the
// segment is referenced and not queued. With an older backup, objects
// deleted or overwritten since it was taken may have lost their data
// (whole false, and the warning). Segments written after the backup and
// committed are referenced no more: the orphan sweep reclaims them
// (meta "restored" below).
//
// Restore rewinds the namespace, not placement: shards moved since the
// backup (repair, rebalance, drain) live where the running database says,
// and their old copies may be gone. So the leader merges its own
// placement into the staged backup (mergePlacement) before installing
// it, bucket by bucket:
//
//	backup's     users, uploads, parts, buckets, objects, deletes, queued,
//	             refs, swept, completed, completed_times, requests,
//	             request_times (the namespace and what hangs on it); meta
//	             objects and bytes
//	now's        volumes: the running database's record of every volume
//	             it knows; the backup's record only for volumes it lacks
//	             (a wiped database takes the backup's placement whole);
//	             the sequence is the higher one, then lifted (below)
//	rebuilt      nodevols, from the merged volume records
//	higher       needles: per volume, the higher counter, then lifted
//	now's        repairs and retired: the running database's entries, the
//	             backup's only for volumes whose record came from it;
//	             rebalance: the running database's state when it has one;
//	             nameservers: the running group's members when it has any
//	union        dataservers, missed: both, the running database's entry
//	             where both have one
//	higher seq   deletes keeps the backup's entries but the higher
//	             sequence, so that no sequence number names two entries (the
//	             delete loop acknowledges entries by it, and a pass may have
//	             begun before the restore)
//
// The merge and the install happen under the store's fence: every
// proposal holds it shared until applied, the restore exclusively, so no
// command (a member switch above all) falls between the merge and the
// install; proposals wait for the restore to end.
//
// meta gets "restored" → uint64, the number of restores the database went
// through (the higher of the backup's and the running one's, plus one),
// and "backup_time" → int64 Unix nanoseconds of the backup restored (none
// for a bare bbolt file). GET /repair/tasks reports "restored"; a repair
// worker's orphan sweep forgets every needle it decided when the number
// changes, since segments it found committed before the restore may be
// referenced no more (and ones unreferenced then, referenced again).
//
// A backup's id counters are old, and the ids leased since live on the
// dataservers (native blobs are reachable by fid alone). So that no volume
// id or needle id is ever handed out twice, Restore lifts them in the
// staged file before installing it: the volumes bucket's sequence to the
// highest volume id that the backup, this nameserver's database or any
// dataserver gossip shows up knows (GET /status on each: its shard files
// and the highest needle id in each, max_needle), plus 2^16; and every
// volume's needle counter to the highest of the same sources, plus 2^32.
// The margins stand for what none of them can know: leases in clients'
// hands and dataservers that were down. A dataserver that does not answer
// is logged. Restoring (fsm.Restore and Restore) copies every bucket's
// sequence with its keys.
//
// # Volume states
//
// A volume is created writable on k+m distinct alive dataservers (spread
// over racks, see place). Gossip sync marks it degraded when a member is
// dead or left, and back writable (or full) when all members are back.
// Assign only leases from writable volumes whose members are all alive now.
// SetVolumeState marks volumes full, writable, degraded or repairing.
// A volume is repairing while one of its slots is being rebuilt.
//
// # Repair
//
// The nameserver schedules repair; the bytes move between dataservers,
// whose repair workers (package repair) do the work. Every RepairInterval
// the repair loop (repair.go):
//
//   - starts a job (command repair_start) for every shard slot whose member
//     has been dead, left or unheard of for RepairAfter, counted from the
//     later of the state change and the nameserver's start. The target is
//     an alive dataserver holding no shard of the volume, in a rack the
//     other members do not use when there is one, then the best by free
//     space per volume. A job whose target is itself down that long moves
//     to another target, from the start.
//   - cancels (command repair_cancel) a rebuild whose lost member is alive
//     again with its copy of the slot (at least half the live bytes of
//     another member's copy, asked with GET /status): the member keeps
//     the slot, its missed writes are caught up needle by needle within
//     seconds of its return, and the target drops its partial copy. A
//     member back without its copy (a new disk) keeps its rebuild, and
//     what the switch would miss is caught up after it (package repair,
//     "Catch-up").
//   - works through the delete queue: segments queued DeleteGrace ago or
//     more have their needles deleted on every member (DELETE requests, no
//     bytes); an entry is acknowledged once every member answered 204 or
//     404, and stays queued while a member is down. Until ReadHoldMax (1h)
//     past DeleteGrace it deletes only idle needles (DELETE ?ifidle=1,
//     dataserver/doc.go "Open readers and holds"): a member with a GET of
//     the needle in progress, or a reader's hold on it, answers 423 and
//     the entry stays queued, so a slow GET that began before the
//     overwrite or delete is not cut; past that bound it deletes
//     regardless, so no reader keeps space for ever. An entry whose fid the
//     refs index lists (something references it again, or a command
//     queued it by mistake) is acknowledged without deleting anything: a
//     referenced segment is never deleted.
//
// Workers poll GET /repair/tasks?node=ID (their jobs, the missed shards
// they hold, and the slots they are members of, for anti-entropy), report
// job progress with POST /repair/progress (command repair_progress, which
// records the cursor in the job so that a restarted worker or nameserver
// resumes it), a failed attempt with error set (the job records the
// error and how many attempts failed since it last moved, shown by
// `depot admin status`), and the end of a job with done set: the same command then
// switches the member list to the target, moves the nodevols entries and
// sets the volume's state (repairing while other jobs of the volume
// remain, else degraded, full or writable). Rebuilt needles are removed
// from the missed records by POST /repair/repaired (command repaired).
// GET /repair/status sums it up for `depot admin status`; /metrics has
// depot_volumes{state}, depot_volumes_degraded,
// depot_gossip_members{role,state}, depot_repair_jobs, depot_repair_bytes,
// depot_repair_bytes_total_estimate, depot_repair_queue_shards,
// depot_delete_queue and depot_nameserver_delete_queue_referenced_total
// (entries dropped because their segment is referenced: a bug if not 0).
//
// # Orphans
//
// Segments the S3 gateway stored but whose commit never landed (the
// gateway died between client.Put and PutObject or PutPart) are found by
// the repair workers, which read tags in the dataservers (package repair,
// "Orphans"); the nameserver only decides by fid. The gateway writes its
// segments with client.PutOptions.Pending, so their tags carry "n" and the
// write time "w"; native /v1 blobs (committed by being written) and older
// segments carry no "n". The workers find the leftovers of failed native
// writes by a rule on the needles' copies (package repair, "Failed native
// writes") and post them here too: nothing references them, so all are
// queued.
//
// The refs bucket indexes every referenced fid. Apply keeps it: put_object
// and put_part add their segments (complete_upload re-owns the parts'
// segments through put_object), and enqueueDeletes — the one path by which
// segments leave the namespace (replaced, deleted, aborted, unused parts)
// — drops them. A replacement releases only the segments the new version
// does not reuse (a replayed put_part or put_object releases none), a
// commit naming a segment that waits in the delete queue is refused
// (bucket queued: only a replay of a superseded change names one), and the
// delete loop checks refs again before it deletes: a referenced segment is
// never deleted. Databases of layout 1 get it built on open.
//
// A worker posts the candidates — "n" segments older than its
// OrphanGrace (1h by default) — to POST /orphans (command sweep_orphans).
// In one transaction, apply queues for deletion (the ordinary delete queue,
// after DeleteGrace) those that refs does not list and queued does not
// hold, and records them in swept. A fid swept before is queued again once
// its delete is done: its needle is back on some member (a late write, a
// repair copy after the delete passed), and swept keeps it uncommittable. put_object and put_part refuse a segment listed in swept before
// their first write. So a commit racing the sweep either lands first (the
// fid is referenced and the sweep skips it) or is refused (the gateway
// answers 500 and the client retries with new segments): an acknowledged
// write never references a deleted needle. The grace period only keeps
// the sweep from refusing commits that are merely slow.
//
// # Conditional writes
//
// put_object's depot.Object and complete_upload's nsclient.CompleteRequest
// may carry a depot.Precondition {if_match, if_none_match} (S3's If-Match
// and If-None-Match: *). Apply decides it against the key's current object
// before its first write (complete_upload before it drops the upload), so
// check and write are one step; a condition that does not hold is
// depot.ErrPrecondition (412), or ErrNotFound for if_match on a missing
// key, and writes nothing. The precondition is never stored with the
// object. A replay of a conditional put that applied (the key already
// holds its segments: fids are never reused) is not refused by its own
// result.
//
// # Versions
//
// A bucket's versioning state (nsclient.Bucket.Versioning) is "" until
// set_bucket makes it Enabled or Suspended; it never goes back to "". The
// key's current version lives in objects, as in any bucket; the versions
// it superseded live in versions, under the key escaped (each 0x00 byte
// written 0x00 0xff, the end 0x00 0x00: escaped keys sort as keys do and
// none is a prefix of another) followed by the complement of the nested
// bucket's next sequence, so a key's versions are adjacent, newest first.
// A version keeps its segments and their refs until a delete names it;
// only what a command releases is queued for deletion.
//
//	put_object   "": the object replaces the current one (as ever).
//	             Enabled: it gets a new id (the command's time in
//	             nanoseconds and the sequence, 24 hex digits, so no id
//	             comes twice even after a restore), and the current
//	             version moves to versions. Suspended: it is the null
//	             version (id ""); a current null version is released, a
//	             current version with an id moves to versions, and a null
//	             version in versions is released. In any state an update
//	             of the current version itself (the same segments: a
//	             replay, a metadata update; or IfUnchanged) keeps its id
//	             and makes no version.
//	delete_object without a version: "" removes the key; otherwise the
//	             key gets a delete marker (depot.Object.DeleteMarker, no
//	             segments) as its current version, made as put_object
//	             would make a version. With a version ("null" names the
//	             null version): that one version goes; if it was the
//	             current one, the newest in versions takes its place.
//	             A version that is not there is ErrNotFound.
//
// GetObject and List treat a key whose current version is a delete marker
// as absent (a common prefix of List may still be rolled up from such
// keys); GetObjectVersion and ListVersions show every version. A bucket
// with versions left is not empty. The objects and bytes counters count
// current versions that are not delete markers.
//
// # Object Lock
//
// A bucket's record may enable Object Lock (object_lock, for good, with
// versioning Enabled for good) and hold a default_retention {mode, days |
// years}. A version's lock is part of its record (depot.Object.Lock: mode
// GOVERNANCE or COMPLIANCE with retain_until, and legal_hold). put_object
// in a bucket with Object Lock gives a new version the lock it names, or
// the default retention counted from the command's time; elsewhere a lock
// is refused. Apply refuses with depot.ErrLocked, writing nothing, to
// delete a version that is protected (a legal hold, or a retention whose
// date has not passed: COMPLIANCE always, GOVERNANCE unless the delete
// carries bypass) and to release a protected null version. A delete
// without a version only adds a delete marker and so is allowed.
// set_lock changes one version's lock: a COMPLIANCE retention in force
// only gets longer; a GOVERNANCE one is tightened freely and shortened,
// removed or weakened only with bypass; a legal hold is set and cleared
// freely. The gateway decides who may (s3:PutObjectRetention,
// s3:PutObjectLegalHold, s3:BypassGovernanceRetention). A restore rewinds
// the namespace, locks included (see "Backup and restore"): its answer
// counts the protected versions it takes out (locked_rewound) and warns.
//
// # Lifecycle
//
// A bucket's record may hold lifecycle rules (nsclient.LifecycleRule,
// validated by set_bucket). On the leader, every LifecycleInterval (10m),
// the lifecycle worker reads each such bucket's versions as ListVersions
// pages them and proposes, at most LifecycleRate (100) per second:
// delete_object with if_current {version_id, modified} for a current
// version whose rule's days (of LifecycleDay, 24h) since it was written,
// or whose date, have come (a delete marker in a versioned bucket);
// delete_object of a version for a non-current version NoncurrentDays
// after the next newer one was written, keeping NewerNoncurrent of them;
// delete_object of a delete marker that is its key's only version
// (ExpiredDeleteMarker); abort_upload for uploads older than their rule
// allows. if_current makes an expiry fail with ErrPrecondition when the
// key was written again since it was read. Refusals (ErrPrecondition,
// ErrNotFound, ErrLocked) skip the action until the next pass; the counts
// are in Status (lifecycle) and in depot_nameserver_lifecycle_* metrics.
//
// # Rebalance and drain
//
// Moves of healthy shard slots (rebalance.go) are repair jobs with Move
// set whose From is a working member; the repair worker of To copies the
// shard from From, and the same repair_progress command switches the
// member list (package repair, "Moves", has the protocol). Two more
// buckets, created on first use:
//
//	rebalance  "state" → JSON rebalanceState {active, band, started,
//	           draining [node ids], moved, moved_bytes}
//	retired    uint32 volume id, uint16 shard index → JSON
//	           nsclient.RepairJob: switched moves whose old copy (on From)
//	           is kept until To reports the move settled
//
// Commands: rebalance_set (start or stop a run, start or stop draining a
// dataserver), move_start, move_settled and move_cancel. Every
// RepairInterval the rebalance loop (rebalanceStep):
//
//   - cancels moves whose target is dead or left;
//   - when Config.RebalanceInterval is set (10 minutes by default; 0 turns
//     it off) and that long
//     passed since it last looked, starts a run if a dataserver's bytes
//     lie outside RebalanceBand of the mean;
//   - while a run is active or a dataserver drains, asks every up
//     dataserver for its shard files (GET /status on the dataserver),
//     sums each one's live bytes by the slots it is a member of, and plans
//     on that model (plan): every slot of a draining dataserver goes to
//     the emptiest eligible one; then, while the fullest or the emptiest
//     lies outside the band, the fullest gives the emptiest the slot that
//     narrows their gap most. Targets are up, not draining, hold no other
//     shard of the volume, and keep the volume's rack spread. A volume
//     with any job under way is left for a later step, and a plan moves
//     one slot per volume. At most RebalanceParallel moves run at once.
//   - ends the run once a plan is empty and no move is under way.
//
// Draining dataservers are no candidates for placement nor for repair.
// The state lives in the database, so a restarted nameserver carries on.
// GET /rebalance reports the run, the drains, the spread of bytes and the
// moves (nsclient.RebalanceStatus); `depot admin rebalance` and `depot
// admin drain NODE` start them and follow them with a progress bar.
//
// # HTTP API
//
// See Handler; request and answer types are in package nsclient, which is
// also the Go client. Errors are JSON bodies from internal/httpx, so
// errors.Is(err, depot.ErrNotFound) works on the client side. Every route
// needs the cluster token (internal/auth), and with Config.TLS a client
// certificate from the cluster CA, except these, which are for load
// balancers and Prometheus (Config.MetricsToken guards /metrics):
//
//	GET /healthz     200 while the server runs
//	GET /readyz      200 once the synced records show ReadyDataservers alive
//	GET /metrics     requests by route and status, latency, bytes, group
//	                 commit, assigns, volumes by state, gossip members by
//	                 state, repair and rebalance progress
//
// The admin routes (access.go: users, rebalance and drain control, volume
// states, and the pages for people below) need the admin credential,
// Config.AdminKey or else the cluster key, as a token or as the password of
// HTTP Basic auth:
//
//	GET /ui          the status page: dataservers with a bar of space used,
//	                 volumes by state, repair progress, the health verdict;
//	                 it refreshes itself
//	GET /ui/health   the page's facts as JSON, the same document as
//	                 `depot admin status --json` (nsclient.Assess)
//
// Object Lock (with the token): POST /lock/{bucket}?key=K&version=V with
// nsclient.LockRequest.
//
// Versions (with the token): GET /objects/{bucket}?key=K&version=V (V ""
// for the current version, a delete marker included), DELETE
// /objects/{bucket}?key=K[&version=V], GET /versions/{bucket}?prefix=
// &key_marker=&version_marker=&delimiter=&limit= (nsclient.VersionList).
//
// The raft group's routes (all with the token): GET /nameservers (members,
// leader), POST /nameservers {id, raft_addr}, DELETE /nameservers/{id},
// GET /backup, POST /restore.
package nameserver
