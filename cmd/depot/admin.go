package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"depot/nameserver/nsclient"
)

const adminUsage = `usage:
  depot admin user add [ACCESS_KEY [SECRET]]   add an S3 key pair (generated when not given)
  depot admin user rm ACCESS_KEY               remove an S3 key pair
  depot admin user ls                          list S3 access keys
  depot admin bucket public NAME               allow anonymous reads of a bucket
  depot admin bucket private NAME              stop them
  depot admin status [--json]                  health, dataservers, volumes, repair progress
  depot admin rebalance [--band F] [--no-wait] move shard files until every dataserver is within
                                               the band of the mean bytes (--status, --stop)
  depot admin drain NODE [--no-wait] [--undo]  move every shard off NODE, then say it may be stopped
  depot admin backup FILE                      copy the nameserver's state to FILE while it serves
  depot admin restore FILE                     replace the nameserver's whole state with a backup
  depot admin nameserver ls                    the raft group's members, and which one leads
  depot admin nameserver add ID RAFT_ADDR      add a nameserver (started with --raft-addr, no --peers)
  depot admin nameserver remove ID             remove a nameserver from the group
flags (before the subcommand): --nameserver URL[,URL...] (env DEPOT_NAMESERVER),
  --cluster-key-file FILE (or env DEPOT_CLUSTER_KEY), --dir DIR (a depot server's data directory)`

// runAdmin changes the namespace's S3 settings through the nameserver.
func runAdmin(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(os.Stderr, adminUsage); fs.PrintDefaults() }
	nsURL := fs.String("nameserver", envOr("DEPOT_NAMESERVER", ""), "nameserver URL (env DEPOT_NAMESERVER)")
	keyFile := fs.String("cluster-key-file", envOr("DEPOT_CLUSTER_KEY_FILE", ""), "file with the base64 cluster key (or env DEPOT_CLUSTER_KEY)")
	dir := fs.String("dir", "", "data directory of a depot server, to read its cluster.key")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) >= 1 && rest[0] == "status" {
		return runAdminStatus(ctx, *nsURL, *keyFile, *dir, rest[1:])
	}
	if len(rest) >= 1 && (rest[0] == "rebalance" || rest[0] == "drain") {
		return runAdminRebalance(ctx, *nsURL, *keyFile, *dir, rest)
	}
	if len(rest) >= 1 && (rest[0] == "backup" || rest[0] == "restore" || rest[0] == "nameserver") {
		return runAdminNameserver(ctx, *nsURL, *keyFile, *dir, rest)
	}
	if len(rest) < 2 {
		fs.Usage()
		return flag.ErrHelp
	}
	if *nsURL == "" {
		return errors.New("--nameserver (or DEPOT_NAMESERVER) is required: depot server prints it")
	}
	if *keyFile == "" && *dir == "" && os.Getenv("DEPOT_CLUSTER_KEY") == "" {
		return errors.New("no cluster key: set DEPOT_CLUSTER_KEY, --cluster-key-file or --dir")
	}
	key, err := loadKey(*keyFile, *dir)
	if err != nil {
		return err
	}
	ns := nsclient.New(*nsURL, key, nil)
	switch rest[0] + " " + rest[1] {
	case "user add":
		u := nsclient.User{AccessKey: randomToken(10, true), Secret: randomToken(30, false)}
		if len(rest) > 2 {
			u.AccessKey = rest[2]
		}
		if len(rest) > 3 {
			u.Secret = rest[3]
		}
		if err := ns.PutUser(ctx, u); err != nil {
			return err
		}
		fmt.Printf("access key: %s\nsecret:     %s\n", u.AccessKey, u.Secret)
		return nil
	case "user rm":
		if len(rest) != 3 {
			return errors.New("usage: depot admin user rm ACCESS_KEY")
		}
		return ns.DeleteUser(ctx, rest[2])
	case "user ls":
		us, err := ns.Users(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCESS KEY\tCREATED")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%s\n", u.AccessKey, u.Created.Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	case "bucket public", "bucket private":
		if len(rest) != 3 {
			return fmt.Errorf("usage: depot admin bucket %s NAME", rest[1])
		}
		public := rest[1] == "public"
		if _, err := ns.SetBucket(ctx, rest[2], nsclient.BucketSettings{Public: &public}); err != nil {
			return err
		}
		fmt.Printf("bucket %s is %s\n", rest[2], rest[1])
		return nil
	}
	fs.Usage()
	return flag.ErrHelp
}

// randomToken returns n random characters: upper-case letters and digits
// for access keys, base64 for secrets.
func randomToken(n int, upper bool) string {
	b := make([]byte, n)
	rand.Read(b)
	if upper {
		return strings.ToUpper(hex.EncodeToString(b))[:n]
	}
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}
