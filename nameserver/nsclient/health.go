package nsclient

import (
	"fmt"
	"strings"
	"time"

	"depot"
)

// Health levels, from best to worst.
const (
	Healthy     = "HEALTHY"
	Degraded    = "DEGRADED"
	AtRisk      = "AT RISK"
	Unavailable = "UNAVAILABLE"
)

// Health is the cluster's health verdict with the facts it rests on. It is
// what `depot admin status --json` prints and what the nameserver's /ui
// page shows; both compute it with Assess, so they always agree.
type Health struct {
	Health  string       `json:"health"`  // Healthy, Degraded, AtRisk or Unavailable
	Verdict string       `json:"verdict"` // the one-line explanation
	Status  Status       `json:"status"`
	Repair  RepairStatus `json:"repair"`
	// MostDown is the largest number of down members of any volume, and
	// M the parity count of that volume's scheme.
	MostDown int `json:"most_members_down"`
	M        int `json:"m"`
}

// Assess computes the health verdict from the nameserver's status, its
// repair status and the volumes (for how many members each has lost). A
// member counts as down when its dataserver is neither alive nor suspect.
func Assess(st Status, rs RepairStatus, vols []depot.Volume) Health {
	h := Health{Status: st, Repair: rs}
	down := make(map[string]bool)
	notAlive := 0
	for _, d := range st.Dataservers {
		if d.State != "alive" {
			notAlive++
		}
		if d.State != "alive" && d.State != "suspect" {
			down[d.ID] = true
		}
	}
	for _, v := range vols {
		n := 0
		for _, m := range v.Members {
			if down[m.Node] {
				n++
			}
		}
		if n > h.MostDown || (n == h.MostDown && h.M == 0) {
			h.MostDown, h.M = n, v.M
		}
	}
	degraded := st.ByState[depot.VolumeDegraded] + st.ByState[depot.VolumeRepairing]
	var why []string
	if notAlive > 0 {
		why = append(why, fmt.Sprintf("%d dataserver(s) not alive", notAlive))
	}
	if degraded > 0 {
		why = append(why, fmt.Sprintf("%d volume(s) degraded or repairing", degraded))
	}
	if rs.Missed > 0 {
		why = append(why, fmt.Sprintf("%d needle shard(s) awaiting repair", rs.Missed))
	}
	rebuilds, failing := 0, 0
	for _, j := range rs.Jobs {
		if !j.Move { // a move (rebalance, drain) keeps the volume at full width
			rebuilds++
		}
		if j.Failures > 0 {
			failing++
		}
	}
	if rebuilds > 0 {
		why = append(why, "repair "+rs.Progress())
	}
	if failing > 0 {
		why = append(why, fmt.Sprintf("%d repair job(s) failing, retried (see their errors)", failing))
	}
	switch {
	case h.MostDown > h.M:
		h.Health = Unavailable
		why = append([]string{fmt.Sprintf("a volume lost %d members, more than its %d parity shards: some data cannot be read", h.MostDown, h.M)}, why...)
	case h.MostDown == h.M && h.M > 0:
		h.Health = AtRisk
		why = append([]string{fmt.Sprintf("a volume lost %d members: one more loss loses data", h.MostDown)}, why...)
	case len(why) > 0:
		h.Health = Degraded
	default:
		h.Health = Healthy
		why = append(why, fmt.Sprintf("%d dataservers alive, %d volumes at full width", st.Alive, st.Volumes))
	}
	h.Verdict = strings.Join(why, "; ")
	return h
}

// Percent is the share of the repair jobs' bytes already rebuilt, 0 to 100.
func (r RepairStatus) Percent() float64 {
	if r.Total <= 0 {
		return 0
	}
	return 100 * float64(r.Bytes) / float64(r.Total)
}

// Progress describes the repair jobs' progress in one line: bytes done of
// the total, and the rate and estimated time left once known.
func (r RepairStatus) Progress() string {
	s := fmt.Sprintf("%s of %s (%.0f%%)", FormatSize(r.Bytes), FormatSize(r.Total), r.Percent())
	if r.Rate > 0 {
		s += fmt.Sprintf(", %s/s, about %v left", FormatSize(int64(r.Rate)), r.ETA.Round(time.Second))
	}
	return s
}

// FormatSize writes a byte count with binary units: 512 B, 1.5 KiB, 3.0 GiB.
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, u := float64(n), 0
	for f >= unit && u < 5 {
		f /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTP"[u-1])
}
