package deploy

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// unit is a parsed systemd unit: section → key → values (keys repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not key=value in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestSystemdUnits checks that every role has a hardened unit whose settings
// cmd/depot understands, and has systemd verify it where it is installed.
func TestSystemdUnits(t *testing.T) {
	env := knownEnv(t)
	for _, role := range []string{"nameserver", "dataserver", "gateway"} {
		path := filepath.Join("systemd", "depot-"+role+".service")
		u := parseUnit(t, path)
		for _, s := range []string{"Unit", "Service", "Install"} {
			if u[s] == nil {
				t.Errorf("%s: no [%s]", path, s)
			}
		}
		if got := u.get("Service", "ExecStart"); got != "/usr/local/bin/depot "+role {
			t.Errorf("%s: ExecStart=%q", path, got)
		}
		want := map[string]string{
			"User": "depot", "Group": "depot", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
			"ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
			"RestrictSUIDSGID": "yes", "Restart": "on-failure",
		}
		for k, v := range want {
			if _, ok := u["Service"][k]; !ok || u.get("Service", k) != v {
				t.Errorf("%s: want %s=%s, have %q", path, k, v, u["Service"][k])
			}
		}
		if n, err := strconv.Atoi(u.get("Service", "LimitNOFILE")); err != nil || n < 65536 {
			t.Errorf("%s: LimitNOFILE=%q, want at least 65536", path, u.get("Service", "LimitNOFILE"))
		}
		for _, k := range []string{"MemoryMax", "TasksMax", "SystemCallFilter", "RestrictAddressFamilies"} {
			if u.get("Service", k) == "" {
				t.Errorf("%s: no %s", path, k)
			}
		}
		if u.get("Service", "StateDirectory") == "" && u.get("Service", "ReadWritePaths") == "" && role != "gateway" {
			t.Errorf("%s: ProtectSystem=strict but nowhere to write", path)
		}
		for _, e := range u["Service"]["Environment"] {
			name, _, _ := strings.Cut(e, "=")
			if !env[name] {
				t.Errorf("%s: Environment=%s: cmd/depot does not read %s", path, e, name)
			}
		}
		checkEnvFile(t, filepath.Join("systemd", role+".env.example"), env)
		verifyUnit(t, path)
	}
	checkEnvFile(t, filepath.Join("systemd", "depot.env.example"), env)
}

func checkEnvFile(t *testing.T, path string, env map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, ok := strings.Cut(line, "=")
		if !ok || !env[name] {
			t.Errorf("%s: %q: not a setting cmd/depot reads", path, line)
		}
	}
}

// verifyUnit runs systemd-analyze verify and security on a unit, when the
// machine has systemd-analyze. The binary is not installed here, so that
// one complaint is expected.
func verifyUnit(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Logf("systemd-analyze not installed: %s not verified by systemd", path)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "systemd-analyze", "verify", "./"+path).CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.Contains(line, "/usr/local/bin/depot is not executable") {
			t.Errorf("systemd-analyze verify %s: %s", path, line)
		}
	}
	out, err := exec.CommandContext(ctx, "systemd-analyze", "security", "--offline=yes", "./"+path).CombinedOutput()
	if err != nil {
		t.Logf("systemd-analyze security %s: %v (older systemd?)", path, err)
		return
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Errorf("systemd-analyze security %s: no exposure level in\n%s", path, out)
		return
	}
	if lvl, _ := strconv.ParseFloat(string(m[1]), 64); lvl > 2.0 {
		t.Errorf("%s: systemd exposure level %.1f, want 2.0 or less", path, lvl)
	}
}

// composeFile is the part of compose.yaml the test checks.
type composeFile struct {
	Services map[string]struct {
		Image       string            `json:"image"`
		Command     []string          `json:"command"`
		Restart     string            `json:"restart"`
		Environment map[string]string `json:"environment"`
		Volumes     []string          `json:"volumes"`
		Healthcheck struct {
			Test []string `json:"test"`
		} `json:"healthcheck"`
		Profiles  []string `json:"profiles"`
		DependsOn map[string]struct {
			Condition string `json:"condition"`
		} `json:"depends_on"`
	} `json:"services"`
	Volumes map[string]any `json:"volumes"`
}

