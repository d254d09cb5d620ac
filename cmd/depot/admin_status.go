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

	"depot/nameserver/nsclient"
)

// clusterStatus is what `depot admin status --json` prints: the verdict
// that nsclient.Assess computes, the same one the nameserver's /ui shows.
type clusterStatus = nsclient.Health

func gatherStatus(ctx context.Context, ns *nsclient.Client) (clusterStatus, error) {
	st, err := ns.Status(ctx)
	if err != nil {
		return clusterStatus{}, fmt.Errorf("status: %w", err)
	}
	rs, err := ns.RepairStatus(ctx)
	if err != nil {
		return clusterStatus{}, fmt.Errorf("repair status: %w", err)
	}
	vols, err := ns.Volumes(ctx)
	if err != nil {
		return clusterStatus{}, fmt.Errorf("volumes: %w", err)
	}
	return nsclient.Assess(st, rs, vols), nil
}

func sizeStr(n int64) string { return nsclient.FormatSize(n) }

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
	if l := cs.Status.Lifecycle; l.Buckets > 0 {
		last := "no pass yet"
		if !l.LastPass.IsZero() {
			last = "last pass " + time.Since(l.LastPass).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(w, "lifecycle: %d rule(s) in %d bucket(s), %s; %d applied, %d skipped\n", l.Rules, l.Buckets, last, l.Applied, l.Skipped)
	}
	if len(cs.Repair.Jobs) == 0 {
		fmt.Fprintln(w, "repair: idle")
		return nil
	}
	fmt.Fprintf(w, "repair: %d shard rebuild(s), %s\n", len(cs.Repair.Jobs), cs.Repair.Progress())
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VOLUME\tSHARD\tFROM\tTO\tNEEDLES\tSKIPPED\tDONE\tSTARTED\tFAILURES")
	var failing []nsclient.RepairJob
	for _, j := range cs.Repair.Jobs {
		pct := 0.0
		if j.Total > 0 {
			pct = 100 * float64(j.Bytes) / float64(j.Total)
		}
		fmt.Fprintf(tw, "  %d\t%d\t%s\t%s\t%d\t%d\t%.0f%%\t%s\t%d\n", j.Volume, j.Index, j.From, j.To, j.Needles, j.Skipped, pct,
			j.Started.Local().Format("15:04:05"), j.Failures)
		if j.Failures > 0 {
			failing = append(failing, j)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, j := range failing {
		fmt.Fprintf(w, "  job %d/%d failed %d time(s) in a row: %s\n", j.Volume, j.Index, j.Failures, j.Error)
	}
	return nil
}

func runAdminStatus(ctx context.Context, conn *adminConn, args []string) error {
	asJSON := false
	for _, a := range args {
		switch a {
		case "--json", "-json":
			asJSON = true
		default:
			return fmt.Errorf("usage: depot admin status [--json]")
		}
	}
	ns, err := conn.client()
	if err != nil {
		return err
	}
	return adminStatus(ctx, ns, os.Stdout, asJSON)
}
