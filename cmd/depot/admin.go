package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"depot/internal/policy"
	"depot/nameserver/nsclient"
)

const adminUsage = `usage:
  depot admin user add [ACCESS_KEY [SECRET]]   add an S3 key pair (generated when not given)
  depot admin user rm ACCESS_KEY               remove an S3 key pair
  depot admin user ls                          list S3 access keys
  depot admin user policy set ACCESS_KEY FILE  give a key an IAM-shaped JSON policy (FILE "-": stdin)
  depot admin user policy get ACCESS_KEY       print a key's policy
  depot admin user policy rm ACCESS_KEY        remove it: the key may do nothing
  depot admin bucket public NAME               allow anonymous reads of a bucket (a bucket policy
                                               statement "DepotPublicRead")
  depot admin bucket private NAME              stop them
  depot admin status [--json]                  health, dataservers, volumes, repair progress
  depot admin rebalance [--band F] [--no-wait] move shard files until every dataserver is within
                                               the band of the mean bytes (--status, --stop)
  depot admin drain NODE [--no-wait] [--undo]  move every shard off NODE, then say it may be stopped
  depot admin certs --out DIR [--hosts a,b,c]  make a cluster CA, node certificates and an admin
                                               client certificate (ECDSA P-256) in DIR
  depot admin backup FILE                      copy the nameserver's state to FILE while it serves
  depot admin restore FILE                     replace the nameserver's whole state with a backup
  depot admin nameserver ls                    the raft group's members, and which one leads
  depot admin nameserver add ID RAFT_ADDR      add a nameserver (started with --raft-addr, no --peers)
  depot admin nameserver remove ID             remove a nameserver from the group
flags (before the subcommand): --nameserver URL[,URL...] (env DEPOT_NAMESERVER),
  --cluster-key-file FILE (or env DEPOT_CLUSTER_KEY), --dir DIR (a depot server's data directory),
  --admin-key-file FILE (or env DEPOT_ADMIN_KEY), --ca/--cert/--key for a cluster with mutual TLS`

// runAdmin changes the namespace's S3 settings through the nameserver.
func runAdmin(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(os.Stderr, adminUsage); fs.PrintDefaults() }
	var conn adminConn
	conn.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) >= 1 && rest[0] == "certs" {
		return runAdminCerts(rest[1:])
	}
	if len(rest) >= 1 && rest[0] == "status" {
		return runAdminStatus(ctx, &conn, rest[1:])
	}
	if len(rest) >= 1 && (rest[0] == "rebalance" || rest[0] == "drain") {
		return runAdminRebalance(ctx, &conn, rest)
	}
	if len(rest) >= 1 && (rest[0] == "backup" || rest[0] == "restore" || rest[0] == "nameserver") {
		return runAdminNameserver(ctx, &conn, rest)
	}
	if len(rest) < 2 {
		fs.Usage()
		return flag.ErrHelp
	}
	ns, err := conn.client()
	if err != nil {
		return err
	}
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
		fmt.Fprintf(os.Stderr, "the key may do nothing until it has a policy: depot admin user policy set %s FILE\n", u.AccessKey)
		return nil
	case "user policy":
		return adminUserPolicy(ctx, ns, rest[2:])
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
		fmt.Fprintln(tw, "ACCESS KEY\tCREATED\tPOLICY")
		for _, u := range us {
			pol := "none"
			if u.Policy != "" {
				pol = fmt.Sprintf("%d bytes", len(u.Policy))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", u.AccessKey, u.Created.Format("2006-01-02 15:04:05"), pol)
		}
		return tw.Flush()
	case "bucket public", "bucket private":
		if len(rest) != 3 {
			return fmt.Errorf("usage: depot admin bucket %s NAME", rest[1])
		}
		if err := setPublic(ctx, ns, rest[2], rest[1] == "public"); err != nil {
			return err
		}
		fmt.Printf("bucket %s is %s\n", rest[2], rest[1])
		return nil
	}
	fs.Usage()
	return flag.ErrHelp
}

// adminUserPolicy runs "user policy set|get|rm".
func adminUserPolicy(ctx context.Context, ns *nsclient.Client, args []string) error {
	const usage = "usage: depot admin user policy set ACCESS_KEY FILE | get ACCESS_KEY | rm ACCESS_KEY"
	if len(args) < 2 {
		return errors.New(usage)
	}
	switch ak := args[1]; {
	case args[0] == "set" && len(args) == 3:
		var b []byte
		var err error
		if args[2] == "-" {
			b, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		} else {
			b, err = os.ReadFile(args[2])
		}
		if err != nil {
			return err
		}
		if _, err := policy.Parse(b, policy.Identity); err != nil {
			return fmt.Errorf("%s: %w", args[2], err)
		}
		if err := ns.SetUserPolicy(ctx, ak, string(b)); err != nil {
			return err
		}
		fmt.Printf("policy of %s set\n", ak)
		return nil
	case args[0] == "get" && len(args) == 2:
		u, err := ns.User(ctx, ak)
		if err != nil {
			return err
		}
		if u.Policy == "" {
			return fmt.Errorf("%s has no policy", ak)
		}
		fmt.Println(strings.TrimSpace(u.Policy))
		return nil
	case args[0] == "rm" && len(args) == 2:
		return ns.SetUserPolicy(ctx, ak, "")
	}
	return errors.New(usage)
}

// setPublic adds the public-read statement to a bucket's policy, or
// removes it, and clears the legacy Public flag either way.
func setPublic(ctx context.Context, ns *nsclient.Client, bucket string, public bool) error {
	b, err := ns.Bucket(ctx, bucket)
	if err != nil {
		return err
	}
	doc, err := policy.SetPublicRead(b.Policy, bucket, public)
	if err != nil {
		return fmt.Errorf("bucket %s: its policy: %w", bucket, err)
	}
	off := false
	_, err = ns.SetBucket(ctx, bucket, nsclient.BucketSettings{Public: &off, Policy: &doc})
	return err
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
