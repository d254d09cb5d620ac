package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"depot/dataserver"
	"depot/gateway"
	"depot/gateway/s3/sse"
	"depot/internal/auth"
	"depot/internal/node"
	"depot/nameserver"
	"depot/repair"
)

// credentials are the root access key and secret.
type credentials struct {
	User     string `json:"access_key"`
	Password string `json:"secret_key"`
}

// loadCredentials takes the root credentials from DEPOT_ROOT_USER and
// DEPOT_ROOT_PASSWORD, or from dir/credentials.json, generating and keeping
// them there on first use.
func loadCredentials(dir string) (credentials, error) {
	u, p := os.Getenv("DEPOT_ROOT_USER"), os.Getenv("DEPOT_ROOT_PASSWORD")
	if u != "" && p != "" {
		return credentials{u, p}, nil
	}
	if u != "" || p != "" {
		return credentials{}, errors.New("set both DEPOT_ROOT_USER and DEPOT_ROOT_PASSWORD, or neither")
	}
	path := filepath.Join(dir, "credentials.json")
	b, err := os.ReadFile(path)
	if err == nil {
		var c credentials
		if err := json.Unmarshal(b, &c); err != nil || c.User == "" || c.Password == "" {
			return credentials{}, fmt.Errorf("%s: unreadable credentials", path)
		}
		return c, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return credentials{}, err
	}
	c := credentials{User: "DEPOT" + randomText(16, upperAlnum), Password: randomText(40, alnum)}
	b, _ = json.MarshalIndent(c, "", "  ")
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return credentials{}, err
	}
	return c, nil
}

const (
	upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	alnum      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

func randomText(n int, alphabet string) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// errNoClusterKey is returned by loadKey when a directory holds no
// cluster key and may not make one.
var errNoClusterKey = errors.New("no cluster key")

// loadKey reads the cluster key from DEPOT_CLUSTER_KEY, from file, or from
// dir/cluster.key when dir is set. Only the roles that found a cluster
// (server and nameserver) pass create, which writes a new key there when
// there is none: any other process that made up a key of its own could
// only fail later, on every request, with a signature mismatch.
func loadKey(file, dir string, create bool) (auth.Key, error) {
	if v := os.Getenv("DEPOT_CLUSTER_KEY"); v != "" {
		k, err := auth.ParseKey(v)
		if err != nil {
			return nil, fmt.Errorf("DEPOT_CLUSTER_KEY: %w", err)
		}
		return k, nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--cluster-key-file: %w", err)
		}
		k, err := auth.ParseKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("--cluster-key-file %s: %w", file, err)
		}
		return k, nil
	}
	if dir == "" {
		return nil, fmt.Errorf("%w: set DEPOT_CLUSTER_KEY or --cluster-key-file", errNoClusterKey)
	}
	path := filepath.Join(dir, "cluster.key")
	if create {
		return auth.LoadOrCreateKeyFile(path)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: set DEPOT_CLUSTER_KEY or --cluster-key-file", errNoClusterKey, dir)
	}
	if err != nil {
		return nil, err
	}
	k, err := auth.ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// sseKeyFile is where depot server keeps the SSE-S3 master keys it
// generated, in its data directory.
const sseKeyFile = "sse-master.keys"

