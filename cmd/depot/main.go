// Command depot runs every depot role and talks to a running cluster.
//
//	depot server       everything in one process, on local disk
//	depot nameserver   the cluster map and namespace
//	depot dataserver   shard files on local disks
//	depot gateway      the S3 and native HTTP APIs
//	depot put|get|rm|stat   blobs through a gateway's native API
//	depot shop         the demo storefront, on depot's S3 API
//	depot bench        load a gateway and print throughput and latency
//	depot version      the version stamped at build time
//
// Each subcommand parses its flags (and the environment variables named in
// its -h output) into its role's Config and runs it until SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
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
		{"version", "print depot's version", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: depot <command> [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'depot <command> -h' for a command's flags. Sizes take units (64KiB, 1.5GiB, 5GB),\n"+
		"durations Go's (90s, 10m); a malformed flag or environment variable is an error.\n")
}

// version is depot's release, stamped at build time with
// -ldflags "-X main.version=v1.2.3"; "dev" otherwise.
var version = "dev"

// versionString is version with the commit it was built from, when the
// build recorded one (go build in a git work tree).
func versionString() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" {
		v += "+" + rev[:min(12, len(rev))] + dirty
	}
	return v
}

func runVersion(_ context.Context, args []string) error {
	if len(args) != 0 {
		return errors.New("usage: depot version")
	}
	fmt.Printf("depot %s %s %s/%s\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "-h", "-help", "--help", "help":
		usage(os.Stdout)
		return
	case "-version", "--version":
		os.Args[1] = "version"
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
	usage(os.Stderr)
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

// registerBuildInfo adds depot_build_info{version,goversion} 1 to each
// registry (those of the roles this process runs).
func registerBuildInfo(regs ...*prometheus.Registry) {
	for _, reg := range regs {
		g := prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "depot_build_info",
			Help:        "Always 1; its labels name the depot version and the Go release it was built with.",
			ConstLabels: prometheus.Labels{"version": versionString(), "goversion": runtime.Version()},
		})
		g.Set(1)
		reg.MustRegister(g)
	}
}
