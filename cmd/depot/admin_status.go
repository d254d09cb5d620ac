package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"depot"
	"depot/nameserver/nsclient"
)

// clusterStatus is what `depot admin status --json` prints.
type clusterStatus struct {
	Health  string                `json:"health"`  // HEALTHY, DEGRADED, AT RISK, UNAVAILABLE
	Verdict string                `json:"verdict"` // the one-line explanation
	Status  nsclient.Status       `json:"status"`
	Repair  nsclient.RepairStatus `json:"repair"`
	// MostDown is the largest number of down members of any volume, and
	// M the parity count of that volume's scheme.
	MostDown int `json:"most_members_down"`
	M        int `json:"m"`
}

func gatherStatus(ctx context.Context, ns *nsclient.Client) (clusterStatus, error) {
	var cs clusterStatus
	var err error
	if cs.Status, err = ns.Status(ctx); err != nil {
		return cs, err
	}
	if cs.Repair, err = ns.RepairStatus(ctx); err != nil {
		return cs, err
	}
	vols, err := ns.Volumes(ctx)
	if err != nil {
		return cs, err
	}
	down := make(map[string]bool)
	notAlive := 0
	for _, d := range cs.Status.Dataservers {
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
		if n > cs.MostDown || (n == cs.MostDown && cs.M == 0) {
			cs.MostDown, cs.M = n, v.M
		}
	}
	degraded := cs.Status.ByState[depot.VolumeDegraded] + cs.Status.ByState[depot.VolumeRepairing]
	var why []string
	if notAlive > 0 {
		why = append(why, fmt.Sprintf("%d dataserver(s) not alive", notAlive))
	}
	if degraded > 0 {
		why = append(why, fmt.Sprintf("%d volume(s) degraded or repairing", degraded))
	}
	if cs.Repair.Missed > 0 {
		why = append(why, fmt.Sprintf("%d needle shard(s) awaiting repair", cs.Repair.Missed))
	}
	if len(cs.Repair.Jobs) > 0 {
		why = append(why, fmt.Sprintf("repair %s", progressLine(cs.Repair)))
	}
	switch {
	case cs.MostDown > cs.M:
		cs.Health = "UNAVAILABLE"
		why = append([]string{fmt.Sprintf("a volume lost %d members, more than its %d parity shards: some data cannot be read", cs.MostDown, cs.M)}, why...)
	case cs.MostDown == cs.M && cs.M > 0:
		cs.Health = "AT RISK"
		why = append([]string{fmt.Sprintf("a volume lost %d members: one more loss loses data", cs.MostDown)}, why...)
	case len(why) > 0:
		cs.Health = "DEGRADED"
	default:
		cs.Health = "HEALTHY"
		why = append(why, fmt.Sprintf("%d dataservers alive, %d volumes at full width", cs.Status.Alive, cs.Status.Volumes))
	}
	cs.Verdict = strings.Join(why, "; ")
	return cs, nil
}

func progressLine(r nsclient.RepairStatus) string {
	pct := 0.0
	if r.Total > 0 {
		pct = 100 * float64(r.Bytes) / float64(r.Total)
	}
	s := fmt.Sprintf("%s of %s (%.0f%%)", sizeStr(r.Bytes), sizeStr(r.Total), pct)
	if r.Rate > 0 {
		s += fmt.Sprintf(", %s/s, about %v left", sizeStr(int64(r.Rate)), r.ETA.Round(time.Second))
	}
	return s
}

func sizeStr(n int64) string {
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

// adminStatus prints the cluster's health: `depot admin status [--json]`.
func adminStatus(ctx context.Context, ns *nsclient.Client, w io.Writer, asJSON bool) error {
	cs, err := gatherStatus(ctx, ns)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(cs)
	}
	fmt.Fprintf(w, "health: %s: %s\n\n", cs.Health, cs.Verdict)
	counts := map[string]int{}
	for _, d := range cs.Status.Dataservers {
		counts[d.State]++
	}
	fmt.Fprintf(w, "dataservers: %d alive, %d suspect, %d dead, %d left, %d unknown\n",
		counts["alive"], counts["suspect"], counts["dead"], counts["left"], counts["unknown"])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tSTATE\tRACK\tUSED\tFREE\tVOLUMES\tADDR")
	for _, d := range cs.Status.Dataservers {
		rack := d.Rack
		if rack == "" {
			rack = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.ID, d.State, rack, sizeStr(int64(d.Used)), sizeStr(int64(d.Free)), d.Volumes, d.Addr)
	}
	tw.Flush()
	var states []string
	for st, n := range cs.Status.ByState {
		states = append(states, fmt.Sprintf("%s %d", st, n))
	}
	slices.Sort(states)
	fmt.Fprintf(w, "\nvolumes: %d (%s)\n", cs.Status.Volumes, strings.Join(states, ", "))
	fmt.Fprintf(w, "objects: %d, %s; pending deletes: %d\n", cs.Status.Objects, sizeStr(int64(cs.Status.Bytes)), cs.Status.Deletes)
	fmt.Fprintf(w, "degraded needles: %d shard(s) awaiting needle-level repair\n", cs.Repair.Missed)
	if len(cs.Repair.Jobs) == 0 {
		fmt.Fprintln(w, "repair: idle")
		return nil
	}
	fmt.Fprintf(w, "repair: %d shard rebuild(s), %s\n", len(cs.Repair.Jobs), progressLine(cs.Repair))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VOLUME\tSHARD\tFROM\tTO\tNEEDLES\tDONE\tSTARTED")
	for _, j := range cs.Repair.Jobs {
		pct := 0.0
		if j.Total > 0 {
			pct = 100 * float64(j.Bytes) / float64(j.Total)
		}
		fmt.Fprintf(tw, "  %d\t%d\t%s\t%s\t%d\t%.0f%%\t%s\n", j.Volume, j.Index, j.From, j.To, j.Needles, pct,
			j.Started.Local().Format("15:04:05"))
	}
	return tw.Flush()
}

func runAdminStatus(ctx context.Context, nsURL, keyFile, dir string, args []string) error {
	asJSON := false
	for _, a := range args {
		switch a {
		case "--json", "-json":
			asJSON = true
		default:
			return fmt.Errorf("usage: depot admin status [--json]")
		}
	}
	if nsURL == "" {
		return fmt.Errorf("--nameserver (or DEPOT_NAMESERVER) is required: depot server prints it")
	}
	key, err := loadKey(keyFile, dir)
	if err != nil {
		return err
	}
	return adminStatus(ctx, nsclient.New(nsURL, key, nil), os.Stdout, asJSON)
}
