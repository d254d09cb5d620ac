package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"depot/client"
	"depot/dataserver"
	"depot/gateway"
	"depot/gateway/s3"
	"depot/internal/membership"
	"depot/internal/node"
	"depot/nameserver"
	"depot/repair"
)

// roleFlags are the flags every role shares.
type roleFlags struct {
	addr, gossipAddr, advertise, keyFile, logLevel, timing string
	advertiseHTTP                                          string
	join                                                   stringList
	tls                                                    clusterTLSFlags
	metricsTokenFile                                       string
}

func (r *roleFlags) register(fs *flag.FlagSet, defAddr, defGossip string) {
	fs.StringVar(&r.addr, "addr", envOr("DEPOT_ADDR", defAddr), "HTTP listen address (env DEPOT_ADDR)")
	fs.StringVar(&r.gossipAddr, "gossip-addr", envOr("DEPOT_GOSSIP_ADDR", defGossip), "gossip listen address, TCP and UDP (env DEPOT_GOSSIP_ADDR)")
	fs.StringVar(&r.advertise, "gossip-advertise", envOr("DEPOT_GOSSIP_ADVERTISE", ""), "gossip address announced to others, when it differs (env DEPOT_GOSSIP_ADVERTISE)")
	fs.StringVar(&r.advertiseHTTP, "advertise-addr", envOr("DEPOT_ADVERTISE_ADDR", ""), "HTTP host:port announced to others, when it differs from --addr (env DEPOT_ADVERTISE_ADDR)")
	fs.Var(&r.join, "join", "gossip address of a member to join (repeatable; env DEPOT_JOIN, comma-separated)")
	fs.StringVar(&r.keyFile, "cluster-key-file", envOr("DEPOT_CLUSTER_KEY_FILE", ""), "file with the base64 cluster key (or env DEPOT_CLUSTER_KEY)")
	enumVar(fs, &r.logLevel, "log-level", "DEPOT_LOG_LEVEL", "info", logLevels, "log level: debug, info, warn or error (env DEPOT_LOG_LEVEL)")
	enumVar(fs, &r.timing, "gossip-timing", "DEPOT_GOSSIP_TIMING", "lan", []string{"lan", "local", "test"}, "failure-detector preset: lan, local, test (test also shortens the repair, delete, scrub and volume-cache intervals, for process tests)")
	fs.StringVar(&r.metricsTokenFile, "metrics-token-file", envOr("DEPOT_METRICS_TOKEN_FILE", ""), "file with a bearer token that /metrics then requires (or env DEPOT_METRICS_TOKEN); default: /metrics is open")
	r.tls.register(fs)
}

// metricsToken returns the /metrics bearer token, "" when none is set.
func (r *roleFlags) metricsToken() (string, error) {
	return secretFromEnvOrFile("DEPOT_METRICS_TOKEN", r.metricsTokenFile)
}

