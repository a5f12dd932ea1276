package check

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Where things are, from this package's directory (deploy/k8s/check).
const (
	repoRoot    = "../../.."
	k8sDir      = ".."
	baseImage   = "stockflow" // the base's placeholder, replaced by every overlay
	defaultPort = 8080
	// The service's defaults for the settings the checks reason about
	// (pkg/config: Default).
	defaultShutdownGrace = 20 * time.Second
	// pkg/service flushes the last spans for at most this long after the
	// graceful stop.
	traceFlush = 5 * time.Second
)

// manifestTrees are the directories whose every YAML document must decode.
var manifestTrees = []string{"base", "overlays", "jobs"}

// doc is one YAML document of a file.
type doc struct {
	file string
	n    int // 1-based position in its file
	raw  []byte
}

func (d doc) String() string { return fmt.Sprintf("%s (document %d)", d.file, d.n) }

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// newObject is the Go type a manifest of apiVersion and kind decodes into.
// A kind not listed here fails the test: add it when a manifest needs it.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 Secret":
		return &corev1.Secret{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "batch/v1 Job":
		return &batchv1.Job{}, true
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		return &kusttypes.Kustomization{}, true
	}
	return nil, false
}

// splitYAML returns the non-empty documents of a multi-document stream.
func splitYAML(file string, data []byte) ([]doc, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []doc
	for n := 1; ; n++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if isEmptyYAML(raw) {
			continue
		}
		out = append(out, doc{file: file, n: n, raw: raw})
	}
}

// isEmptyYAML reports a document of comments, blank lines and separators only.
func isEmptyYAML(raw []byte) bool {
	for _, line := range strings.Split(string(raw), "\n") {
		l := strings.TrimSpace(line)
		if l != "" && l != "---" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// decodeStrict decodes one document into its Kubernetes type, refusing
// duplicate keys, fields the type does not have and trailing data.
func decodeStrict(d doc) (any, error) {
	js, err := yaml.YAMLToJSONStrict(d.raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d, err)
	}
	var tm typeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, fmt.Errorf("%s: not an object: %w", d, err)
	}
	obj, ok := newObject(tm.APIVersion, tm.Kind)
	if !ok {
		return nil, fmt.Errorf("%s: unknown kind %q of apiVersion %q", d, tm.Kind, tm.APIVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", d, tm.APIVersion, tm.Kind, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: trailing data after the object", d)
	}
	return obj, nil
}

// yamlFiles lists the .yaml and .yml files under dir, recursively.
func yamlFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return files
}

// allDocs reads every YAML document of the manifest trees.
func allDocs(t *testing.T) []doc {
	t.Helper()
	var docs []doc
	for _, tree := range manifestTrees {
		files := yamlFiles(t, filepath.Join(k8sDir, tree))
		if len(files) == 0 {
			t.Fatalf("no YAML files under deploy/k8s/%s", tree)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ds, err := splitYAML(f, data)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) == 0 {
				t.Errorf("%s: no YAML document", f)
			}
			docs = append(docs, ds...)
		}
	}
	return docs
}

func TestEveryManifestDecodesStrictly(t *testing.T) {
	for _, d := range allDocs(t) {
		if _, err := decodeStrict(d); err != nil {
			t.Error(err)
		}
	}
}

// kustomizationDirs are base and every overlay: the directories kustomize builds.
func kustomizationDirs(t *testing.T) []string {
	t.Helper()
	dirs := []string{filepath.Join(k8sDir, "base")}
	overlays, err := os.ReadDir(filepath.Join(k8sDir, "overlays"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range overlays {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(k8sDir, "overlays", e.Name()))
		}
	}
	if len(dirs) < 2 {
		t.Fatal("no overlay under deploy/k8s/overlays")
	}
	return dirs
}

// TestKustomizationsListWhatExists: every file a kustomization names exists,
// and every YAML file beside it is named, so none is forgotten.
func TestKustomizationsListWhatExists(t *testing.T) {
	for _, dir := range kustomizationDirs(t) {
		path := filepath.Join(dir, "kustomization.yaml")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		obj, err := decodeStrict(doc{file: path, n: 1, raw: data})
		if err != nil {
			t.Error(err)
			continue
		}
		k, ok := obj.(*kusttypes.Kustomization)
		if !ok {
			t.Errorf("%s: a %T, not a Kustomization", path, obj)
			continue
		}
		named := map[string]bool{}
		for _, r := range k.Resources {
			p := filepath.Join(dir, r)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s: resource %s: %v", path, r, err)
			}
			named[filepath.Clean(p)] = true
		}
		for _, p := range k.Patches {
			if p.Path == "" {
				continue
			}
			fp := filepath.Join(dir, p.Path)
			if _, err := os.Stat(fp); err != nil {
				t.Errorf("%s: patch %s: %v", path, p.Path, err)
			}
			named[filepath.Clean(fp)] = true
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || name == "kustomization.yaml" || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
				continue
			}
			if !named[filepath.Clean(filepath.Join(dir, name))] {
				t.Errorf("%s: %s is neither a resource nor a patch of it", path, name)
			}
		}
	}
}

