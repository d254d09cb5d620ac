// Package depot holds the vocabulary that every depot process shares: the
// names of stored things (volume ids, needle ids, cookies, fids), the
// description of a volume and its members, the metadata of an object, and the
// sentinel errors that cross package and process boundaries.
//
// The roles themselves live in their own packages: erasure (striping and
// reconstruction), dataserver (shard files on disk, served over HTTP),
// nameserver (cluster map and namespace), client (the native Go API) and
// gateway (S3 and /v1 over HTTP). See DESIGN.md in the shared folder for the
// words; this file is the short, exact version of them.
package depot

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// VolumeID names a volume: a logical append-only container stored as k+m
// shard files, one on each member dataserver.
type VolumeID uint32

// NeedleID names one needle inside a volume. The same needle id is used in
// every shard file of the volume: member i holds shard i of the needle.
type NeedleID uint64

// Cookie is a random number stored with a needle and carried in its fid.
// A read that presents the wrong cookie is answered as if the needle did not
// exist, which makes fids unguessable.
type Cookie uint32

// NewCookie returns a cookie from the operating system's random source.
func NewCookie() Cookie {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("depot: crypto/rand failed: " + err.Error())
	}
	return Cookie(binary.LittleEndian.Uint32(b[:]))
}

// Fid is the name of one stored segment: the volume that holds it, its
// needle id and its cookie. Its text form is "<volume>,<needle><cookie>":
// the volume in decimal, then the needle id in lower-case hex without
// leading zeros, followed by exactly eight hex digits of cookie, for example
// "17,3f9a0c21e4b7" (volume 17, needle 0x3f9a, cookie 0x0c21e4b7).
type Fid struct {
	Volume VolumeID
	Needle NeedleID
	Cookie Cookie
}

// String returns the text form of f.
func (f Fid) String() string {
	return fmt.Sprintf("%d,%x%08x", f.Volume, uint64(f.Needle), uint32(f.Cookie))
}

// ParseFid parses the text form of a fid. It returns an error wrapping
// ErrBadFid when s is not a well-formed fid.
func ParseFid(s string) (Fid, error) {
	comma := strings.IndexByte(s, ',')
	if comma <= 0 || comma == len(s)-1 {
		return Fid{}, fmt.Errorf("%w: %q: want <volume>,<needle><cookie>", ErrBadFid, s)
	}
	vol, err := strconv.ParseUint(s[:comma], 10, 32)
	if err != nil || vol == 0 {
		return Fid{}, fmt.Errorf("%w: %q: bad volume id", ErrBadFid, s)
	}
	rest := s[comma+1:]
	if len(rest) < 9 || len(rest) > 24 {
		return Fid{}, fmt.Errorf("%w: %q: bad needle and cookie", ErrBadFid, s)
	}
	needle, err := strconv.ParseUint(rest[:len(rest)-8], 16, 64)
	if err != nil {
		return Fid{}, fmt.Errorf("%w: %q: bad needle id", ErrBadFid, s)
	}
	cookie, err := strconv.ParseUint(rest[len(rest)-8:], 16, 32)
	if err != nil {
		return Fid{}, fmt.Errorf("%w: %q: bad cookie", ErrBadFid, s)
	}
	return Fid{Volume: VolumeID(vol), Needle: NeedleID(needle), Cookie: Cookie(cookie)}, nil
}

// VolumeState is the life-cycle state of a volume.
type VolumeState string

// Volume states.
const (
	VolumeWritable  VolumeState = "writable"  // takes new needles
	VolumeFull      VolumeState = "full"      // read-only: reached its size limit
	VolumeDegraded  VolumeState = "degraded"  // at least one member is dead or missing
	VolumeRepairing VolumeState = "repairing" // a replacement member is being rebuilt
)

// Member is one shard position of a volume: shard Index lives on the
// dataserver Node, reachable at Addr (host:port of its HTTP API).
type Member struct {
	Index int    `json:"index"`
	Node  string `json:"node"`
	Addr  string `json:"addr"`
}

// Volume describes a volume as the nameserver knows it.
type Volume struct {
	ID      VolumeID    `json:"id"`
	K       int         `json:"k"`
	M       int         `json:"m"`
	Unit    int         `json:"unit"` // erasure stripe unit in bytes
	Members []Member    `json:"members"`
	State   VolumeState `json:"state"`
}

// Segment is one stored piece of an object: Size bytes of it, kept as the
// needle Fid.
type Segment struct {
	Fid  string `json:"fid"`
	Size int64  `json:"size"`
}

