package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// manifests holds every object decoded from deploy/k8s.
type manifests struct {
	statefulSets map[string]*appsv1.StatefulSet
	deployments  map[string]*appsv1.Deployment
	services     map[string]*corev1.Service
	pdbs         map[string]*policyv1.PodDisruptionBudget
	secrets      map[string]*corev1.Secret
	namespaces   map[string]*corev1.Namespace
	netpols      map[string]*networkingv1.NetworkPolicy
}

// splitDocs splits a YAML stream into its documents, dropping empty ones.
func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(b), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(d, "")) == "" {
			continue
		}
		docs = append(docs, []byte(d))
	}
	return docs
}

// strict decodes one document into v, failing on unknown or duplicate
// fields and on wrong types.
func strict(doc []byte, v any) error {
	return yaml.UnmarshalStrict(doc, v)
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{
		statefulSets: map[string]*appsv1.StatefulSet{}, deployments: map[string]*appsv1.Deployment{},
		services: map[string]*corev1.Service{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
		secrets: map[string]*corev1.Secret{}, namespaces: map[string]*corev1.Namespace{},
		netpols: map[string]*networkingv1.NetworkPolicy{},
	}
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in k8s/: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitDocs(b) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Errorf("%s #%d: %v", f, i, err)
				continue
			}
			where := fmt.Sprintf("%s #%d (%s %s)", f, i, tm.APIVersion, tm.Kind)
			var obj interface{ GetName() string }
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 StatefulSet":
				o := &appsv1.StatefulSet{}
				obj = o
				defer func() { m.statefulSets[o.Name] = o }()
			case "apps/v1 Deployment":
				o := &appsv1.Deployment{}
				obj = o
				defer func() { m.deployments[o.Name] = o }()
			case "v1 Service":
				o := &corev1.Service{}
				obj = o
				defer func() { m.services[o.Name] = o }()
			case "policy/v1 PodDisruptionBudget":
				o := &policyv1.PodDisruptionBudget{}
				obj = o
				defer func() { m.pdbs[o.Name] = o }()
			case "v1 Secret":
				o := &corev1.Secret{}
				obj = o
				defer func() { m.secrets[o.Name] = o }()
			case "v1 Namespace":
				o := &corev1.Namespace{}
				obj = o
				defer func() { m.namespaces[o.Name] = o }()
			case "networking.k8s.io/v1 NetworkPolicy":
				o := &networkingv1.NetworkPolicy{}
				obj = o
				defer func() { m.netpols[o.Name] = o }()
			case "kustomize.config.k8s.io/v1beta1 Kustomization":
				checkKustomization(t, f, doc)
				continue
			default:
				t.Errorf("%s: a kind this test does not know; add it to the test", where)
				continue
			}
			if err := strict(doc, obj); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if obj.GetName() == "" {
				t.Errorf("%s: no metadata.name", where)
			}
		}
	}
	return m
}

// checkKustomization checks that the kustomization lists every manifest
// but the example secret, and nothing else.
func checkKustomization(t *testing.T, file string, doc []byte) {
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := strict(doc, &k); err != nil {
		t.Errorf("%s: %v", file, err)
		return
	}
	files, _ := filepath.Glob("k8s/*.yaml")
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !strings.Contains(b, "example") {
			want = append(want, b)
		}
	}
	got := slices.Clone(k.Resources)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: resources %v, want %v", file, got, want)
	}
}

