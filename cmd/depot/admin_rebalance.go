package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"depot/nameserver/nsclient"
)

// runAdminRebalance runs `depot admin rebalance ...` and
// `depot admin drain NODE ...`: it starts the work in the nameserver,
// which carries it on (it survives this command and a nameserver
// restart), then follows its progress with a progress bar unless
// --no-wait.
func runAdminRebalance(ctx context.Context, conn *adminConn, args []string) error {
	cmd := args[0]
	fs := flag.NewFlagSet("admin "+cmd, flag.ContinueOnError)
	band := new(float64)
	settingVar(fs, band, "band", "", 0, parseBand, formatFloat, "rebalance: allowed distance from the mean, as a fraction (0: the nameserver's RebalanceBand, 0.1 by default)")
	noWait := fs.Bool("no-wait", false, "start and return; `depot admin rebalance --status` shows progress")
	stop := fs.Bool("stop", false, "rebalance: end the run (moves under way finish)")
	status := fs.Bool("status", false, "rebalance: print the spread of bytes and the moves under way")
	undo := fs.Bool("undo", false, "drain: stop draining NODE; placement uses it again")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	ns, err := conn.client()
	if err != nil {
		return err
	}
	return adminRebalance(ctx, ns, os.Stdout, os.Stderr, rebalanceOpts{
		cmd: cmd, args: pos, band: *band, noWait: *noWait, stop: *stop, status: *status, undo: *undo,
	})
}

// rebalanceOpts are the parsed arguments of `depot admin rebalance|drain`.
type rebalanceOpts struct {
	cmd                        string // rebalance or drain
	args                       []string
	band                       float64
	noWait, stop, status, undo bool
}

// adminRebalance does the work of runAdminRebalance: results go to out,
// the progress bar to bar.
func adminRebalance(ctx context.Context, ns *nsclient.Client, out, bar io.Writer, o rebalanceOpts) error {
	switch {
	case o.cmd == "drain":
		if len(o.args) != 1 {
			return errors.New("usage: depot admin drain NODE [--no-wait] [--undo]")
		}
		node := o.args[0]
		if err := ns.Drain(ctx, node, o.undo); err != nil {
			return err
		}
		if o.undo {
			fmt.Fprintf(out, "%s is no longer drained\n", node)
			return nil
		}
		fmt.Fprintf(out, "draining %s: its shards move to the other dataservers; reads and writes go on\n", node)
		if o.noWait {
			return nil
		}
		st, err := followRebalance(ctx, ns, bar, func(st nsclient.RebalanceStatus) bool { return st.Drained(node) })
		if err != nil {
			return err
		}
		printSpread(out, st)
		fmt.Fprintf(out, "%s holds no shard any more: it may be stopped\n", node)
		return nil
	case len(o.args) != 0:
		return errors.New("usage: depot admin rebalance [--band F] [--no-wait] [--stop] [--status]")
	case o.status:
		st, err := ns.RebalanceStatus(ctx)
		if err != nil {
			return err
		}
		printSpread(out, st)
		return nil
	case o.stop:
		if err := ns.StopRebalance(ctx); err != nil {
			return err
		}
		fmt.Fprintln(out, "rebalance stopped; moves under way finish")
		return nil
	}
	if err := ns.Rebalance(ctx, o.band); err != nil {
		return err
	}
	fmt.Fprintln(out, "rebalancing: shard files move from the fullest dataservers to the emptiest; reads and writes go on")
	if o.noWait {
		return nil
	}
	st, err := followRebalance(ctx, ns, bar, func(st nsclient.RebalanceStatus) bool { return st.Done })
	if err != nil {
		return err
	}
	printSpread(out, st)
	if !st.InBand {
		fmt.Fprintf(out, "the spread is not within ±%.0f%% of the mean: no further move narrows it (shard files are too few or too big)\n", st.Band*100)
	}
	return nil
}

// followRebalance polls the rebalance status, drawing a progress bar of
// the bytes moved, until done says so or ctx ends.
func followRebalance(ctx context.Context, ns *nsclient.Client, w io.Writer, done func(nsclient.RebalanceStatus) bool) (nsclient.RebalanceStatus, error) {
	bar := progressbar.NewOptions64(-1, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("moving"),
		progressbar.OptionShowBytes(true), progressbar.OptionShowCount(), progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish())
	defer bar.Finish()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	fails := 0
	for {
		st, err := ns.RebalanceStatus(ctx)
		switch {
		case err != nil:
			fails++
			if fails > 60 { // the nameserver may be restarting: half a minute
				return st, fmt.Errorf("rebalance status: %w", err)
			}
		default:
			fails = 0
			moved, total := st.Progress()
			if total > 0 {
				bar.ChangeMax64(total)
				bar.Set64(moved)
			}
			bar.Describe(fmt.Sprintf("moving (%d done, %d under way)", st.Moved, len(st.Jobs)))
			if done(st) {
				return st, nil
			}
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-t.C:
		}
	}
}

// printSpread prints the bytes of every dataserver against the mean.
func printSpread(w io.Writer, st nsclient.RebalanceStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tSTATE\tBYTES\tSHARDS\tVS MEAN\t")
	for _, n := range st.Nodes {
		vs := "-"
		if st.Mean > 0 && !n.Draining {
			vs = fmt.Sprintf("%+.0f%%", 100*(float64(n.Bytes)/float64(st.Mean)-1))
		}
		state := n.State
		if n.Draining {
			state += ", draining"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t\n", n.ID, state, sizeStr(n.Bytes), n.Shards, vs)
	}
	tw.Flush()
	run := "no run under way"
	if st.Active {
		run = "a run is under way"
	}
	fmt.Fprintf(w, "mean %s, band ±%.0f%%, within band: %v; %s; %d moves (%s) done, %d under way, %d settling\n",
		sizeStr(st.Mean), st.Band*100, st.InBand, run, st.Moved, sizeStr(st.MovedBytes), len(st.Jobs), st.Settling)
}

// parseBand parses --band: a fraction from 0 up to (not including) 1.
func parseBand(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || !(f >= 0 && f < 1) {
		return 0, errors.New("not a band: want a fraction of the mean from 0 to 1, e.g. 0.1 (0: the nameserver's)")
	}
	return f, nil
}
