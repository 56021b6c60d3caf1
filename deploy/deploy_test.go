// Package deploy_test validates the deployment files of this folder: the
// systemd unit (systemd-analyze verify, when installed, and its fields) and
// the Kubernetes DaemonSet (parsed; the fields netwatcher needs). Both
// commands lines are parsed by netwatcher's own config.Parse.
package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"

	"github.com/netwatcher/netwatcher/internal/config"
)

// metricsPort is the port both files serve the metrics on.
const metricsPort = 9433

// parseArgs checks args with netwatcher's own flag parser and returns the
// configuration.
func parseArgs(t *testing.T, args []string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(args, io.Discard)
	if err != nil {
		t.Fatalf("netwatcher %s: %v", strings.Join(args, " "), err)
	}
	if cfg.MetricsAddr == "" {
		t.Fatalf("netwatcher %s: no --metrics-addr", strings.Join(args, " "))
	}
	ap, err := netip.ParseAddrPort(cfg.MetricsAddr)
	if err != nil || ap.Port() != metricsPort {
		t.Errorf("--metrics-addr %s: want port %d (%v)", cfg.MetricsAddr, metricsPort, err)
	}
	if !cfg.Quiet {
		t.Errorf("a node agent runs with -q (no per-event console lines)")
	}
	return cfg
}

// unit is a systemd unit file: section -> key -> values (in order).
type unit map[string]map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	var sec string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
		case l[0] == '[' && l[len(l)-1] == ']':
			sec = l[1 : len(l)-1]
			u[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || sec == "" {
				t.Fatalf("%s:%d: not key=value in a section: %q", path, n, l)
			}
			u[sec][k] = append(u[sec][k], v)
		}
	}
	return u
}

func (u unit) one(t *testing.T, sec, key string) string {
	t.Helper()
	v := u[sec][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s: %d values, want 1", sec, key, len(v))
	}
	return v[0]
}