// gossip returns the gossip settings; dir is where the cluster key may be
// kept, and createKey lets a nameserver write a new one there.
func (r *roleFlags) gossip(dir string, createKey bool) (node.Gossip, error) {
	key, err := loadKey(r.keyFile, dir, createKey)
	if err != nil {
		return node.Gossip{}, err
	}
	join := []string(r.join)
	if len(join) == 0 {
		if v := os.Getenv("DEPOT_JOIN"); v != "" {
			join = splitComma(v)
		}
	}
	timing := membership.TimingLAN
	switch r.timing {
	case "local":
		timing = membership.TimingLocal
	case "test":
		timing = membership.TimingTest
	case "lan", "":
	default:
		return node.Gossip{}, fmt.Errorf("unknown gossip timing %q", r.timing)
	}
	tc, err := r.tls.load()
	if err != nil {
		return node.Gossip{}, err
	}
	return node.Gossip{Key: key, BindAddr: r.gossipAddr, AdvertiseAddr: r.advertise, AdvertiseHTTP: r.advertiseHTTP, Join: join,
		Timing: timing, Logger: newLogger(r.logLevel), TLS: tc}, nil
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// printReady prints the line that scripts and tests wait for.
func printReady(role, httpAddr, gossipAddr string) {
	fmt.Printf("ready role=%s http=%s gossip=%s\n", role, httpAddr, gossipAddr)
}

func runNameserver(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("nameserver", flag.ContinueOnError)
	var rf roleFlags
	rf.register(fs, "0.0.0.0:9330", "0.0.0.0:7946")
	dir := fs.String("dir", envOr("DEPOT_DIR", "./depot-nameserver"), "database directory (env DEPOT_DIR)")
	id := fs.String("id", envOr("DEPOT_ID", "ns1"), "node id (env DEPOT_ID)")
	k := countFlag(fs, "k", "", 4, "default data shards")
	m := countFlag(fs, "m", "", 2, "default parity shards")
	repairAfter := durationFlag(fs, "repair-after", "DEPOT_REPAIR_AFTER", 10*time.Minute, "rebuild a dataserver's shards elsewhere once it is down this long (env DEPOT_REPAIR_AFTER)")
	rebalanceEvery := durationFlag(fs, "rebalance-interval", "DEPOT_REBALANCE_INTERVAL", nameserver.DefaultRebalanceInterval, "rebalance on its own when the spread of bytes leaves the band, checked this often; 0: only by depot admin rebalance (env DEPOT_REBALANCE_INTERVAL)")
	deleteGrace := durationFlag(fs, "delete-grace", "DEPOT_DELETE_GRACE", 0, "how long a deleted or overwritten segment's needles stay on the dataservers before they are deleted; a restore from a backup older than this may miss the data of objects deleted or overwritten since (0: the default, 1m, or 1s with test gossip timing; env DEPOT_DELETE_GRACE)")
	adminKeyFile := fs.String("admin-key-file", envOr("DEPOT_ADMIN_KEY_FILE", ""), "file with the base64 admin key that user management, rebalance, drain and /ui then need (or env DEPOT_ADMIN_KEY); default: the cluster key")
	raftAddr := fs.String("raft-addr", envOr("DEPOT_RAFT_ADDR", ""), "raft listen address; set (or --peers) to run in a raft group of nameservers under --id (env DEPOT_RAFT_ADDR)")
	raftAdvertise := fs.String("raft-advertise", envOr("DEPOT_RAFT_ADVERTISE", ""), "raft address announced to the others, when it differs from --raft-addr (env DEPOT_RAFT_ADVERTISE)")
	peers := fs.String("peers", envOr("DEPOT_PEERS", ""), "initial raft group, id=host:port comma-separated, this nameserver included (the same on every member); empty with --raft-addr: wait for depot admin nameserver add (env DEPOT_PEERS)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	adminKey, err := loadAdminKey(*adminKeyFile)
	if err != nil {
		return err
	}
	metricsToken, err := rf.metricsToken()
	if err != nil {
		return err
	}
	g, err := rf.gossip(keyDir(rf.keyFile, *dir), true)
	if err != nil {
		return err
	}
	cfg := nameserver.DefaultConfig()
	cfg.Dir, cfg.Addr, cfg.DefaultK, cfg.DefaultM, cfg.Logger = *dir, rf.addr, *k, *m, g.Logger
	if rf.timing == "test" {
		// The same short intervals as the in-process test cluster
		// (node.StartLocal with TimingTest), so that process tests (the
		// chaos suite) see repair and deletes within seconds.
		cfg.SyncInterval, cfg.ShutdownTimeout = 50*time.Millisecond, 2*time.Second
		cfg.RepairInterval, cfg.DeleteGrace = 200*time.Millisecond, time.Second
	}
	if *deleteGrace > 0 {
		cfg.DeleteGrace = *deleteGrace
	}
	cfg.RepairAfter = *repairAfter
	cfg.RebalanceInterval = *rebalanceEvery
	cfg.AdminKey, cfg.MetricsToken = adminKey, metricsToken
	if *raftAddr != "" || *peers != "" {
		cfg.Raft = nameserver.DefaultRaftConfig()
		cfg.Raft.ID, cfg.Raft.Advertise, cfg.Raft.AdvertiseHTTP = *id, *raftAdvertise, rf.advertiseHTTP
		if *raftAddr != "" {
			cfg.Raft.Addr = *raftAddr
		}
		if cfg.Raft.Peers, err = parsePeers(*peers); err != nil {
			return err
		}
	}
	ns, err := node.StartNameserver(ctx, g, cfg, *id)
	if err != nil {
		return err
	}
	defer reloadOnSIGHUP(ctx, g.Logger, internalReload(g))()
	registerBuildInfo(ns.Server.Registry())
	printReady("nameserver", ns.Server.Addr(), ns.Gossip.GossipAddr())
	<-ctx.Done()
	return ns.Close()
}

// keyDir returns where a role keeps a generated cluster key: nowhere when
// the key comes from a file or the environment.
func keyDir(keyFile, dir string) string {
	if keyFile != "" || os.Getenv("DEPOT_CLUSTER_KEY") != "" {
		return ""
	}
	return dir
}

func runDataserver(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dataserver", flag.ContinueOnError)
	var rf roleFlags
	rf.register(fs, "0.0.0.0:9331", "0.0.0.0:7947")
	var dirs stringList
	fs.Var(&dirs, "dir", "data directory, one per disk (repeatable; env DEPOT_DIR, comma-separated)")
	id := fs.String("id", envOr("DEPOT_ID", ""), "node id, unique in the cluster (env DEPOT_ID; default the host name)")
	rack := fs.String("rack", envOr("DEPOT_RACK", ""), "rack (failure domain) of this machine (env DEPOT_RACK)")
	fsync := enumFlag(fs, "fsync", "DEPOT_FSYNC", string(dataserver.FsyncGroup), fsyncPolicies, "fsync policy: group, always, none (env DEPOT_FSYNC)")
	repairRate := bandwidthFlag(fs, "repair-rate", "DEPOT_REPAIR_RATE", 100, "bound on repair writes in MiB/s (or a size per second, e.g. 1GB/s), 0 for none (env DEPOT_REPAIR_RATE)")
	maxDirBytes := sizeFlag(fs, "max-dir-bytes", "DEPOT_MAX_DIR_BYTES", 0, "cap on the bytes kept in each data directory, in bytes or with a unit (e.g. 500GiB), 0 for none: past it the directory is full, as a full disk (env DEPOT_MAX_DIR_BYTES)")
	orphanGrace := durationFlag(fs, "orphan-grace", "DEPOT_ORPHAN_GRACE", repair.DefaultOrphanGrace, "how old an uncommitted S3 segment must be before the orphan sweep reclaims it (env DEPOT_ORPHAN_GRACE)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(dirs) == 0 {
		dirs = splitComma(envOr("DEPOT_DIR", "./depot-dataserver"))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if *id == "" {
		h, err := os.Hostname()
		if err != nil {
			return errors.New("--id is required")
		}
		*id = h
	}
	g, err := rf.gossip(keyDir(rf.keyFile, dirs[0]), false)
	if err != nil {
		return err
	}
	if len(g.Join) == 0 {
		return errors.New("a dataserver needs --join (the gossip address of the nameserver or any member)")
	}
	cfg := dataserver.DefaultConfig()
	cfg.ID, cfg.Dirs, cfg.Addr, cfg.Fsync, cfg.Logger = *id, dirs, rf.addr, dataserver.FsyncPolicy(*fsync), g.Logger
	cfg.MaxDirBytes = *maxDirBytes
	if cfg.MetricsToken, err = rf.metricsToken(); err != nil {
		return err
	}
	rc := repair.Config{Rate: *repairRate * (1 << 20), OrphanGrace: *orphanGrace}
	if rf.timing == "test" {
		// Short intervals, as node.StartLocal gives the in-process test
		// cluster; MoveSettle covers the gateways' test VolumeTTL twice.
		rc.Interval, rc.AntiEntropyInterval, rc.MoveSettle = 200*time.Millisecond, 2*time.Second, 2*testVolumeTTL
		// Scrubs find injected corruption within seconds, at a rate that
		// leaves two cores to a dozen processes.
		rc.ScrubInterval, rc.ScrubRate = 2*time.Second, 16<<20
	}
	ds, err := node.StartDataserver(ctx, g, cfg, *rack, rc)
	if err != nil {
		return err
	}
	defer reloadOnSIGHUP(ctx, g.Logger, internalReload(g))()
	registerBuildInfo(ds.Server.Registry())
	printReady("dataserver", ds.Server.Addr(), ds.Gossip.GossipAddr())
	<-ctx.Done()
	return ds.Close()
}

func runGateway(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	var rf roleFlags
	rf.register(fs, "0.0.0.0:9000", "0.0.0.0:7948")
	id := fs.String("id", envOr("DEPOT_ID", ""), "node id (env DEPOT_ID; default gw-<host name>)")
	ns := fs.String("nameserver", envOr("DEPOT_NAMESERVER", ""), "nameserver URL, or the URLs of a raft group comma-separated (env DEPOT_NAMESERVER; default: found through gossip)")
	k := countFlag(fs, "k", "", 4, "data shards of new writes")
	m := countFlag(fs, "m", "", 2, "parity shards of new writes")
	domain := fs.String("domain", envOr("DEPOT_DOMAIN", ""), "S3 domain for virtual-hosted-style requests: a Host of <bucket>.<domain> names the bucket (env DEPOT_DOMAIN)")
	var pub publicTLSFlags
	pub.register(fs)
	var sf sseFlags
	sf.register(fs, false)
	var limits gatewayLimits
	limits.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sseKeys, err := loadSSEKeys(sf.keyFile, "")
	if err != nil {
		return err
	}
	cert, err := pub.load()
	if err != nil {
		return err
	}
	metricsToken, err := rf.metricsToken()
	if err != nil {
		return err
	}
	user, pass := os.Getenv("DEPOT_ROOT_USER"), os.Getenv("DEPOT_ROOT_PASSWORD")
	if user == "" || pass == "" {
		return errors.New("set DEPOT_ROOT_USER and DEPOT_ROOT_PASSWORD")
	}
	if *id == "" {
		h, _ := os.Hostname()
		*id = "gw-" + h
	}
	g, err := rf.gossip("", false)
	if err != nil {
		return err
	}
	if sseKeys == nil {
		g.Logger.Warn("no SSE-S3 master key (--sse-master-key-file or DEPOT_SSE_MASTER_KEY): SSE-S3 is off")
	}
	if len(g.Join) == 0 && *ns == "" {
		return errors.New("a gateway needs --join or --nameserver")
	}
	gwc := gateway.Config{Addr: rf.addr, RootUser: user, RootPassword: pass, S3: s3.Config{Domain: *domain,
		Keyring: sseKeys, SSECOverHTTP: sf.cOverHTTP}, TLS: cert, MetricsToken: metricsToken}
	limits.apply(&gwc)
	cc := client.Config{K: *k, M: *m}
	if rf.timing == "test" {
		cc.VolumeTTL = testVolumeTTL
	}
	gw, err := node.StartGateway(ctx, g, node.GatewayConfig{
		ID:         *id,
		Gateway:    gwc,
		Client:     cc,
		Nameserver: *ns,
	})
	if err != nil {
		return err
	}
	defer reloadOnSIGHUP(ctx, g.Logger, func() error { return errors.Join(gw.Server.Reload(), internalReload(g)()) })()
	registerBuildInfo(gw.Server.Registry())
	printReady("gateway", gw.Server.Addr(), gw.Gossip.GossipAddr())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return gw.Close(sctx)
}

// testVolumeTTL is the gateways' VolumeTTL with --gossip-timing test, as
// in node.StartLocal.
const testVolumeTTL = time.Second

// parsePeers parses "id=host:port,id=host:port".
func parsePeers(s string) ([]nameserver.Peer, error) {
	var out []nameserver.Peer
	for _, p := range splitComma(s) {
		id, addr, ok := strings.Cut(p, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("--peers: %q is not id=host:port", p)
		}
		out = append(out, nameserver.Peer{ID: id, Addr: addr})
	}
	return out, nil
}