// Object is the metadata of a stored object as the namespace keeps it.
type Object struct {
	Bucket      string            `json:"bucket"`
	Key         string            `json:"key"`
	Size        int64             `json:"size"`
	ETag        string            `json:"etag"`
	ContentType string            `json:"content_type,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
	Modified    time.Time         `json:"modified"`
	Segments    []Segment         `json:"segments"`
	PartSizes   []int64           `json:"part_sizes,omitempty"` // multipart objects only
	// Encryption is set when the object's bytes are encrypted at rest
	// (S3 server-side encryption); nil when the segments hold the bytes as
	// sent. Size and PartSizes always count the object's own (plaintext)
	// bytes; the segments then hold Encryption.StoredSize() bytes.
	Encryption *Encryption `json:"encryption,omitempty"`
	// VersionID is the object's version in a bucket with S3 versioning
	// configured; "" is the null version (every object of a bucket that
	// was never versioned, and what a write in a suspended bucket makes).
	// The nameserver assigns it; a write request's value is ignored.
	VersionID string `json:"version_id,omitempty"`
	// DeleteMarker marks a version that records a delete: it has no
	// bytes, and a key whose current version is one reads as absent.
	DeleteMarker bool `json:"delete_marker,omitempty"`
	// Lock is the version's S3 Object Lock: while it holds, no one can
	// delete the version or replace its bytes.
	Lock *ObjectLock `json:"lock,omitempty"`
	// Precondition, set only in a write request, makes the write
	// conditional; it is never stored with the object.
	Precondition *Precondition `json:"precondition,omitempty"`
}

// Object Lock retention modes.
const (
	// LockGovernance retention may be shortened or removed, and the
	// version deleted, by a caller allowed to bypass it.
	LockGovernance = "GOVERNANCE"
	// LockCompliance retention binds everyone until its date; it can be
	// extended, never shortened.
	LockCompliance = "COMPLIANCE"
)

// ObjectLock is an object version's S3 Object Lock: a retention (Mode and
// RetainUntil, both set or both zero) and a legal hold.
type ObjectLock struct {
	Mode        string    `json:"mode,omitempty"`
	RetainUntil time.Time `json:"retain_until,omitzero"`
	LegalHold   bool      `json:"legal_hold,omitempty"`
}

// Protects reports whether l forbids deleting or replacing its version at
// now; bypass lifts a GOVERNANCE retention (never a legal hold nor a
// COMPLIANCE retention).
func (l *ObjectLock) Protects(now time.Time, bypass bool) bool {
	if l == nil {
		return false
	}
	if l.LegalHold {
		return true
	}
	if l.Mode == "" || !now.Before(l.RetainUntil) {
		return false
	}
	return l.Mode == LockCompliance || !bypass
}

// Precondition makes an object write conditional on the key's current
// object, checked in the same transaction that writes (so two conditional
// writes of one key never both succeed). A write whose precondition does
// not hold fails with ErrPrecondition, or with ErrNotFound for IfMatch on a
// key that does not exist, and changes nothing.
type Precondition struct {
	// IfMatch, when set, is the ETag (unquoted) the current object must
	// have; "*" asks only that the key exists.
	IfMatch string `json:"if_match,omitempty"`
	// IfNoneMatch asks that the key does not exist.
	IfNoneMatch bool `json:"if_none_match,omitempty"`
	// IfUnchanged, when set, asks that the key still holds the very object
	// a metadata-only update (such as S3's PutObjectTagging) read: the
	// same segments, modified at this time. The update keeps that time.
	IfUnchanged *time.Time `json:"if_unchanged,omitempty"`
}

// Encryption modes.
const (
	// EncryptionS3 (SSE-S3): each stream's data key is sealed by a master
	// key of the gateways' keyring, named by Stream.KeyID.
	EncryptionS3 = "SSE-S3"
	// EncryptionC (SSE-C): each stream's data key is sealed by a key the
	// client sends with every request and that is never stored; KeyCheck
	// tells a wrong key from the right one.
	EncryptionC = "SSE-C"
)

// Encryption describes how an object is encrypted at rest. The exact
// format (chunking, nonces, sealing of data keys) is written down in
// gateway/s3/sse; the nameserver only keeps it and checks sizes.
type Encryption struct {
	// Mode is EncryptionS3 or EncryptionC.
	Mode string `json:"mode"`
	// KeyCheck (SSE-C only) is a random salt and a salted HMAC of the
	// client's key, never the key itself.
	KeyCheck string `json:"key_check,omitempty"`
	// Streams are the independently encrypted runs of the object, in
	// order: one for an object stored by one PUT or copy, one per part
	// for a multipart object. Empty in a multipart upload's record.
	Streams []Stream `json:"streams,omitempty"`
}

// Stream is one independently encrypted run of an object's bytes: Size
// plaintext bytes, sealed in chunks of ChunkSize bytes, each grown by
// StreamOverhead bytes.
type Stream struct {
	Size      int64  `json:"size"`
	ChunkSize int    `json:"chunk_size"`
	KeyID     string `json:"key_id,omitempty"` // SSE-S3: the master key that sealed Key
	Key       []byte `json:"key"`              // the stream's data key, sealed
	Nonce     []byte `json:"nonce"`            // the stream's random nonce base
}

// StreamOverhead is what sealing adds to each chunk of a stream: the
// AES-GCM tag.
// HeaderShardLength declares, on a chunked shard PUT to a dataserver, the
// exact length of its body, so that the dataserver writes it straight into
// its place in the shard file rather than spooling it (dataserver/doc.go).
const HeaderShardLength = "X-Depot-Length"

const StreamOverhead = 16

// Chunks returns how many chunks s is sealed in: one at least, so that
// even an empty stream carries an authenticated final chunk.
func (s Stream) Chunks() int64 {
	if s.ChunkSize <= 0 || s.Size <= 0 {
		return 1
	}
	return (s.Size + int64(s.ChunkSize) - 1) / int64(s.ChunkSize)
}

// StoredSize returns how many bytes s takes in the segments.
func (s Stream) StoredSize() int64 { return s.Size + s.Chunks()*StreamOverhead }

// Size returns the plaintext size of the encrypted object: the sum of its
// streams' sizes.
func (e *Encryption) Size() int64 {
	var n int64
	for _, s := range e.Streams {
		n += s.Size
	}
	return n
}

// StoredSize returns how many bytes the encrypted object takes in its
// segments.
func (e *Encryption) StoredSize() int64 {
	var n int64
	for _, s := range e.Streams {
		n += s.StoredSize()
	}
	return n
}

// Node roles in the gossip cluster.
const (
	RoleNameserver = "nameserver"
	RoleDataserver = "dataserver"
	RoleGateway    = "gateway"
)

// Sentinel errors. They cross process boundaries as HTTP statuses plus an
// error code string (see internal/httpx), and are compared with errors.Is.
var (
	// ErrNotFound is returned when a needle, fid, volume, bucket or key does
	// not exist, or when a cookie does not match (a wrong cookie is never
	// told apart from a missing needle).
	ErrNotFound = errors.New("not found")
	// ErrBadFid is returned when a fid's text is malformed.
	ErrBadFid = errors.New("malformed fid")
	// ErrCorrupt is returned when stored bytes fail their checksum.
	ErrCorrupt = errors.New("checksum mismatch")
	// ErrDiskFull is returned when a data directory has no space left.
	ErrDiskFull = errors.New("disk full")
	// ErrReadOnly is returned when a write reaches a read-only shard file
	// or directory.
	ErrReadOnly = errors.New("read-only")
	// ErrNoQuorum is returned when too few members acknowledged a write.
	ErrNoQuorum = errors.New("write quorum not reached")
	// ErrNotEnoughNodes is returned when placement finds too few alive
	// dataservers for a volume's scheme.
	ErrNotEnoughNodes = errors.New("not enough dataservers")
	// ErrUnauthorized is returned when a request lacks valid credentials.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrBadRequest is returned for malformed requests.
	ErrBadRequest = errors.New("bad request")
	// ErrExists is returned when creating something that already exists.
	ErrExists = errors.New("already exists")
	// ErrNotEmpty is returned when deleting a bucket that still has keys.
	ErrNotEmpty = errors.New("not empty")
	// ErrTooLarge is returned when a body exceeds a configured limit.
	ErrTooLarge = errors.New("too large")
	// ErrPrecondition is returned when a conditional write's precondition
	// (see Precondition) does not hold when the write is applied: nothing
	// was written.
	ErrPrecondition = errors.New("precondition failed")
	// ErrNoLeader is returned by a nameserver of a raft group that has no
	// leader it can reach (an election is under way, or it is cut off from
	// the majority); the caller retries, on another nameserver if it can.
	ErrNoLeader = errors.New("no nameserver leader")
	// ErrUnknownOutcome is returned when a change was handed over for
	// commit but its outcome is not known: the caller's context ended,
	// the answer was lost, or the leader lost office before the entry
	// was known to commit. The change may have been applied or not; the
	// caller resolves it (a retry with the same request id, or a read
	// back) and never treats it as a refusal.
	ErrUnknownOutcome = errors.New("outcome unknown")
	// ErrInUse is returned by a dataserver asked to delete a needle only
	// when idle (the nameserver's delete queue) while the needle is being
	// read or held by a reader: the delete is refused for now, and the
	// caller keeps it queued and retries later.
	ErrInUse = errors.New("in use by a reader")
	// ErrLocked is returned when a change would delete or replace an
	// object version that S3 Object Lock protects (a retention date not
	// yet passed, or a legal hold): nothing was written.
	ErrLocked = errors.New("protected by object lock")
)