// built is the decoded output of one kustomize build.
type built struct {
	dir          string
	statefulSets []*appsv1.StatefulSet
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	services     []*corev1.Service
	pdbs         []*policyv1.PodDisruptionBudget
}

func build(t *testing.T, dir string) *built {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	docs, err := splitYAML("kustomize build "+dir, out)
	if err != nil {
		t.Fatal(err)
	}
	b := &built{dir: dir, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for _, d := range docs {
		obj, err := decodeStrict(d)
		if err != nil {
			t.Error(err)
			continue
		}
		switch o := obj.(type) {
		case *appsv1.StatefulSet:
			b.statefulSets = append(b.statefulSets, o)
		case *corev1.ConfigMap:
			b.configMaps[o.Name] = o
		case *corev1.Secret:
			b.secrets[o.Name] = o
		case *corev1.Service:
			b.services = append(b.services, o)
		case *policyv1.PodDisruptionBudget:
			b.pdbs = append(b.pdbs, o)
		default:
			t.Errorf("%s: a %T, which no check covers", d, obj)
		}
	}
	return b
}

// TestBuiltManifests builds base and every overlay as kubectl apply -k would
// and checks what the service relies on in the result.
func TestBuiltManifests(t *testing.T) {
	for _, dir := range kustomizationDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			b := build(t, dir)
			checkBuilt(t, b, filepath.Base(dir) != "base")
		})
	}
}

