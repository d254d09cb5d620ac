package nsclient

import (
	"context"
	"net/http"

	"depot"
)

// This file holds the orphan sweep's call (see the nameserver's orphans.go
// and package repair, whose workers find the candidates).

// OrphanList is the body of POST /orphans: segments whose tags say they
// await a commit to the namespace ("n") and that are older than the
// sweeping worker's grace period.
type OrphanList struct {
	Segments []depot.Segment `json:"segments"`
}

// SweepResult is the answer to POST /orphans: the fids that no namespace
// entry references and that the nameserver queued for deletion, in the
// same transaction that checked them. The others are referenced: they
// were committed after all.
type SweepResult struct {
	Queued []string `json:"queued"`
}

// SweepOrphans asks the nameserver to queue for deletion those of segs
// that nothing in the namespace references; once it did, a commit that
// names one of them is refused.
func (c *Client) SweepOrphans(ctx context.Context, segs []depot.Segment) (SweepResult, error) {
	var r SweepResult
	err := c.do(ctx, http.MethodPost, "/orphans", nil, OrphanList{Segments: segs}, &r)
	return r, err
}
