package nsclient

import (
	"time"

	"depot"
)

// This file holds every type that crosses the nameserver's HTTP API, in one
// place; the nameserver encodes exactly these.

// AssignRequest is the body of POST /assign. Zero K and M mean the
// nameserver's default scheme; zero Count means 1.
type AssignRequest struct {
	K     int `json:"k"`
	M     int `json:"m"`
	Count int `json:"count"`
}

// Assignment is the answer to POST /assign: a writable volume and a lease of
// Count consecutive needle ids starting at First. The ids are the caller's
// alone; unused ones are simply never written.
type Assignment struct {
	Volume depot.Volume   `json:"volume"`
	First  depot.NeedleID `json:"first"`
	Count  int            `json:"count"`
}

// Needle returns the i-th leased needle id (0 ≤ i < Count).
func (a Assignment) Needle(i int) depot.NeedleID { return a.First + depot.NeedleID(i) }

// VolumeList is the answer to GET /volumes.
type VolumeList struct {
	Volumes []depot.Volume `json:"volumes"`
}

// VolumeStateRequest is the body of POST /volumes/{id}/state.
type VolumeStateRequest struct {
	State depot.VolumeState `json:"state"`
}

// MissedWrite records shards of a segment that did not acknowledge a write,
// for repair. It is the body of POST /missed and an item of GET /missed.
type MissedWrite struct {
	Fid    string    `json:"fid"`
	Shards []int     `json:"shards"`
	Time   time.Time `json:"time,omitzero"`
}

// MissedList is the answer to GET /missed.
type MissedList struct {
	Missed []MissedWrite `json:"missed"`
}

// FidList is the body of DELETE /missed: the fids whose repair is done.
type FidList struct {
	Fids []string `json:"fids"`
}

// PendingDelete is a segment whose object was deleted or replaced; its
// needles are to be deleted from the dataservers.
type PendingDelete struct {
	Seq    uint64    `json:"seq"`
	Fid    string    `json:"fid"`
	Size   int64     `json:"size"`
	Queued time.Time `json:"queued"`
}

// DeleteList is the answer to GET /deletes.
type DeleteList struct {
	Deletes []PendingDelete `json:"deletes"`
}

// SeqList is the body of POST /deletes/ack: queue entries that are done.
type SeqList struct {
	Seqs []uint64 `json:"seqs"`
}

// Bucket is a namespace bucket.
type Bucket struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Public allows anonymous S3 reads of the bucket's objects.
	Public bool `json:"public,omitempty"`
	// CORS is the bucket's S3 CORSConfiguration XML, as last put.
	CORS string `json:"cors,omitempty"`
	// Policy is the bucket's S3 policy JSON, as last put.
	Policy string `json:"policy,omitempty"`
	// Encryption is the bucket's default server-side encryption for new
	// objects: "AES256" (SSE-S3) or empty for none.
	Encryption string `json:"encryption,omitempty"`
	// Owner is the access key of the user that created the bucket; ""
	// (buckets the root created, and every bucket made before owners were
	// kept) is the root.
	Owner string `json:"owner,omitempty"`
	// Tags is the bucket's S3 tag set, URL-encoded key=value pairs joined
	// by "&"; empty for none.
	Tags string `json:"tags,omitempty"`
	// Versioning is the bucket's S3 versioning state: "" (never
	// configured), VersioningEnabled or VersioningSuspended.
	Versioning string `json:"versioning,omitempty"`
	// ObjectLock reports S3 Object Lock enabled on the bucket (for good:
	// it cannot be turned off, and the bucket's versioning stays Enabled).
	ObjectLock bool `json:"object_lock,omitempty"`
	// DefaultRetention, with ObjectLock, is the retention every new
	// version gets when its write names none.
	DefaultRetention *DefaultRetention `json:"default_retention,omitempty"`
	// Lifecycle is the bucket's S3 lifecycle configuration: the rules the
	// nameserver's lifecycle worker applies.
	Lifecycle []LifecycleRule `json:"lifecycle,omitempty"`
}

// BucketList is the answer to GET /buckets.
type BucketList struct {
	Buckets []Bucket `json:"buckets"`
}

