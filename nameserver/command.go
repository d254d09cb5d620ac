package nameserver

import (
	"encoding/json"
	"time"

	"depot"
)

// CommandType names a state change.
type CommandType string

// The commands. Each is applied by apply in one bbolt transaction; its
// payload is the JSON of the matching *Cmd struct below.
const (
	CmdSyncDataservers CommandType = "sync_dataservers" // syncDataserversCmd
	CmdAssign          CommandType = "assign"           // assignCmd
	CmdSetVolumeState  CommandType = "set_volume_state" // setVolumeStateCmd
	CmdMissed          CommandType = "missed"           // nsclient.MissedWrite
	CmdClearMissed     CommandType = "clear_missed"     // nsclient.FidList
	CmdAckDeletes      CommandType = "ack_deletes"      // nsclient.SeqList
	CmdCreateBucket    CommandType = "create_bucket"    // bucketCmd
	CmdDeleteBucket    CommandType = "delete_bucket"    // bucketCmd
	CmdPutObject       CommandType = "put_object"       // depot.Object
	CmdDeleteObject    CommandType = "delete_object"    // objectKeyCmd
)

// Command is one entry of the state machine's log: every change of the
// nameserver's state is a Command given to apply. Apply is deterministic: it
// reads only the transaction and the command (Time stands in for the clock),
// so that the same log replayed on another replica (hashicorp/raft) yields
// the same state. Decisions that need the world outside — which dataservers
// are alive, where to place a volume, which volume to lease from — are taken
// by the proposer and written into the payload.
//
// Results of apply, by type: assign → nsclient.Assignment; put_object,
// put_part and complete_upload → nsclient.PutResult; delete_object →
// nsclient.DeleteResult; create_bucket and set_bucket → nsclient.Bucket;
// create_upload → nsclient.Upload; sweep_orphans → nsclient.SweepResult;
// the others → nil. The table resultTypes (requests.go) must list every
// type with a result.
//
// ID, when set, is the request id of the call that proposed the command
// (nsclient.HeaderRequestID): apply applies a command of one id and type
// at most once and answers a repeat with the recorded result.
type Command struct {
	Type CommandType     `json:"type"`
	Time time.Time       `json:"time"` // when it was proposed
	Data json.RawMessage `json:"data"`
	ID   string          `json:"id,omitempty"`
}

// dataserverRecord is a dataserver as the nameserver stores it: what gossip
// said about it last.
type dataserverRecord struct {
	ID         string    `json:"id"`
	Addr       string    `json:"addr"`
	GossipAddr string    `json:"gossip_addr,omitempty"`
	Rack       string    `json:"rack,omitempty"`
	Free       uint64    `json:"free"`
	Used       uint64    `json:"used"`
	State      string    `json:"state"` // alive, suspect, dead, left, unknown
	Since      time.Time `json:"since,omitzero"`
}

// down reports whether the record counts as lost for its volumes: declared
// dead or gone.
func (r dataserverRecord) down() bool { return r.State == stateDead || r.State == stateLeft }

// up reports whether a dataserver in state can take writes: alive, or
// suspect (a probe failed but the cluster has not declared it dead; a busy
// machine is often suspected and then cleared).
func up(state string) bool { return state == stateAlive || state == stateSuspect }

// Dataserver states besides the gossip ones (membership.State*).
const (
	stateAlive   = "alive"
	stateSuspect = "suspect"
	stateDead    = "dead"
	stateLeft    = "left"
	stateUnknown = "unknown" // in the database but not (yet) in gossip
)

// volumeRecord is a volume as stored: depot.Volume plus what the nameserver
// needs to restore its state.
type volumeRecord struct {
	depot.Volume
	// Full is set once the volume reached its size limit; it stays set
	// while the volume is degraded or repairing, so that it returns to
	// full, not writable.
	Full    bool      `json:"full,omitempty"`
	Created time.Time `json:"created,omitzero"`
}

// syncDataserversCmd carries the complete gossip view of the dataservers.
// Stored dataservers absent from it become unknown. Volumes with a member
// that is dead or left become degraded; degraded volumes whose members are
// all back become writable (or full) again.
type syncDataserversCmd struct {
	Dataservers []dataserverRecord `json:"dataservers"`
}

// assignCmd leases Count needle ids from volume Volume, or, when Create is
// set, creates that volume (its ID is allocated by apply) and leases from it.
type assignCmd struct {
	Volume depot.VolumeID `json:"volume,omitempty"`
	Create *depot.Volume  `json:"create,omitempty"`
	Count  int            `json:"count"`
	// Degraded allows leasing from a degraded volume that is not full.
	Degraded bool `json:"degraded,omitempty"`
}

type setVolumeStateCmd struct {
	Volume depot.VolumeID    `json:"volume"`
	State  depot.VolumeState `json:"state"`
}

type bucketCmd struct {
	Name string `json:"name"`
}

type objectKeyCmd struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	// Version, in a delete, names the one version to remove ("null" for
	// the null version); without it a delete of a versioned bucket's key
	// makes a delete marker (see versions.go).
	Version *string `json:"version,omitempty"`
	// Bypass lifts a GOVERNANCE retention of the version deleted (the
	// caller was authorised for s3:BypassGovernanceRetention).
	Bypass bool `json:"bypass,omitempty"`
	// IfCurrent, set by the lifecycle worker, makes a delete without a
	// version conditional: the key's current version must still be the
	// one with this version id and modification time (else
	// depot.ErrPrecondition), so an expiry never hits a newer write.
	IfCurrent *currentVersion `json:"if_current,omitempty"`
}

// currentVersion names a key's current version by id and time.
type currentVersion struct {
	VersionID string    `json:"version_id"`
	Modified  time.Time `json:"modified"`
}