func checkBuilt(t *testing.T, b *built, overlay bool) {
	if len(b.statefulSets) != 1 {
		t.Fatalf("%d StatefulSets, want 1", len(b.statefulSets))
	}
	sts := b.statefulSets[0]
	spec := sts.Spec.Template.Spec
	podLabels := sts.Spec.Template.Labels

	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %q, want Parallel", sts.Spec.PodManagementPolicy)
	}
	if sts.Spec.Selector == nil || !selects(sts.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("the StatefulSet's selector does not select its own pods")
	}

	c := container(t, spec, "stockflow")
	if c == nil {
		return
	}
	port := containerPort(c, "http")
	if port == 0 {
		t.Fatalf("container %s has no port named http", c.Name)
	}
	if port != defaultPort {
		t.Errorf("container port %d, want %d (the image EXPOSEs it)", port, defaultPort)
	}
	if overlay && (c.Image == baseImage || !strings.ContainsAny(c.Image, ":@")) {
		t.Errorf("image %q: an overlay must set the image with a tag or digest", c.Image)
	}
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Errorf("args %q, want serve first", c.Args)
	}

	// Probes: liveness on /healthz, readiness on /readyz, both on the
	// container's port.
	checkProbe(t, "liveness", c.LivenessProbe, "/healthz", c, port)
	checkProbe(t, "readiness", c.ReadinessProbe, "/readyz", c, port)

	// The environment the process sees: the ConfigMaps and Secrets it reads,
	// then its own env, which wins.
	env := map[string]string{}
	from := map[string]string{} // name -> where it came from
	for _, ef := range c.EnvFrom {
		var data map[string]string
		var src string
		switch {
		case ef.ConfigMapRef != nil:
			cm, ok := b.configMaps[ef.ConfigMapRef.Name]
			if !ok {
				t.Errorf("envFrom: no ConfigMap %q in the build", ef.ConfigMapRef.Name)
				continue
			}
			data, src = cm.Data, "ConfigMap "+cm.Name
		case ef.SecretRef != nil:
			s, ok := b.secrets[ef.SecretRef.Name]
			if !ok {
				t.Errorf("envFrom: no Secret %q in the build", ef.SecretRef.Name)
				continue
			}
			data, src = secretData(s), "Secret "+s.Name
		}
		for k, v := range data {
			if prev, dup := from[k]; dup {
				t.Errorf("%s is set in both %s and %s: one silently wins", k, prev, src)
			}
			env[k], from[k] = v, src
		}
	}
	var instanceID *corev1.EnvVar
	for i, e := range c.Env {
		if prev, dup := from[e.Name]; dup {
			t.Errorf("%s is set in %s and in the container's env, which silently wins", e.Name, prev)
		}
		from[e.Name] = "env"
		env[e.Name] = e.Value
		if e.Name == "STOCKFLOW_INSTANCE_ID" {
			instanceID = &c.Env[i]
		}
	}
	if instanceID == nil || instanceID.ValueFrom == nil || instanceID.ValueFrom.FieldRef == nil ||
		instanceID.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("STOCKFLOW_INSTANCE_ID must come from the pod's metadata.name (downward API)")
	}
	for _, want := range []string{"STOCKFLOW_KAFKA_BROKERS", "STOCKFLOW_REDIS_ADDR"} {
		if env[want] == "" {
			t.Errorf("%s is not set: the service would start embedded, in memory", want)
		}
	}
	if v, ok := env["STOCKFLOW_KAFKA_REPLICATION"]; !ok || v != "3" {
		t.Errorf("STOCKFLOW_KAFKA_REPLICATION %q, want 3", v)
	}
	if env["STOCKFLOW_LOG_FORMAT"] != "json" {
		t.Errorf("STOCKFLOW_LOG_FORMAT %q, want json", env["STOCKFLOW_LOG_FORMAT"])
	}
	host, p, err := net.SplitHostPort(env["STOCKFLOW_HTTP_ADDR"])
	switch {
	case err != nil:
		t.Errorf("STOCKFLOW_HTTP_ADDR %q: %v", env["STOCKFLOW_HTTP_ADDR"], err)
	case host != "0.0.0.0" && host != "" && host != "::":
		t.Errorf("STOCKFLOW_HTTP_ADDR %q listens on %s only: probes and Services cannot reach it", env["STOCKFLOW_HTTP_ADDR"], host)
	case p != strconv.Itoa(int(port)):
		t.Errorf("STOCKFLOW_HTTP_ADDR port %s, container port %d", p, port)
	}
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		t.Errorf("enableServiceLinks must be false: the Service named stockflow would add STOCKFLOW_* variables")
	}

	// Security.
	pod := spec.SecurityContext
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("container %s has no securityContext", c.Name)
	}
	nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && pod != nil && pod.RunAsNonRoot != nil && *pod.RunAsNonRoot)
	if !nonRoot {
		t.Errorf("runAsNonRoot must be true")
	}
	uid := sc.RunAsUser
	if uid == nil && pod != nil {
		uid = pod.RunAsUser
	}
	if uid == nil || *uid == 0 {
		t.Errorf("runAsUser must be a non-zero number: the image's USER is a name, which runAsNonRoot cannot check")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("readOnlyRootFilesystem must be true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation must be false")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, corev1.Capability("ALL")) {
		t.Errorf("capabilities must drop ALL")
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod != nil {
		seccomp = pod.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile must be RuntimeDefault")
	}

	// A graceful stop fits in the termination grace period.
	grace := defaultShutdownGrace
	if v := env["STOCKFLOW_SHUTDOWN_GRACE"]; v != "" {
		if grace, err = time.ParseDuration(v); err != nil {
			t.Errorf("STOCKFLOW_SHUTDOWN_GRACE %q: %v", v, err)
		}
	}
	need := grace + traceFlush
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		need += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if spec.TerminationGracePeriodSeconds == nil || time.Duration(*spec.TerminationGracePeriodSeconds)*time.Second <= need {
		t.Errorf("terminationGracePeriodSeconds must exceed the preStop sleep + STOCKFLOW_SHUTDOWN_GRACE + %s of trace flush = %s", traceFlush, need)
	}

	// Memory: a limit, and GOMEMLIMIT under it.
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		t.Errorf("no memory limit")
	} else if v := env["GOMEMLIMIT"]; v != "" {
		n, err := parseGoMemLimit(v)
		if err != nil {
			t.Errorf("GOMEMLIMIT %q: %v", v, err)
		} else if n >= limit.Value() {
			t.Errorf("GOMEMLIMIT %s is not below the memory limit %s", v, limit.String())
		}
	}
	if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Errorf("no CPU request")
	}

	// Prometheus finds /metrics on the container's port.
	ann := sts.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(int(port)) || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("prometheus annotations %v, want scrape true, port %d, path /metrics", ann, port)
	}
	if len(spec.TopologySpreadConstraints) == 0 {
		t.Errorf("no topologySpreadConstraints")
	}
	for _, tsc := range spec.TopologySpreadConstraints {
		if tsc.LabelSelector == nil || !selects(tsc.LabelSelector.MatchLabels, podLabels) {
			t.Errorf("topology spread on %s does not select the pods", tsc.TopologyKey)
		}
	}

	// Services: the governing one is headless; every one selects the pods
	// and targets a port they have.
	headless := false
	for _, s := range b.services {
		if !selects(s.Spec.Selector, podLabels) {
			t.Errorf("Service %s does not select the pods", s.Name)
		}
		for _, sp := range s.Spec.Ports {
			if resolvePort(c, sp.TargetPort) == 0 {
				t.Errorf("Service %s port %s targets %s, which the container does not have", s.Name, sp.Name, sp.TargetPort.String())
			}
		}
		if s.Name == sts.Spec.ServiceName {
			headless = s.Spec.ClusterIP == corev1.ClusterIPNone
		}
	}
	if !headless {
		t.Errorf("serviceName %q is not a headless Service of the build", sts.Spec.ServiceName)
	}
	if len(b.services) < 2 {
		t.Errorf("%d Services, want the headless one and the API's", len(b.services))
	}

	// One instance at a time for voluntary disruptions.
	if len(b.pdbs) != 1 {
		t.Fatalf("%d PodDisruptionBudgets, want 1", len(b.pdbs))
	}
	pdb := b.pdbs[0]
	if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) {
		t.Errorf("PodDisruptionBudget maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}
	if pdb.Spec.Selector == nil || !selects(pdb.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("PodDisruptionBudget does not select the pods")
	}
}

func container(t *testing.T, spec corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	t.Errorf("no container %q", name)
	return nil
}

func containerPort(c *corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// resolvePort is the container port a named or numbered port refers to, 0 if none.
func resolvePort(c *corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.String {
		return containerPort(c, p.StrVal)
	}
	for _, cp := range c.Ports {
		if cp.ContainerPort == p.IntVal {
			return cp.ContainerPort
		}
	}
	return 0
}

func checkProbe(t *testing.T, what string, p *corev1.Probe, path string, c *corev1.Container, port int32) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s probe: want an HTTP GET of %s", what, path)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s probe: path %s, want %s", what, p.HTTPGet.Path, path)
	}
	if got := resolvePort(c, p.HTTPGet.Port); got != port {
		t.Errorf("%s probe: port %s, want the container port %d", what, p.HTTPGet.Port.String(), port)
	}
}