// PutResult is the answer to PUT /objects/{bucket}?key=K: the segments of
// the object the put replaced (none for a new key). The nameserver has
// already queued them for deletion (GET /deletes); callers must not queue
// them again.
type PutResult struct {
	Replaced []depot.Segment `json:"replaced"`
	// VersionID is the version the write made, as S3 reports it: "" in a
	// bucket that never had versioning, "null" in a suspended one.
	VersionID string `json:"version_id,omitempty"`
}

// DeleteResult is the answer to DELETE /objects/{bucket}?key=K: the deleted
// object's segments, already queued for deletion.
type DeleteResult struct {
	Deleted []depot.Segment `json:"deleted"`
	// VersionID is the version removed (a delete of one version) or the
	// delete marker made (a delete of a key in a versioned bucket), as S3
	// reports it; "" in a bucket that never had versioning.
	VersionID string `json:"version_id,omitempty"`
	// DeleteMarker reports that the version removed, or the one made, is
	// a delete marker.
	DeleteMarker bool `json:"delete_marker,omitempty"`
}

// DefaultRetention is a bucket's default Object Lock retention: Mode
// (depot.LockGovernance or depot.LockCompliance) for Days or Years (one of
// the two) from the write.
type DefaultRetention struct {
	Mode  string `json:"mode"`
	Days  int    `json:"days,omitempty"`
	Years int    `json:"years,omitempty"`
}

// LifecycleRule is one rule of a bucket's lifecycle configuration (S3's
// LifecycleConfiguration Rule). A rule applies to the objects whose key
// starts with Prefix, that carry every tag of Tags, and whose size lies
// strictly between SizeGreaterThan and SizeLessThan (0: no bound). Day
// counts are whole days of Config.LifecycleDay (24h).
type LifecycleRule struct {
	ID      string            `json:"id,omitempty"`
	Enabled bool              `json:"enabled"`
	Prefix  string            `json:"prefix,omitempty"`
	Tags    map[string]string `json:"tags,omitempty"`
	// SizeGreaterThan and SizeLessThan bound the object's size in bytes.
	SizeGreaterThan int64 `json:"size_greater_than,omitempty"`
	SizeLessThan    int64 `json:"size_less_than,omitempty"`
	// ExpireDays expires a current version that many days after it was
	// written; ExpireDate expires every matching current version from that
	// time on. Expiring deletes the object, or in a versioned bucket puts
	// a delete marker over it.
	ExpireDays int       `json:"expire_days,omitempty"`
	ExpireDate time.Time `json:"expire_date,omitzero"`
	// ExpiredDeleteMarker removes a delete marker that is a key's only
	// version left.
	ExpiredDeleteMarker bool `json:"expired_delete_marker,omitempty"`
	// NoncurrentDays deletes a non-current version that many days after it
	// stopped being current, keeping the NewerNoncurrent newest ones.
	NoncurrentDays  int `json:"noncurrent_days,omitempty"`
	NewerNoncurrent int `json:"newer_noncurrent,omitempty"`
	// AbortUploadDays aborts a multipart upload that many days after it
	// was initiated.
	AbortUploadDays int `json:"abort_upload_days,omitempty"`
}

// Bucket versioning states (Bucket.Versioning); "" is a bucket that was
// never versioned.
const (
	VersioningEnabled   = "Enabled"
	VersioningSuspended = "Suspended"
)

// VersionListOptions selects versions for GET /versions/{bucket}: keys
// with Prefix, after (KeyMarker, VersionIDMarker) in listing order (keys
// in byte order, each key's versions newest first; a KeyMarker alone
// starts after every version of that key), rolled up at Delimiter.
type VersionListOptions struct {
	Prefix          string
	KeyMarker       string
	VersionIDMarker string // as S3 names it: "null" for the null version
	Delimiter       string
	Limit           int // versions plus prefixes per page; 0 means 1000, at most 1000
}

// VersionEntry is one version in a VersionList.
type VersionEntry struct {
	depot.Object
	IsLatest bool `json:"is_latest"`
}