// loadSSEKeys reads the SSE-S3 master keys (keyring text, see package sse)
// from DEPOT_SSE_MASTER_KEY, from file, or from (creating it)
// dir/sse-master.keys when dir is set. It returns nil when there is none.
func loadSSEKeys(file, dir string) (*sse.Keyring, error) {
	if v := os.Getenv("DEPOT_SSE_MASTER_KEY"); v != "" {
		k, err := sse.ParseKeyring(v)
		if err != nil {
			return nil, fmt.Errorf("DEPOT_SSE_MASTER_KEY: %w", err)
		}
		return k, nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		k, err := sse.ParseKeyring(string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return k, nil
	}
	if dir == "" {
		return nil, nil
	}
	return sse.LoadOrCreateKeyringFile(filepath.Join(dir, sseKeyFile))
}

// sseFlags are the encryption flags of the roles that serve S3.
type sseFlags struct {
	keyFile   string
	cOverHTTP bool
}

func (f *sseFlags) register(fs *flag.FlagSet, generated bool) {
	where := "SSE-S3 is off without one"
	if generated {
		where = "default: generated in the data directory as " + sseKeyFile
	}
	fs.StringVar(&f.keyFile, "sse-master-key-file", envOr("DEPOT_SSE_MASTER_KEY_FILE", ""),
		"file with the SSE-S3 master keys, one [id:]key (base64 or hex, 32 bytes) a line, the last one active (or env DEPOT_SSE_MASTER_KEY, entries separated by commas; "+where+")")
	boolVar(fs, &f.cOverHTTP, "sse-c-over-http", "DEPOT_SSE_C_OVER_HTTP", false,
		"accept SSE-C keys on plain-HTTP requests, which S3 refuses (env DEPOT_SSE_C_OVER_HTTP=1)")
}

// setMemoryLimit applies a soft memory limit of n bytes (0: none) unless
// GOMEMLIMIT is set.
func setMemoryLimit(n int64) {
	if os.Getenv("GOMEMLIMIT") == "" && n > 0 {
		debug.SetMemoryLimit(n)
	}
}

// newLogger logs to stderr at level, one of logLevels (enumVar has
// refused any other word).
func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		panic(fmt.Sprintf("log level %q passed the flag's check", level))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func runServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	dir := fs.String("dir", envOr("DEPOT_DIR", "./depot-data"), "data directory (env DEPOT_DIR)")
	addr := fs.String("addr", envOr("DEPOT_ADDR", gateway.DefaultAddr), "gateway listen address (env DEPOT_ADDR)")
	dataservers := countFlag(fs, "dataservers", "", 6, "number of dataservers")
	k := countFlag(fs, "k", "", 4, "data shards per stripe")
	m := countFlag(fs, "m", "", 2, "parity shards per stripe")
	fsync := enumFlag(fs, "fsync", "DEPOT_FSYNC", string(dataserver.FsyncGroup), fsyncPolicies, "fsync policy: group, always, none (env DEPOT_FSYNC)")
	logLevel := enumFlag(fs, "log-level", "DEPOT_LOG_LEVEL", "warn", logLevels, "log level: debug, info, warn or error (env DEPOT_LOG_LEVEL)")
	memLimit := sizeFlag(fs, "memory-limit", "DEPOT_MEMORY_LIMIT", 400<<20, "soft limit on the Go heap of the whole process, in bytes or with a unit (e.g. 1.5GiB); the garbage collector works harder near it (env DEPOT_MEMORY_LIMIT; GOMEMLIMIT wins when set; 0 for none)")
	repairAfter := durationFlag(fs, "repair-after", "DEPOT_REPAIR_AFTER", 10*time.Minute, "rebuild a dataserver's shards elsewhere once it is down this long (env DEPOT_REPAIR_AFTER)")
	repairRate := bandwidthFlag(fs, "repair-rate", "DEPOT_REPAIR_RATE", 100, "bound on repair writes in MiB/s (or a size per second, e.g. 1GB/s), 0 for none (env DEPOT_REPAIR_RATE)")
	rebalanceEvery := durationFlag(fs, "rebalance-interval", "DEPOT_REBALANCE_INTERVAL", nameserver.DefaultRebalanceInterval, "rebalance on its own when the spread of bytes leaves the band, checked this often; 0: only by depot admin rebalance (env DEPOT_REBALANCE_INTERVAL)")
	domain := fs.String("domain", envOr("DEPOT_DOMAIN", ""), "S3 domain for virtual-hosted-style requests: a Host of <bucket>.<domain> names the bucket (env DEPOT_DOMAIN)")
	debugAddr := fs.String("debug-addr", envOr("DEPOT_DEBUG_ADDR", ""), "serve Go's pprof profiles on this address, e.g. 127.0.0.1:6060 (env DEPOT_DEBUG_ADDR)")
	var pub publicTLSFlags
	pub.register(fs)
	var internal clusterTLSFlags
	internal.register(fs)
	adminKeyFile := fs.String("admin-key-file", envOr("DEPOT_ADMIN_KEY_FILE", ""), "file with the base64 admin key that user management, rebalance, drain and /ui then need (or env DEPOT_ADMIN_KEY); default: the cluster key")
	metricsTokenFile := fs.String("metrics-token-file", envOr("DEPOT_METRICS_TOKEN_FILE", ""), "file with a bearer token that every /metrics then requires (or env DEPOT_METRICS_TOKEN); default: /metrics is open")
	var sf sseFlags
	sf.register(fs, true)
	var limits gatewayLimits
	limits.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cert, err := pub.load()
	if err != nil {
		return err
	}
	tc, err := internal.load()
	if err != nil {
		return err
	}
	adminKey, err := loadAdminKey(*adminKeyFile)
	if err != nil {
		return err
	}
	metricsToken, err := secretFromEnvOrFile("DEPOT_METRICS_TOKEN", *metricsTokenFile)
	if err != nil {
		return err
	}
	setMemoryLimit(*memLimit)
	if *debugAddr != "" {
		stop, err := serveDebug(*debugAddr)
		if err != nil {
			return err
		}
		defer stop()
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	creds, err := loadCredentials(*dir)
	if err != nil {
		return err
	}
	key, err := loadKey("", *dir, true)
	if err != nil {
		return err
	}
	sseKeys, err := loadSSEKeys(sf.keyFile, *dir)
	if err != nil {
		return err
	}
	log := newLogger(*logLevel)
	var gwc gateway.Config
	limits.apply(&gwc)
	local, err := node.StartLocal(ctx, node.LocalConfig{
		Gateway: gwc,
		Dir:     *dir, Key: key, RootUser: creds.User, RootPassword: creds.Password,
		Dataservers: *dataservers, K: *k, M: *m, GatewayAddr: *addr, Domain: *domain,
		Fsync: dataserver.FsyncPolicy(*fsync), Logger: log,
		RepairAfter: *repairAfter, Repair: repair.Config{Rate: *repairRate * (1 << 20)},
		RebalanceInterval: *rebalanceEvery, SSEKeys: sseKeys, SSECOverHTTP: sf.cOverHTTP,
		GatewayTLS: cert, TLS: tc, AdminKey: adminKey, MetricsToken: metricsToken,
	})
	if err != nil {
		return err
	}
	defer reloadOnSIGHUP(ctx, log, local.Reload)()
	regs := []*prometheus.Registry{local.NS.Server.Registry(), local.GW.Server.Registry()}
	for i := range local.Dataservers() {
		if ds := local.Dataserver(i); ds != nil {
			regs = append(regs, ds.Server.Registry())
		}
	}
	registerBuildInfo(regs...)
	abs, _ := filepath.Abs(*dir)
	fmt.Printf("depot server is running: a nameserver, %d dataservers (EC %d+%d) and a gateway\n", *dataservers, *k, *m)
	fmt.Printf("  endpoint:    %s\n", local.Endpoint())
	fmt.Printf("  access key:  %s\n", creds.User)
	fmt.Printf("  secret key:  %s\n", creds.Password)
	fmt.Printf("  nameserver:  %s/status (ui: /ui)\n", local.NS.Server.URL())
	fmt.Printf("  data:        %s\n", abs)
	if sseKeys != nil {
		fmt.Printf("  sse-s3 key:  %q active of %d master keys\n", sseKeys.Active(), len(sseKeys.IDs()))
	}
	fmt.Printf("Stop it with Ctrl-C.\n")
	<-ctx.Done()
	fmt.Println("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return local.Close(sctx)
}