// knownEnv returns every DEPOT_* environment variable that cmd/depot reads.
func knownEnv(t *testing.T) map[string]bool {
	t.Helper()
	files, _ := filepath.Glob("../cmd/depot/*.go")
	known := map[string]bool{}
	re := regexp.MustCompile(`"(DEPOT_[A-Z0-9_]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			known[string(m[1])] = true
		}
	}
	if !known["DEPOT_CLUSTER_KEY"] || !known["DEPOT_ADVERTISE_ADDR"] {
		t.Fatalf("cmd/depot reads no DEPOT_CLUSTER_KEY or DEPOT_ADVERTISE_ADDR? found %v", known)
	}
	return known
}

func checkPodSpec(t *testing.T, what string, spec corev1.PodSpec, claims map[string]bool, env map[string]bool) {
	t.Helper()
	if len(spec.Containers) == 0 {
		t.Errorf("%s: no containers", what)
	}
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: pod does not require runAsNonRoot", what)
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	for name := range claims {
		volumes[name] = true
	}
	for _, c := range spec.Containers {
		w := what + "/" + c.Name
		if c.Image == "" {
			t.Errorf("%s: no image", w)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
			t.Errorf("%s: no HTTP readiness probe", w)
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil {
			t.Errorf("%s: no HTTP liveness probe", w)
		}
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if p == nil || p.HTTPGet == nil {
				continue
			}
			if p.HTTPGet.Path != "/healthz" && p.HTTPGet.Path != "/readyz" {
				t.Errorf("%s: probe path %q", w, p.HTTPGet.Path)
			}
			if !hasPort(c, p.HTTPGet.Port.String()) {
				t.Errorf("%s: probe port %s is not a container port", w, p.HTTPGet.Port.String())
			}
		}
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, okReq := c.Resources.Requests[res]
			lim, okLim := c.Resources.Limits[res]
			if !okReq || !okLim {
				t.Errorf("%s: %s request or limit missing", w, res)
				continue
			}
			if req.Cmp(lim) > 0 {
				t.Errorf("%s: %s request %s over limit %s", w, res, req.String(), lim.String())
			}
		}
		if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: want allowPrivilegeEscalation false and readOnlyRootFilesystem true", w)
		}
		for _, vm := range c.VolumeMounts {
			if !volumes[vm.Name] {
				t.Errorf("%s: mounts %q, which is neither a volume nor a claim", w, vm.Name)
			}
		}
		defined := map[string]bool{}
		for _, e := range c.Env {
			if strings.HasPrefix(e.Name, "DEPOT_") && !env[e.Name] {
				t.Errorf("%s: env %s is not read by cmd/depot", w, e.Name)
			}
			// $(VAR) must name a variable defined before it.
			for _, ref := range regexp.MustCompile(`\$\(([A-Z_]+)\)`).FindAllStringSubmatch(e.Value, -1) {
				if !defined[ref[1]] {
					t.Errorf("%s: env %s refers to $(%s), not defined before it", w, e.Name, ref[1])
				}
			}
			defined[e.Name] = true
		}
		if !defined["DEPOT_CLUSTER_KEY"] {
			t.Errorf("%s: no DEPOT_CLUSTER_KEY", w)
		}
	}
}

func hasPort(c corev1.Container, port string) bool {
	for _, p := range c.Ports {
		if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
			return true
		}
	}
	return false
}

// selects reports whether a selector matches a pod template's labels.
func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return false
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

// TestKubernetesManifests decodes every manifest strictly into the typed
// Kubernetes objects and checks what depot needs of them.
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	env := knownEnv(t)

	for name, ss := range m.statefulSets {
		claims := map[string]bool{}
		for _, c := range ss.Spec.VolumeClaimTemplates {
			claims[c.Name] = true
			if _, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
				t.Errorf("statefulset %s: claim %s requests no storage", name, c.Name)
			}
		}
		if len(claims) == 0 {
			t.Errorf("statefulset %s: no volumeClaimTemplates", name)
		}
		if !selects(t, ss.Spec.Selector, ss.Spec.Template.Labels) {
			t.Errorf("statefulset %s: selector does not match its pods", name)
		}
		svc, ok := m.services[ss.Spec.ServiceName]
		if !ok || svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("statefulset %s: serviceName %q is not a headless service here", name, ss.Spec.ServiceName)
		} else {
			checkGossipService(t, svc)
			if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, ss.Spec.Template.Labels) {
				t.Errorf("service %s does not select statefulset %s", svc.Name, name)
			}
		}
		checkPodSpec(t, "statefulset "+name, ss.Spec.Template.Spec, claims, env)
		for _, c := range ss.Spec.Template.Spec.Containers {
			mounted := false
			for _, vm := range c.VolumeMounts {
				mounted = mounted || claims[vm.Name]
			}
			if !mounted {
				t.Errorf("statefulset %s/%s mounts none of its claims", name, c.Name)
			}
		}
	}
	for name, d := range m.deployments {
		checkPodSpec(t, "deployment "+name, d.Spec.Template.Spec, nil, env)
		if !selects(t, d.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("deployment %s: selector does not match its pods", name)
		}
	}

	// The roles, by the command each runs.
	role := func(spec corev1.PodSpec) string {
		if len(spec.Containers) == 0 || len(spec.Containers[0].Args) == 0 {
			return ""
		}
		return spec.Containers[0].Args[0]
	}
	var ds, ns *appsv1.StatefulSet
	for _, ss := range m.statefulSets {
		switch role(ss.Spec.Template.Spec) {
		case "dataserver":
			ds = ss
		case "nameserver":
			ns = ss
		}
	}
	if ds == nil || ns == nil {
		t.Fatalf("want a dataserver and a nameserver StatefulSet; have %v", keys(m.statefulSets))
	}
	if ns.Spec.Replicas == nil || *ns.Spec.Replicas != 3 {
		t.Errorf("nameserver: want 3 replicas (a raft group)")
	}
	if ds.Spec.Replicas == nil || *ds.Spec.Replicas < 6 {
		t.Errorf("dataserver: want at least k+m = 6 replicas")
	}

	// The PodDisruptionBudget of the dataservers lets at most m = 2 go.
	var dsPDB *policyv1.PodDisruptionBudget
	for _, p := range m.pdbs {
		if selects(t, p.Spec.Selector, ds.Spec.Template.Labels) {
			dsPDB = p
		}
	}
	if dsPDB == nil {
		t.Errorf("no PodDisruptionBudget selects the dataservers")
	} else if mu := dsPDB.Spec.MaxUnavailable; mu == nil || mu.String() != "2" {
		t.Errorf("dataserver PDB: maxUnavailable %v, want 2 (m of the 4+2 scheme)", mu)
	}

	// The gateways: a Deployment behind a Service.
	var gw *appsv1.Deployment
	for _, d := range m.deployments {
		if role(d.Spec.Template.Spec) == "gateway" {
			gw = d
		}
	}
	if gw == nil {
		t.Fatal("no gateway Deployment")
	}
	served := false
	for _, s := range m.services {
		if s.Spec.ClusterIP != corev1.ClusterIPNone &&
			selects(t, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, gw.Spec.Template.Labels) {
			served = true
		}
	}
	if !served {
		t.Error("no Service in front of the gateways")
	}

	// Every secret a pod reads is in the example secret.
	example := m.secrets["depot"]
	if example == nil {
		t.Fatal("no example Secret named depot")
	}
	var pods []corev1.PodSpec
	for _, ss := range m.statefulSets {
		pods = append(pods, ss.Spec.Template.Spec)
	}
	for _, d := range m.deployments {
		pods = append(pods, d.Spec.Template.Spec)
	}
	for _, p := range pods {
		for _, c := range p.Containers {
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				if e.ValueFrom.SecretKeyRef.Name != example.Name {
					t.Errorf("%s: env %s reads secret %s, not %s", c.Name, e.Name, e.ValueFrom.SecretKeyRef.Name, example.Name)
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				if _, ok := example.StringData[ref.Key]; ref.Name != example.Name || !ok {
					t.Errorf("%s: env %s reads secret %s key %s, which the example lacks", c.Name, e.Name, ref.Name, ref.Key)
				}
			}
		}
	}
}

func checkGossipService(t *testing.T, svc *corev1.Service) {
	t.Helper()
	proto := map[corev1.Protocol]bool{}
	for _, p := range svc.Spec.Ports {
		if p.Port == 7946 {
			proto[p.Protocol] = true
		}
	}
	if !proto[corev1.ProtocolTCP] || !proto[corev1.ProtocolUDP] {
		t.Errorf("service %s: gossip needs port 7946 over TCP and UDP", svc.Name)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("service %s: gossip must reach pods before they are ready (publishNotReadyAddresses)", svc.Name)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestStrictDecodingCatchesMistakes proves that the decoder used above
// rejects the mistakes it is there for.
func TestStrictDecodingCatchesMistakes(t *testing.T) {
	good := []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  replicas: 2
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers: [{name: c, image: i}]
`)
	var d appsv1.Deployment
	if err := strict(good, &d); err != nil {
		t.Fatalf("good manifest: %v", err)
	}
	for name, bad := range map[string][]byte{
		"misspelt field": bytes.Replace(good, []byte("replicas:"), []byte("replica:"), 1),
		"wrong type":     bytes.Replace(good, []byte("replicas: 2"), []byte("replicas: two"), 1),
		"duplicate key":  bytes.Replace(good, []byte("  replicas: 2\n"), []byte("  replicas: 2\n  replicas: 3\n"), 1),
	} {
		var d appsv1.Deployment
		if err := strict(bad, &d); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// podsByRole returns the pod templates of the manifests by the role their
// first container runs.
func podsByRole(m *manifests) map[string]corev1.PodTemplateSpec {
	out := map[string]corev1.PodTemplateSpec{}
	add := func(tpl corev1.PodTemplateSpec) {
		if len(tpl.Spec.Containers) > 0 && len(tpl.Spec.Containers[0].Args) > 0 {
			out[tpl.Spec.Containers[0].Args[0]] = tpl
		}
	}
	for _, ss := range m.statefulSets {
		add(ss.Spec.Template)
	}
	for _, d := range m.deployments {
		add(d.Spec.Template)
	}
	return out
}

// TestKubernetesMutualTLS: every role runs mutual TLS from the depot-tls
// Secret (whose keys the example lists), and the internal roles' probes
// speak HTTPS.
func TestKubernetesMutualTLS(t *testing.T) {
	m := loadManifests(t)
	example := m.secrets["depot-tls"]
	if example == nil {
		t.Fatal("no example Secret named depot-tls")
	}
	for role, tpl := range podsByRole(m) {
		secretDirs := map[string]bool{}
		c := tpl.Spec.Containers[0]
		for _, v := range tpl.Spec.Volumes {
			if v.Secret == nil || v.Secret.SecretName != example.Name {
				continue
			}
			for _, vm := range c.VolumeMounts {
				if vm.Name == v.Name {
					secretDirs[vm.MountPath] = true
				}
			}
		}
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		for _, k := range []string{"DEPOT_CA_FILE", "DEPOT_CERT_FILE", "DEPOT_CERT_KEY_FILE"} {
			dir, file := filepath.Split(env[k])
			if !secretDirs[filepath.Clean(dir)] {
				t.Errorf("%s: %s=%q is not in a mount of the %s Secret", role, k, env[k], example.Name)
			} else if _, ok := example.StringData[file]; !ok {
				t.Errorf("%s: %s names %s, which the example %s lacks", role, k, file, example.Name)
			}
		}
		if u := env["DEPOT_NAMESERVER"]; strings.Contains(u, "http://") {
			t.Errorf("%s: DEPOT_NAMESERVER %q is plain HTTP", role, u)
		}
		if role == "gateway" {
			continue // its probes are on the public listener
		}
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if p != nil && p.HTTPGet != nil && p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
				t.Errorf("%s: probe %s over %q, want HTTPS", role, p.HTTPGet.Path, p.HTTPGet.Scheme)
			}
		}
	}
}