// VersionList is one page of GET /versions/{bucket}. When Truncated, the
// next page is asked with KeyMarker = NextKeyMarker and VersionIDMarker =
// NextVersionIDMarker.
type VersionList struct {
	Versions            []VersionEntry `json:"versions"`
	Prefixes            []string       `json:"prefixes,omitempty"`
	Truncated           bool           `json:"truncated,omitempty"`
	NextKeyMarker       string         `json:"next_key_marker,omitempty"`
	NextVersionIDMarker string         `json:"next_version_id_marker,omitempty"`
}

// ListOptions selects keys for GET /list/{bucket}.
type ListOptions struct {
	Prefix string // only keys that start with Prefix
	After  string // only keys strictly greater than After (byte order)
	// Delimiter, when set, rolls keys that contain it after Prefix up into
	// one common prefix each (S3's delimiter).
	Delimiter string
	Limit     int // objects plus prefixes per page; 0 means 1000, at most 1000
}

// ListResult is one page of GET /list/{bucket}. Objects are in byte order
// of their keys. When Truncated, the next page is asked with After = Next.
type ListResult struct {
	Objects   []depot.Object `json:"objects"`
	Prefixes  []string       `json:"prefixes,omitempty"`
	Truncated bool           `json:"truncated"`
	Next      string         `json:"next,omitempty"`
}

// Dataserver is a dataserver as GET /status shows it: its record in the
// nameserver and its state according to gossip (alive, suspect, dead, left,
// or unknown when this nameserver has not heard of it since it started).
type Dataserver struct {
	ID         string    `json:"id"`
	Addr       string    `json:"addr"`
	GossipAddr string    `json:"gossip_addr,omitempty"`
	Rack       string    `json:"rack,omitempty"`
	State      string    `json:"state"`
	Free       uint64    `json:"free"`
	Used       uint64    `json:"used"`
	Volumes    int       `json:"volumes"`
	Since      time.Time `json:"since,omitzero"`
}

// Status is the answer to GET /status.
type Status struct {
	Dataservers []Dataserver              `json:"dataservers"`
	Alive       int                       `json:"alive"`
	Volumes     int                       `json:"volumes"`
	ByState     map[depot.VolumeState]int `json:"volumes_by_state"`
	Schemes     map[string]map[string]int `json:"schemes,omitempty"` // "k+m" → state → count
	Buckets     int                       `json:"buckets"`
	Objects     uint64                    `json:"objects"`
	Bytes       uint64                    `json:"bytes"`
	Deletes     int                       `json:"pending_deletes"`
	Missed      int                       `json:"missed_writes"`
	Ready       bool                      `json:"ready"`
	Commits     CommitStats               `json:"commits"`
	Lifecycle   LifecycleStatus           `json:"lifecycle"`
}

// LifecycleStatus describes the lifecycle worker: how many buckets have
// rules, and, on the leader since it took office, the passes made and
// the actions applied and skipped.
type LifecycleStatus struct {
	Buckets  int       `json:"buckets"`
	Rules    int       `json:"rules"`
	Passes   uint64    `json:"passes"`
	LastPass time.Time `json:"last_pass,omitzero"`
	Applied  uint64    `json:"applied"`
	Skipped  uint64    `json:"skipped"`
}

// CommitStats describes the nameserver's group commit since it started.
type CommitStats struct {
	Commands uint64 `json:"commands"`
	Fsyncs   uint64 `json:"fsyncs"`
}

// NameserverInfo is a member of the nameserver raft group: GET
// /nameservers lists them (NameserverList); POST /nameservers adds one
// (ID, RaftAddr); DELETE /nameservers/{id} removes one. In the replicated
// state, a record with Remove set forgets a member.
type NameserverInfo struct {
	ID       string `json:"id"`
	Addr     string `json:"addr,omitempty"`      // HTTP host:port
	RaftAddr string `json:"raft_addr,omitempty"` // raft host:port
	Leader   bool   `json:"leader,omitempty"`
	Voter    bool   `json:"voter,omitempty"`
	Remove   bool   `json:"remove,omitempty"`
}

// NameserverList is the body of GET /nameservers.
type NameserverList struct {
	Nameservers []NameserverInfo `json:"nameservers"`
}
