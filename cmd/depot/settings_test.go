package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1048576", 1 << 20},
		{"64KiB", 64 << 10},
		{"400MiB", 400 << 20},
		{"1.5GiB", 3 << 29},
		{"5GiB", 5 << 30},
		{"5gib", 5 << 30},
		{"5 GiB", 5 << 30},
		{"5GB", 5e9},
		{"4k", 4000},
		{"0.5KiB", 512},
		{"2TiB", 2 << 40},
	} {
		got, err := parseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "-1", "ten", "5GiBB", "5 parsecs", "1,000", "1.1KiB", "0.5", "9EiB", "1e3"} {
		if n, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, n)
		}
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
	}{
		{"0", 0}, {"200", 200}, {"200/s", 200}, {"2.5/s", 2.5}, {"3000/m", 50}, {"3000/min", 50}, {"7200/h", 2},
	} {
		got, err := parseRate(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "-1", "fast", "200/", "200/x", "200/s/s", "NaN"} {
		if r, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) = %v, want an error", in, r)
		}
	}
}

func TestParseBandwidth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
	}{
		{"0", 0}, {"100", 100}, {"12.5", 12.5}, {"200MiB/s", 200}, {"1GiB/s", 1024}, {"512KiB", 0.5},
	} {
		got, err := parseBandwidth(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseBandwidth(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "-5", "fast", "100MiB/h"} {
		if r, err := parseBandwidth(in); err == nil {
			t.Errorf("parseBandwidth(%q) = %v, want an error", in, r)
		}
	}
}

// TestSettings_BadValuesRefused runs each command with one bad setting and
// checks that it stops before doing anything, with an error that names the
// setting, its value and what is accepted.
func TestSettings_BadValuesRefused(t *testing.T) {
	run := map[string]func(context.Context, []string) error{
		"server": runServer, "nameserver": runNameserver, "dataserver": runDataserver,
		"gateway": runGateway, "shop": runShop, "bench": runBench, "admin": runAdmin,
	}
	for _, tc := range []struct {
		cmd  string
		env  string // NAME=VALUE, or ""
		args []string
		want []string // substrings of the error
	}{
		{"server", "DEPOT_REPAIR_AFTER=10", nil, []string{`DEPOT_REPAIR_AFTER="10"`, "not a duration (e.g. 90s, 10m)"}},
		{"nameserver", "DEPOT_REPAIR_AFTER=10", nil, []string{`DEPOT_REPAIR_AFTER="10"`, "not a duration"}},
		{"nameserver", "DEPOT_REBALANCE_INTERVAL=-1m", nil, []string{`DEPOT_REBALANCE_INTERVAL="-1m"`, "negative"}},
		{"gateway", "DEPOT_RATE_PER_IP=200/x", nil, []string{`DEPOT_RATE_PER_IP="200/x"`, "200/s"}},
		{"server", "DEPOT_RATE_PER_KEY=lots", nil, []string{`DEPOT_RATE_PER_KEY="lots"`, "requests per second"}},
		{"server", "DEPOT_LOG_LEVEL=verbose", nil, []string{`DEPOT_LOG_LEVEL="verbose"`, "debug, info, warn, error"}},
		{"nameserver", "DEPOT_LOG_LEVEL=verbose", nil, []string{`DEPOT_LOG_LEVEL="verbose"`, "debug, info, warn, error"}},
		{"server", "", []string{"--memory-limit", "1.1KiB"}, []string{`"1.1KiB"`, "-memory-limit", "whole number of bytes", "1.5GiB"}},
		{"server", "DEPOT_MEMORY_LIMIT=lots", nil, []string{`DEPOT_MEMORY_LIMIT="lots"`, "not a size", "KiB"}},
		{"gateway", "DEPOT_MAX_OBJECT_SIZE=5GiBB", nil, []string{`DEPOT_MAX_OBJECT_SIZE="5GiBB"`, "not a size"}},
		{"gateway", "", []string{"--max-object-size", "-5"}, []string{`"-5"`, "-max-object-size", "not a size"}},
		{"gateway", "DEPOT_MAX_CONNS=1.5", nil, []string{`DEPOT_MAX_CONNS="1.5"`, "whole number"}},
		{"gateway", "DEPOT_READ_HEADER_TIMEOUT=5", nil, []string{`DEPOT_READ_HEADER_TIMEOUT="5"`, "not a duration"}},
		{"gateway", "DEPOT_SSE_C_OVER_HTTP=yes", nil, []string{`DEPOT_SSE_C_OVER_HTTP="yes"`, "true or false"}},
		{"gateway", "DEPOT_GOSSIP_TIMING=wan", nil, []string{`DEPOT_GOSSIP_TIMING="wan"`, "lan, local, test"}},
		{"dataserver", "DEPOT_FSYNC=sometimes", nil, []string{`DEPOT_FSYNC="sometimes"`, "group, always, none"}},
		{"dataserver", "DEPOT_MAX_DIR_BYTES=-1", nil, []string{`DEPOT_MAX_DIR_BYTES="-1"`, "not a size"}},
		{"dataserver", "DEPOT_REPAIR_RATE=fast", nil, []string{`DEPOT_REPAIR_RATE="fast"`, "MiB/s"}},
		{"dataserver", "DEPOT_ORPHAN_GRACE=1 hour", nil, []string{`DEPOT_ORPHAN_GRACE="1 hour"`, "not a duration"}},
		{"shop", "DEPOT_SHOP_SECURE_COOKIES=yes", nil, []string{`DEPOT_SHOP_SECURE_COOKIES="yes"`, "true or false"}},
		{"shop", "DEPOT_SHOP_ROLE=pages", nil, []string{`DEPOT_SHOP_ROLE="pages"`, "all, catalog, reviews"}},
		{"bench", "", []string{"-size", "64KiB,4MB,huge"}, []string{`-size "huge"`, "not a size"}},
		{"server", "", []string{"--k", "four"}, []string{`"four"`, "-k", "whole number"}},
		{"admin", "", []string{"--nameserver", "http://127.0.0.1:1", "rebalance", "--band", "2"}, []string{`"2"`, "-band", "fraction"}},
		// A malformed variable is refused even when a flag overrides it.
		{"server", "DEPOT_REPAIR_AFTER=10", []string{"--repair-after", "5m"}, []string{`DEPOT_REPAIR_AFTER="10"`}},
	} {
		name := tc.cmd + " " + tc.env + strings.Join(tc.args, " ")
		t.Run(name, func(t *testing.T) {
			if tc.env != "" {
				k, v, _ := strings.Cut(tc.env, "=")
				t.Setenv(k, v)
			}
			dir := t.TempDir()
			t.Setenv("DEPOT_DIR", dir)
			err := quietFlags(t, func() error { return run[tc.cmd](context.Background(), tc.args) })
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("the refused command wrote %d files in its directory first", len(ents))
			}
		})
	}
}