// ingressRules returns the rules of every NetworkPolicy that selects a pod
// with podLabels and restricts its ingress, and whether there is one.
func ingressRules(t *testing.T, m *manifests, podLabels map[string]string) ([]networkingv1.NetworkPolicyIngressRule, bool) {
	var rules []networkingv1.NetworkPolicyIngressRule
	selected := false
	for _, np := range m.netpols {
		if np.Namespace != "depot" || !selects(t, &np.Spec.PodSelector, podLabels) ||
			!slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			continue
		}
		selected = true
		rules = append(rules, np.Spec.Ingress...)
	}
	return rules, selected
}

// coversPort reports whether a rule admits traffic to port.
func coversPort(r networkingv1.NetworkPolicyIngressRule, port corev1.ContainerPort) bool {
	if len(r.Ports) == 0 {
		return true
	}
	for _, p := range r.Ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if proto != port.Protocol && !(port.Protocol == "" && proto == corev1.ProtocolTCP) {
			continue
		}
		if p.Port == nil || p.Port.IntValue() == int(port.ContainerPort) || p.Port.String() == port.Name {
			return true
		}
	}
	return false
}

// TestKubernetesNetworkPolicies: every port of every role but the
// gateways' S3 port admits only the cluster's own pods, and raft only
// the nameservers; the ports the roles use between them stay reachable.
func TestKubernetesNetworkPolicies(t *testing.T) {
	m := loadManifests(t)
	roles := podsByRole(m)
	for role, tpl := range roles {
		rules, selected := ingressRules(t, m, tpl.Labels)
		if !selected {
			t.Errorf("%s: no NetworkPolicy restricts its ingress", role)
			continue
		}
		for _, port := range tpl.Spec.Containers[0].Ports {
			public := role == "gateway" && port.ContainerPort == 9000
			allowedFrom := map[string]bool{} // roles whose pods may connect
			for _, r := range rules {
				if !coversPort(r, port) {
					continue
				}
				if len(r.From) == 0 && !public {
					t.Errorf("%s: port %d (%s) is open to every source", role, port.ContainerPort, port.Name)
				}
				for _, peer := range r.From {
					if peer.IPBlock != nil || peer.NamespaceSelector != nil || peer.PodSelector == nil {
						t.Errorf("%s: port %d admits a peer outside this namespace's pods: %+v", role, port.ContainerPort, peer)
						continue
					}
					if peer.PodSelector.MatchLabels["app.kubernetes.io/name"] != "depot" {
						t.Errorf("%s: port %d admits pods that are not depot's: %v", role, port.ContainerPort, peer.PodSelector)
					}
					for from, ftpl := range roles {
						if selects(t, peer.PodSelector, ftpl.Labels) {
							allowedFrom[from] = true
						}
					}
				}
			}
			switch {
			case port.Name == "raft":
				if !allowedFrom["nameserver"] || len(allowedFrom) != 1 {
					t.Errorf("%s: raft admits %v, want the nameservers only", role, keys(allowedFrom))
				}
			case public:
			default:
				// Every role talks to the nameservers and the dataservers
				// and gossips with everyone.
				for _, from := range []string{"nameserver", "dataserver", "gateway"} {
					if !allowedFrom[from] {
						t.Errorf("%s: port %d (%s) is closed to the %s pods", role, port.ContainerPort, port.Name, from)
					}
				}
			}
		}
	}
}
