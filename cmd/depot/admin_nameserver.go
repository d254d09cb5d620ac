package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"depot/nameserver/nsclient"
)

// runAdminNameserver runs `depot admin backup|restore|nameserver ...`.
func runAdminNameserver(ctx context.Context, conn *adminConn, args []string) error {
	ns, err := conn.client()
	if err != nil {
		return err
	}
	return adminNameserver(ctx, ns, os.Stdout, args)
}

func adminNameserver(ctx context.Context, ns *nsclient.Client, out io.Writer, args []string) error {
	switch {
	case len(args) == 2 && args[0] == "backup":
		return backupTo(ctx, ns, out, args[1])
	case len(args) == 2 && args[0] == "restore":
		res, err := ns.Restore(ctx, args[1])
		if err != nil {
			return err
		}
		printRestore(out, args[1], res)
		return nil
	case len(args) == 2 && args[0] == "nameserver" && args[1] == "ls":
		l, err := ns.Nameservers(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tHTTP\tRAFT\tROLE")
		for _, n := range l {
			role := "follower"
			switch {
			case n.Leader:
				role = "leader"
			case !n.Voter:
				role = "non-voter"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.ID, n.Addr, n.RaftAddr, role)
		}
		return tw.Flush()
	case len(args) == 4 && args[0] == "nameserver" && args[1] == "add":
		if err := ns.AddNameserver(ctx, args[2], args[3]); err != nil {
			return err
		}
		fmt.Fprintf(out, "nameserver %s added at %s\n", args[2], args[3])
		return nil
	case len(args) == 3 && args[0] == "nameserver" && (args[1] == "remove" || args[1] == "rm"):
		if err := ns.RemoveNameserver(ctx, args[2]); err != nil {
			return err
		}
		fmt.Fprintf(out, "nameserver %s removed\n", args[2])
		return nil
	}
	return errors.New("usage: depot admin backup FILE | restore FILE | nameserver ls | nameserver add ID RAFT_ADDR | nameserver remove ID")
}

// backupTo writes the backup to a temporary file beside path and renames
// it into place once complete, so that path never holds half a backup.
func backupTo(ctx context.Context, ns *nsclient.Client, out io.Writer, path string) error {
	tmp := path + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	n, err := ns.Backup(ctx, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(out, "backed up %d bytes to %s\n", n, path)
	return nil
}

// printRestore tells what a restore did: the backup's time and age, and a
// warning when objects deleted or overwritten since it was taken may have
// lost their data.
func printRestore(out io.Writer, path string, res nsclient.RestoreResult) {
	if res.BackupTime.IsZero() {
		fmt.Fprintf(out, "restored from %s (backup time unknown; delete grace %v)\n", path, res.DeleteGrace)
	} else {
		fmt.Fprintf(out, "restored from %s: backup taken %s, %v old (delete grace %v)\n", path,
			res.BackupTime.Local().Format(time.RFC3339), res.Age.Round(time.Second), res.DeleteGrace)
	}
	if res.Warning != "" {
		fmt.Fprintf(out, "WARNING: %s\n", res.Warning)
	}
}