// quietFlags runs fn with stderr, where the flag package prints usage on
// a bad flag, sent to a pipe that is drained and dropped.
func quietFlags(t *testing.T, fn func() error) error {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, r); close(done) }()
	saved := os.Stderr
	os.Stderr = w
	defer func() { os.Stderr = saved; w.Close(); <-done; r.Close() }()
	return fn()
}

// TestSettings_GoodValues checks that values with units reach the
// settings, that the environment gives what the command line does not,
// and that the command line wins.
func TestSettings_GoodValues(t *testing.T) {
	t.Setenv("DEPOT_RATE_PER_IP", "200/s")
	t.Setenv("DEPOT_MAX_OBJECT_SIZE", "5GiB")
	t.Setenv("DEPOT_READ_HEADER_TIMEOUT", "3s")
	t.Setenv("DEPOT_RATE_BURST", "10")
	t.Setenv("DEPOT_MAX_CONNS", "")
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var l gatewayLimits
	l.register(fs)
	mem := sizeFlag(fs, "memory-limit", "DEPOT_MEMORY_LIMIT", 400<<20, "")
	var level string
	enumVar(fs, &level, "log-level", "DEPOT_LOG_LEVEL", "info", logLevels, "")
	t.Setenv("DEPOT_LOG_LEVEL", "WARN")
	if err := parseFlags(fs, []string{"--rate-per-key", "3000/m", "--rate-burst", "20", "--memory-limit", "1.5GiB"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"rate-per-ip", l.perIP, 200.0},
		{"rate-per-key", l.perKey, 50.0},
		{"max-object-size", l.maxObject, int64(5 << 30)},
		{"read-header-timeout", l.readHeader, 3 * time.Second},
		{"rate-burst (flag over env)", l.burst, 20},
		{"max-conns (empty env: default)", l.maxConns, 4096},
		{"memory-limit", *mem, int64(3 << 29)},
		{"log-level", level, "warn"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.PrintDefaults()
	if !strings.Contains(out.String(), "(default 5GiB)") {
		t.Errorf("-h does not show the size default as 5GiB:\n%s", out.String())
	}
}

// TestProcess_BadSettingExits runs the built binary with a malformed
// environment variable: it exits 1 at once with the message.
func TestProcess_BadSettingExits(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(depotBin, "nameserver", "--dir", dir)
	cmd.Env = append(os.Environ(), "DEPOT_REPAIR_AFTER=10")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1; stderr:\n%s", err, stderr.String())
	}
	want := `depot nameserver: DEPOT_REPAIR_AFTER="10": not a duration (e.g. 90s, 10m)`
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

// TestProcess_HelpAndVersion: help goes to stdout with status 0, and
// version prints the stamped version.
func TestProcess_HelpAndVersion(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "help"} {
		out, err := exec.Command(depotBin, arg).Output()
		if err != nil || !strings.Contains(string(out), "usage: depot <command>") {
			t.Errorf("depot %s: %v, stdout %q", arg, err, out)
		}
	}
	if err := exec.Command(depotBin).Run(); err == nil {
		t.Error("depot with no command exits 0")
	}
	out, err := exec.Command(depotBin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "depot dev") || !strings.Contains(string(out), "go1.") {
		t.Errorf("depot version: %v, %q", err, out)
	}
}

// TestProcess_NoKeyIsNotMadeUp: admin with a wrong --dir and a
// dataserver without the cluster key say so, and write no cluster.key.
func TestProcess_NoKeyIsNotMadeUp(t *testing.T) {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "DEPOT_") {
			env = append(env, e)
		}
	}
	for _, tc := range []struct {
		name string
		args func(dir string) []string
	}{
		{"admin", func(dir string) []string {
			return []string{"admin", "--nameserver", "http://127.0.0.1:1", "--dir", dir, "user", "ls"}
		}},
		{"dataserver", func(dir string) []string {
			return []string{"dataserver", "--dir", dir, "--join", "127.0.0.1:1", "--addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(depotBin, tc.args(dir)...)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("succeeded: %s", out)
			}
			if want := "no cluster key in " + dir; !strings.Contains(string(out), want) {
				t.Errorf("output %q does not say %q", out, want)
			}
			if _, err := os.Stat(filepath.Join(dir, "cluster.key")); err == nil {
				t.Error("wrote a cluster.key")
			}
		})
	}
}

// checkBuildInfo checks that the /metrics at endpoint names depot's
// version and Go's.
func checkBuildInfo(t *testing.T, endpoint string) {
	t.Helper()
	resp, err := http.Get(endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`depot_build_info{goversion=%q,version="dev"} 1`, runtime.Version())
	if !strings.Contains(string(b), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
