package nsclient

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"depot"
)

// This file holds the types and calls of the repair API (see the
// nameserver's repair.go and package repair, which runs the workers).

// RepairJob is the rebuild of one shard slot of a volume: shard Index of
// Volume, last held by From (dead past the repair grace period), is rebuilt
// on To from k healthy members, needle by needle, in needle-id order. Cursor
// is the highest needle id already rebuilt, so a restarted worker resumes
// after it. Once done, the volume's member list switches From for To.
type RepairJob struct {
	Volume  depot.VolumeID `json:"volume"`
	Index   int            `json:"index"`
	From    string         `json:"from"`
	To      string         `json:"to"`
	Started time.Time      `json:"started"`
	Updated time.Time      `json:"updated,omitzero"`
	Cursor  depot.NeedleID `json:"cursor"`
	Needles int64          `json:"needles"`     // needles rebuilt so far
	Bytes   int64          `json:"bytes"`       // shard bytes rebuilt so far
	Total   int64          `json:"total_bytes"` // shard bytes to rebuild, 0 until known
	// Move marks a move of a healthy shard (rebalance, drain; see
	// rebalance.go): To copies From's needles, then the member switches.
	Move bool `json:"move,omitempty"`
	// FromAddr is From's HTTP address, set in RepairTasks.Settle.
	FromAddr string `json:"from_addr,omitempty"`
	// Skipped counts needles the job could not rebuild and went past
	// (recorded as missed writes of the slot, or handed to the orphan
	// sweep when they were never written whole).
	Skipped int64 `json:"skipped,omitempty"`
	// Failures counts the failed attempts reported since the job last
	// made progress (the same error at most once a minute); Error is the
	// last one's error.
	Failures int    `json:"failures,omitempty"`
	Error    string `json:"error,omitempty"`
}

// RepairTasks is the answer to GET /repair/tasks?node=N: the work that
// dataserver N's repair worker is to do.
type RepairTasks struct {
	// Jobs are the shard rebuilds that target N.
	Jobs []RepairJob `json:"jobs"`
	// Missed are recorded missed or corrupt needles whose listed shards
	// N holds (other shards left out).
	Missed []MissedWrite `json:"missed"`
	// Volumes describes every volume named above, members with their
	// current addresses.
	Volumes []depot.Volume `json:"volumes"`
	// Holds lists every shard slot N is a member of, for anti-entropy:
	// a shard file N keeps that is neither here nor a job's target is
	// stale.
	Holds []ShardRef `json:"holds"`
	// Settle lists moves to N whose member switch is done but whose old
	// copy (on From) is still kept for writers with a stale member list;
	// Updated is the time of the switch (rebalance.go).
	Settle []RepairJob `json:"settle,omitempty"`
	// Retired lists slots N was switched away from by a move that has not
	// settled yet: N keeps those shard files until then.
	Retired []ShardRef `json:"retired,omitempty"`
	// Restored counts the restores of the nameserver's database from a
	// backup (meta "restored"): the orphan sweep forgets what it decided
	// when it changes, since a restore changes what is referenced.
	Restored uint64 `json:"restored,omitempty"`
}

// ShardRef names one shard slot: shard Index of Volume.
type ShardRef struct {
	Volume depot.VolumeID `json:"volume"`
	Index  int            `json:"index"`
}

// RepairProgress is the body of POST /repair/progress: how far the job
// of (Volume, Index) to To has come. Done set switches the member list.
type RepairProgress struct {
	Volume  depot.VolumeID `json:"volume"`
	Index   int            `json:"index"`
	To      string         `json:"to"`
	Cursor  depot.NeedleID `json:"cursor"`
	Needles int64          `json:"needles"`
	Bytes   int64          `json:"bytes"`
	Total   int64          `json:"total_bytes"`
	Skipped int64          `json:"skipped,omitempty"`
	Done    bool           `json:"done,omitempty"`
	// Error, when set, reports a failed attempt instead of progress, the
	// Failures-th since the job last moved; the other fields are ignored.
	Error    string `json:"error,omitempty"`
	Failures int    `json:"failures,omitempty"`
}

// RepairedList is the body of POST /repair/repaired: shards of needles
// that were rebuilt (or found not to need it), to be removed from the
// missed records.
type RepairedList struct {
	Repaired []MissedWrite `json:"repaired"`
}

// RepairStatus is the answer to GET /repair/status.
type RepairStatus struct {
	Jobs []RepairJob `json:"jobs"`
	// Missed counts the shards of needles awaiting needle-level repair
	// (missed writes and corruption found by scrubs).
	Missed int `json:"missed_shards"`
	// Degraded counts volumes with a member down or a job running.
	Degraded int `json:"degraded_volumes"`
	// Bytes and Total sum the jobs' progress; Rate is the bytes per
	// second over the jobs' lifetimes; ETA the estimated time left.
	Bytes int64         `json:"bytes"`
	Total int64         `json:"total_bytes"`
	Rate  float64       `json:"bytes_per_second"`
	ETA   time.Duration `json:"eta_ns"`
}

// RepairTasks returns the repair work for dataserver node.
func (c *Client) RepairTasks(ctx context.Context, node string) (RepairTasks, error) {
	var t RepairTasks
	err := c.do(ctx, http.MethodGet, "/repair/tasks", url.Values{"node": {node}}, nil, &t)
	return t, err
}

// RepairProgress reports a job's progress, or its end (p.Done). It fails
// with depot.ErrNotFound when no such job exists (it was moved to another
// dataserver).
func (c *Client) RepairProgress(ctx context.Context, p RepairProgress) error {
	return c.do(ctx, http.MethodPost, "/repair/progress", nil, p, nil)
}

// Repaired removes repaired shards from the missed records.
func (c *Client) Repaired(ctx context.Context, list []MissedWrite) error {
	return c.do(ctx, http.MethodPost, "/repair/repaired", nil, RepairedList{Repaired: list}, nil)
}

// RepairStatus returns the repair jobs and needle-level repair backlog.
func (c *Client) RepairStatus(ctx context.Context) (RepairStatus, error) {
	var s RepairStatus
	err := c.do(ctx, http.MethodGet, "/repair/status", nil, nil, &s)
	return s, err
}
