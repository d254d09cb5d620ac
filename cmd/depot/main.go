// Command depot runs every depot role and talks to a running cluster.
//
//	depot server       everything in one process, on local disk
//	depot nameserver   the cluster map and namespace
//	depot dataserver   shard files on local disks
//	depot gateway      the S3 and native HTTP APIs
//	depot put|get|rm|stat   blobs through a gateway's native API
//	depot shop         the demo storefront, on depot's S3 API
//	depot bench        load a gateway and print throughput and latency
//
// Each subcommand parses its flags (and the environment variables named in
// its -h output) into its role's Config and runs it until SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"server", "run a whole cluster in one process (nameserver, 6 dataservers, gateway)", runServer},
		{"nameserver", "run a nameserver", runNameserver},
		{"dataserver", "run a dataserver", runDataserver},
		{"gateway", "run a gateway", runGateway},
		{"put", "store files as blobs, printing their fids", runPut},
		{"get", "read a blob", runGet},
		{"rm", "delete blobs", runRm},
		{"stat", "describe a blob", runStat},
		{"admin", "manage S3 access keys and public buckets", runAdmin},
		{"shop", "run the demo shop (catalog, reviews, pages) on depot's S3 API", runShop},
		{"bench", "drive a gateway with concurrent puts and gets", runBench},
		{"healthcheck", "probe an HTTP endpoint (for container health checks)", runHealthcheck},
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: depot <command> [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'depot <command> -h' for a command's flags.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	name := os.Args[1]
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, os.Args[2:])
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "depot %s: %v\n", name, err)
			os.Exit(1)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "depot: unknown command %q\n\n", name)
	usage()
	os.Exit(2)
}

// envOr returns the environment variable name, or def when it is unset.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return fmt.Sprint([]string(*s)) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// parseInterspersed parses flags that may come before, between or after
// positional arguments (as in "depot get FID -o FILE") and returns the
// positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, applyEnv(fs)
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), applyEnv(fs)
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