// TestComposeFile checks compose.yaml without Docker: every role, every
// setting a known environment variable, health checks through depot
// itself, restart policies, and a named volume of its own for each
// stateful service.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	env := knownEnv(t)
	roles := map[string]int{}
	racks := map[string]int{}
	usedVolumes := map[string]string{}
	// The one-shot service that makes the cluster's certificates.
	certHosts := map[string]bool{}
	for name, s := range f.Services {
		if len(s.Command) >= 2 && s.Command[0] == "admin" && s.Command[1] == "certs" {
			cmd := strings.Join(s.Command, " ")
			if !strings.Contains(cmd, "--if-missing") || s.Restart != "on-failure" {
				t.Errorf("%s: %q (restart %q) must keep an existing CA (--if-missing) and run once", name, cmd, s.Restart)
			}
			for i, a := range s.Command {
				if a == "--hosts" && i+1 < len(s.Command) {
					for _, h := range strings.Split(s.Command[i+1], ",") {
						certHosts[h] = true
					}
				}
			}
			delete(f.Services, name)
		}
	}
	if len(certHosts) == 0 {
		t.Fatal("no certs service: the compose file must run mutual TLS between the roles")
	}
	for name, s := range f.Services {
		if len(s.Command) == 0 {
			t.Errorf("%s: no command", name)
			continue
		}
		role := s.Command[0]
		// Mutual TLS: a certificate of its own from the certs service,
		// started after it.
		if !certHosts[name] || s.Environment["DEPOT_CERT_FILE"] != "/certs/node-"+name+".pem" ||
			s.Environment["DEPOT_CERT_KEY_FILE"] != "/certs/node-"+name+"-key.pem" || s.Environment["DEPOT_CA_FILE"] != "/certs/ca.pem" {
			t.Errorf("%s: no certificate of its own (certs --hosts %v, env %v)", name, certHosts, s.Environment)
		}
		if s.DependsOn["certs"].Condition != "service_completed_successfully" {
			t.Errorf("%s: does not start after the certs service", name)
		}
		if u := s.Environment["DEPOT_NAMESERVER"]; u != "" && strings.Contains(u, "http://") {
			t.Errorf("%s: DEPOT_NAMESERVER %q is plain HTTP", name, u)
		}
		if len(s.Profiles) == 0 {
			roles[role]++
		}
		if !strings.Contains(s.Image, "depot") || s.Restart == "" || s.Restart == "no" {
			t.Errorf("%s: image %q, restart %q", name, s.Image, s.Restart)
		}
		hc := strings.Join(s.Healthcheck.Test, " ")
		scheme := "https" // the internal listeners are TLS
		if role == "gateway" {
			scheme = "http" // the public S3 listener
		}
		if !strings.HasPrefix(hc, "CMD /usr/local/bin/depot healthcheck --url "+scheme+"://127.0.0.1:") {
			t.Errorf("%s: health check %q does not use depot healthcheck over %s", name, hc, scheme)
		}
		for k := range s.Environment {
			if !env[k] {
				t.Errorf("%s: environment %s is not read by cmd/depot", name, k)
			}
		}
		for _, k := range []string{"DEPOT_CLUSTER_KEY", "DEPOT_ADDR", "DEPOT_ADVERTISE_ADDR", "DEPOT_GOSSIP_ADDR", "DEPOT_GOSSIP_ADVERTISE", "DEPOT_ID"} {
			if s.Environment[k] == "" {
				t.Errorf("%s: no %s", name, k)
			}
		}
		if role == "dataserver" && len(s.Profiles) == 0 {
			racks[s.Environment["DEPOT_RACK"]]++
		}
		if role == "nameserver" || role == "dataserver" {
			if len(s.Volumes) == 0 {
				t.Errorf("%s: no volume", name)
			}
			for _, v := range s.Volumes {
				if v == "certs:/certs:ro" {
					continue // shared, read-only
				}
				vol, _, _ := strings.Cut(v, ":")
				if _, ok := f.Volumes[vol]; !ok {
					t.Errorf("%s: volume %q is not a named volume", name, vol)
				}
				if other, ok := usedVolumes[vol]; ok {
					t.Errorf("%s and %s share volume %s", name, other, vol)
				}
				usedVolumes[vol] = name
			}
		}
	}
	if roles["nameserver"] != 3 || roles["dataserver"] != 6 || roles["gateway"] != 2 {
		t.Errorf("roles %v; want 3 nameservers (a raft group), 6 dataservers, 2 gateways", roles)
	}
	if len(racks) != 2 {
		t.Errorf("dataservers by rack %v; want two racks", racks)
	}
	for rack, n := range racks {
		if n != 3 {
			t.Errorf("rack %s has %d dataservers, want 3", rack, n)
		}
	}
}