func TestSystemdUnit(t *testing.T) {
	const path = "netwatcher.service"
	u := readUnit(t, path)
	exec0 := strings.Fields(u.one(t, "Service", "ExecStart"))
	if exec0[0] != "/usr/local/bin/netwatcher" {
		t.Errorf("ExecStart runs %s", exec0[0])
	}
	cfg := parseArgs(t, exec0[1:])
	ap := netip.MustParseAddrPort(cfg.MetricsAddr)
	if !ap.Addr().IsLoopback() || cfg.MetricsAllowRemote {
		t.Errorf("the unit serves the metrics on %s (allow remote %v): loopback only", cfg.MetricsAddr, cfg.MetricsAllowRemote)
	}
	if sd := "/var/lib/" + u.one(t, "Service", "StateDirectory"); cfg.DataDir != sd || !slices.Contains(strings.Fields(u.one(t, "Service", "ReadWritePaths")), sd) {
		t.Errorf("--data-dir %s: want the StateDirectory %s, writable", cfg.DataDir, sd)
	}
	caps := strings.Fields(u.one(t, "Service", "CapabilityBoundingSet"))
	for _, c := range []string{"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"} {
		if !slices.Contains(caps, c) {
			t.Errorf("CapabilityBoundingSet lacks %s", c)
		}
	}
	for k, want := range map[string]string{"LimitMEMLOCK": "infinity", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"Restart": "on-failure"} {
		if got := u.one(t, "Service", k); got != want {
			t.Errorf("%s=%s, want %s", k, got, want)
		}
	}
	// Options that would stop it: a private network namespace, no
	// network namespaces at all, a read-only /sys (tracefs mount).
	for _, k := range []string{"PrivateNetwork", "ProtectKernelTunables", "PrivateUsers", "User", "DynamicUser"} {
		if v, ok := u["Service"][k]; ok {
			t.Errorf("%s=%v: netwatcher needs root, the host's network namespace and a writable /sys/kernel/tracing", k, v)
		}
	}
	if rn := u.one(t, "Service", "RestrictNamespaces"); !strings.HasPrefix(rn, "~") || strings.Contains(rn, "net") {
		t.Errorf("RestrictNamespaces=%s: netwatcher enters network namespaces (setns)", rn)
	}
	if got := u.one(t, "Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("WantedBy=%s", got)
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: unit not verified by systemd")
	}
	// verify wants the binary to exist: a copy of the unit runs this test's
	// executable instead.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	tmp := filepath.Join(t.TempDir(), path)
	if err := os.WriteFile(tmp, bytes.ReplaceAll(b, []byte("/usr/local/bin/netwatcher"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", tmp).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The parts of the Kubernetes objects the test reads (the rest is ignored).
type (
	object struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name      string            `yaml:"name"`
			Namespace string            `yaml:"namespace"`
			Labels    map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec yaml.MapSlice `yaml:"spec"`
	}
	daemonSetSpec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	}
	podSpec struct {
		HostPID     *bool       `yaml:"hostPID"`
		HostNetwork *bool       `yaml:"hostNetwork"`
		Containers  []container `yaml:"containers"`
		Volumes     []struct {
			Name     string `yaml:"name"`
			HostPath *struct {
				Path string `yaml:"path"`
				Type string `yaml:"type"`
			} `yaml:"hostPath"`
			EmptyDir *struct{} `yaml:"emptyDir"`
		} `yaml:"volumes"`
	}
	probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port any    `yaml:"port"`
		} `yaml:"httpGet"`
	}
	container struct {
		Name    string   `yaml:"name"`
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Args    []string `yaml:"args"`
		Ports   []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
			Protocol      string `yaml:"protocol"`
		} `yaml:"ports"`
		SecurityContext struct {
			Privileged *bool `yaml:"privileged"`
		} `yaml:"securityContext"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		VolumeMounts   []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
)

func readObjects(t *testing.T, path string) ([]object, [][]byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs []object
	var raws [][]byte
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.SetStrict(true)
	for {
		var m yaml.MapSlice
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		raw, _ := yaml.Marshal(m)
		var o object
		if err := yaml.Unmarshal(raw, &o); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Errorf("%s: an object without apiVersion, kind or name: %s", path, raw)
		}
		objs = append(objs, o)
		raws = append(raws, raw)
	}
	return objs, raws
}

func TestDaemonSet(t *testing.T) {
	objs, raws := readObjects(t, "daemonset.yaml")
	var ds *daemonSetSpec
	kinds := map[string]bool{}
	for i, o := range objs {
		kinds[o.Kind] = true
		if o.Kind != "Namespace" && o.Metadata.Namespace != "netwatcher" {
			t.Errorf("%s %s in namespace %q", o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
		if o.Kind == "DaemonSet" {
			if o.APIVersion != "apps/v1" {
				t.Errorf("DaemonSet apiVersion %s", o.APIVersion)
			}
			var whole struct {
				Spec daemonSetSpec `yaml:"spec"`
			}
			if err := yaml.Unmarshal(raws[i], &whole); err != nil {
				t.Fatal(err)
			}
			ds = &whole.Spec
		}
	}
	if ds == nil || !kinds["NetworkPolicy"] {
		t.Fatalf("want a DaemonSet and a NetworkPolicy (the metrics have no authentication), got %v", kinds)
	}
	for k, v := range ds.Selector.MatchLabels {
		if ds.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not select the pod template (%v)", k, v, ds.Template.Metadata.Labels)
		}
	}
	if len(ds.Selector.MatchLabels) == 0 {
		t.Error("no selector")
	}
	pod := ds.Template.Spec
	if pod.HostPID == nil || !*pod.HostPID {
		t.Error("hostPID must be true (processes and their network namespaces)")
	}
	if pod.HostNetwork != nil && *pod.HostNetwork {
		t.Error("hostNetwork is not needed (the hooks are host-wide)")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Error("the container must be privileged (BPF)")
	}
	if c.Image == "" {
		t.Error("no image")
	}
	cfg := parseArgs(t, c.Args)
	if !cfg.MetricsAllowRemote {
		t.Error("the pod's own address is not loopback: --metrics-allow-remote is needed for Prometheus to reach it")
	}
	var portName string
	for _, p := range c.Ports {
		if p.ContainerPort == metricsPort && (p.Protocol == "" || p.Protocol == "TCP") {
			portName = p.Name
		}
	}
	if portName == "" {
		t.Errorf("no containerPort %d: %+v", metricsPort, c.Ports)
	}
	if a := ds.Template.Metadata.Annotations; a["prometheus.io/port"] != strconv.Itoa(metricsPort) || a["prometheus.io/scrape"] != "true" {
		t.Errorf("scrape annotations %v", a)
	}
	for what, pr := range map[string]*probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		if pr == nil {
			t.Errorf("no %s", what)
		} else if pr.HTTPGet.Port != portName && pr.HTTPGet.Port != metricsPort {
			t.Errorf("%s port %v is not the metrics port", what, pr.HTTPGet.Port)
		}
	}

	// every mount has its volume; the host paths netwatcher needs are
	// mounted where it looks for them
	hostPaths := map[string]string{} // volume -> host path
	vols := map[string]bool{}
	for _, v := range pod.Volumes {
		vols[v.Name] = true
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	mounted := map[string]string{} // mount path -> host path
	for _, m := range c.VolumeMounts {
		if !vols[m.Name] {
			t.Errorf("volumeMount %s: no volume %s", m.MountPath, m.Name)
		}
		mounted[m.MountPath] = hostPaths[m.Name]
	}
	for _, p := range []string{"/sys/kernel/btf", "/sys/fs/bpf", "/sys/fs/cgroup", "/sys/kernel/tracing"} {
		if mounted[p] != p {
			t.Errorf("%s: mounted from host path %q, want the host's %s", p, mounted[p], p)
		}
	}
	if _, ok := mounted[cfg.DataDir]; !ok {
		t.Errorf("--data-dir %s is not a volume", cfg.DataDir)
	}
}