// selects reports whether a non-empty selector matches the labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func secretData(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

// parseGoMemLimit reads GOMEMLIMIT's format: bytes, or a number with B,
// KiB, MiB, GiB or TiB.
func parseGoMemLimit(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("not a positive size such as 1800MiB")
	}
	return n * mult, nil
}

// settings are the STOCKFLOW_* variables `stockflow serve` reads, from its
// own usage: every flag's text ends with "(env STOCKFLOW_...)", and so do
// -config's and -instance-id's, the two read outside pkg/config's options.
var settings = sync.OnceValues(func() (map[string]bool, error) {
	cmd := exec.Command("go", "run", "./cmd/stockflow", "serve", "-h")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go run ./cmd/stockflow serve -h: %v\n%s", err, out)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`env (STOCKFLOW_[A-Z0-9_]+)\)`).FindAllStringSubmatch(string(out), -1) {
		names[m[1]] = true
	}
	for _, must := range []string{"STOCKFLOW_KAFKA_BROKERS", "STOCKFLOW_INSTANCE_ID", "STOCKFLOW_CONFIG"} {
		if !names[must] {
			return nil, fmt.Errorf("serve -h names no %s: has its usage changed?\n%s", must, out)
		}
	}
	return names, nil
})

// TestEveryStockflowVariableIsASetting: a misspelt or retired STOCKFLOW_*
// name in a manifest would be ignored without a word, so every one must be a
// variable the service reads.
func TestEveryStockflowVariableIsASetting(t *testing.T) {
	known, err := settings()
	if err != nil {
		t.Fatal(err)
	}
	check := func(d doc, where, name string) {
		if strings.HasPrefix(name, "STOCKFLOW_") && !known[name] {
			t.Errorf("%s: %s: %s is not a setting of stockflow serve", d, where, name)
		}
	}
	checkPod := func(d doc, spec corev1.PodSpec) {
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			for _, e := range c.Env {
				check(d, "container "+c.Name, e.Name)
			}
			for _, ef := range c.EnvFrom {
				if ef.Prefix != "" {
					t.Errorf("%s: container %s: envFrom prefix %q renames the settings", d, c.Name, ef.Prefix)
				}
			}
		}
	}
	seen := 0
	for _, d := range allDocs(t) {
		obj, err := decodeStrict(d)
		if err != nil {
			continue // reported by TestEveryManifestDecodesStrictly
		}
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			for k := range o.Data {
				check(d, "ConfigMap "+o.Name, k)
				seen++
			}
		case *corev1.Secret:
			for k := range secretData(o) {
				check(d, "Secret "+o.Name, k)
				seen++
			}
		case *appsv1.StatefulSet:
			checkPod(d, o.Spec.Template.Spec)
			seen++
		case *batchv1.Job:
			checkPod(d, o.Spec.Template.Spec)
			seen++
		}
	}
	if seen == 0 {
		t.Fatal("no settings found in the manifests")
	}
}

