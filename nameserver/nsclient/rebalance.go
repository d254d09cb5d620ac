package nsclient

import (
	"context"
	"net/http"
	"time"

	"depot"
)

// This file holds the types and calls of the rebalance and drain API (see
// the nameserver's rebalance.go).

// RebalanceRequest is the body of POST /rebalance: start a rebalance run
// that moves shard files until every dataserver holds within Band (a
// fraction, e.g. 0.1 for ±10%) of the mean bytes. Zero Band means the
// nameserver's Config.RebalanceBand.
type RebalanceRequest struct {
	Band float64 `json:"band,omitempty"`
}

// DrainRequest is the body of POST /rebalance/drain: move every shard off
// Node (Undo: stop draining it and let placement use it again).
type DrainRequest struct {
	Node string `json:"node"`
	Undo bool   `json:"undo,omitempty"`
}

// SettledRequest is the body of POST /rebalance/settled: the move of shard
// Index of Volume to To has caught up with its old copy, which may go.
type SettledRequest struct {
	Volume depot.VolumeID `json:"volume"`
	Index  int            `json:"index"`
	To     string         `json:"to"`
}

// NodeUsage is one dataserver in a RebalanceStatus.
type NodeUsage struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Bytes    int64  `json:"bytes"`  // live shard bytes of the slots it is a member of
	Shards   int    `json:"shards"` // slots it is a member of
	Draining bool   `json:"draining,omitempty"`
}

// RebalanceStatus is the answer to GET /rebalance.
type RebalanceStatus struct {
	// Active is set while a rebalance run is under way.
	Active bool    `json:"active"`
	Band   float64 `json:"band"`
	// Started is when the current (or last) run started.
	Started time.Time `json:"started,omitzero"`
	// Draining lists the dataservers being drained (or drained and not
	// yet undone).
	Draining []string `json:"draining"`
	// Nodes is the usage of every alive or draining dataserver; Mean is
	// the mean bytes of the alive ones that are not draining, and InBand
	// tells whether they all lie within Band of it.
	Nodes  []NodeUsage `json:"nodes"`
	Mean   int64       `json:"mean"`
	InBand bool        `json:"in_band"`
	// Jobs are the moves under way; Settling counts switched moves whose
	// old copy is still kept.
	Jobs     []RepairJob `json:"jobs"`
	Settling int         `json:"settling"`
	// Moved and MovedBytes count the moves finished since the run (or
	// the first drain) started; Remaining is what the latest plan still
	// had to move, in bytes, beyond the jobs under way.
	Moved      int64 `json:"moved"`
	MovedBytes int64 `json:"moved_bytes"`
	Remaining  int64 `json:"remaining_bytes"`
	// Done is set when nothing is left to do: no active run, no move
	// under way or settling, and every draining dataserver holds nothing.
	Done bool `json:"done"`
}

// Drained reports whether node holds no shard slot, no move from it is
// under way and none of its old copies is still kept.
func (s RebalanceStatus) Drained(node string) bool {
	for _, n := range s.Nodes {
		if n.ID == node && n.Shards > 0 {
			return false
		}
	}
	for _, j := range s.Jobs {
		if j.From == node {
			return false
		}
	}
	return s.Settling == 0
}

// Progress returns the bytes moved so far in the run and the estimated
// total, for a progress bar.
func (s RebalanceStatus) Progress() (done, total int64) {
	done = s.MovedBytes
	total = s.MovedBytes + s.Remaining
	for _, j := range s.Jobs {
		done += j.Bytes
		total += max(j.Total, j.Bytes)
	}
	return done, max(total, done)
}

// Rebalance starts a rebalance run.
func (c *Client) Rebalance(ctx context.Context, band float64) error {
	return c.do(ctx, http.MethodPost, "/rebalance", nil, RebalanceRequest{Band: band}, nil)
}

// StopRebalance ends the rebalance run; moves under way finish.
func (c *Client) StopRebalance(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/rebalance", nil, nil, nil)
}

// Drain starts (or, with undo, stops) draining a dataserver.
func (c *Client) Drain(ctx context.Context, node string, undo bool) error {
	return c.do(ctx, http.MethodPost, "/rebalance/drain", nil, DrainRequest{Node: node, Undo: undo}, nil)
}

// RebalanceStatus returns the state of rebalancing and draining.
func (c *Client) RebalanceStatus(ctx context.Context) (RebalanceStatus, error) {
	var s RebalanceStatus
	err := c.do(ctx, http.MethodGet, "/rebalance", nil, nil, &s)
	return s, err
}

// MoveSettled reports that a switched move caught up with its old copy.
func (c *Client) MoveSettled(ctx context.Context, r SettledRequest) error {
	return c.do(ctx, http.MethodPost, "/rebalance/settled", nil, r, nil)
}