// TestJobsRunLikeTheService: the one-off Jobs read the service's ConfigMap
// and Secret and run as locked down as it does.
func TestJobsRunLikeTheService(t *testing.T) {
	base := build(t, filepath.Join(k8sDir, "base"))
	for _, f := range yamlFiles(t, filepath.Join(k8sDir, "jobs")) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := splitYAML(f, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			obj, err := decodeStrict(d)
			if err != nil {
				t.Error(err)
				continue
			}
			job, ok := obj.(*batchv1.Job)
			if !ok {
				t.Errorf("%s: a %T in deploy/k8s/jobs", d, obj)
				continue
			}
			spec := job.Spec.Template.Spec
			for _, c := range spec.Containers {
				for _, ef := range c.EnvFrom {
					if ef.ConfigMapRef != nil && base.configMaps[ef.ConfigMapRef.Name] == nil {
						t.Errorf("%s: ConfigMap %q is not the base's", d, ef.ConfigMapRef.Name)
					}
					if ef.SecretRef != nil && base.secrets[ef.SecretRef.Name] == nil {
						t.Errorf("%s: Secret %q is not the base's", d, ef.SecretRef.Name)
					}
				}
				sc := c.SecurityContext
				if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
					sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
					sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, corev1.Capability("ALL")) {
					t.Errorf("%s: container %s: want a read-only root, no privilege escalation, ALL capabilities dropped", d, c.Name)
				}
				if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
					t.Errorf("%s: container %s: no memory limit", d, c.Name)
				}
			}
			pod := spec.SecurityContext
			if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot || pod.RunAsUser == nil || *pod.RunAsUser == 0 {
				t.Errorf("%s: want runAsNonRoot and a non-zero runAsUser", d)
			}
		}
	}
}

// TestImageMatchesManifests: the image the manifests run is the one
// deploy/container/Dockerfile describes, which no test here can build.
func TestImageMatchesManifests(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(k8sDir, "..", "container", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	final := 0 // the last stage starts at its FROM
	for i, l := range lines {
		if strings.HasPrefix(l, "FROM ") {
			final = i
		}
	}
	want := []string{
		// The binary is make build's, static.
		"RUN CGO_ENABLED=0 make build",
		// distroless's nonroot user is uid 65532, which the pods name.
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"USER nonroot",
		fmt.Sprintf("EXPOSE %d", defaultPort),
		`ENTRYPOINT ["/stockflow"]`,
		`CMD ["serve"]`,
	}
	for _, w := range want {
		found := false
		for i, l := range lines {
			if strings.HasPrefix(l, w) && (i >= final || strings.HasPrefix(w, "RUN")) {
				found = true
			}
		}
		if !found {
			t.Errorf("Dockerfile: no %q", w)
		}
	}
	b := build(t, filepath.Join(k8sDir, "base"))
	if len(b.statefulSets) == 1 {
		pod := b.statefulSets[0].Spec.Template.Spec.SecurityContext
		if pod == nil || pod.RunAsUser == nil || *pod.RunAsUser != 65532 {
			t.Errorf("the pods' runAsUser must be 65532, distroless's nonroot")
		}
	}
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".git", ".stack", "bin"} {
		if !slices.Contains(strings.Split(string(ignore), "\n"), p) {
			t.Errorf(".dockerignore does not keep %s out of the build context", p)
		}
	}
}
