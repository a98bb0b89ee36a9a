package daemon_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/warrenmq/warren/daemon"
	"github.com/warrenmq/warren/topology"
)

// The manifests of deploy/kubernetes and the topology they deploy,
// relative to this package.
const (
	deploymentFile   = "../deploy/kubernetes/worker-deployment.yaml"
	scaledObjectFile = "../deploy/kubernetes/keda-scaledobject.yaml"
	quickstartTopo   = "../examples/quickstart/topology.yaml"
)

// object is what every Kubernetes object has.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
}

type deployment struct {
	object `yaml:",inline"`
	Spec   struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds *int        `yaml:"terminationGracePeriodSeconds"`
				Containers                    []container `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports          []port `yaml:"ports"`
	StartupProbe   *probe `yaml:"startupProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

type port struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"` // a number or a port's name
	} `yaml:"httpGet"`
}

type scaledObject struct {
	object `yaml:",inline"`
	Spec   struct {
		ScaleTargetRef struct {
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicaCount *int `yaml:"minReplicaCount"`
		MaxReplicaCount *int `yaml:"maxReplicaCount"`
		Triggers        []struct {
			Type              string         `yaml:"type"`
			Metadata          map[string]any `yaml:"metadata"`
			AuthenticationRef struct {
				Name string `yaml:"name"`
			} `yaml:"authenticationRef"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

type secretTargetRef struct {
	Parameter string `yaml:"parameter"`
	Name      string `yaml:"name"`
	Key       string `yaml:"key"`
}

type triggerAuthentication struct {
	object `yaml:",inline"`
	Spec   struct {
		SecretTargetRef []secretTargetRef `yaml:"secretTargetRef"`
	} `yaml:"spec"`
}

// readManifests decodes every YAML document of the file, keyed by kind;
// it fails t on invalid YAML or a document that is not an object.
func readManifests(t *testing.T, path string) map[string][]*yaml.Node {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	docs := map[string][]*yaml.Node{}
	dec := yaml.NewDecoder(f)
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: invalid YAML: %v", path, err)
		}
		var obj object
		if err := doc.Decode(&obj); err != nil {
			t.Fatalf("%s:%d: %v", path, doc.Line, err)
		}
		if obj.APIVersion == "" || obj.Kind == "" || obj.Metadata.Name == "" {
			t.Fatalf("%s:%d: a document without apiVersion, kind or metadata.name", path, doc.Line)
		}
		docs[obj.Kind] = append(docs[obj.Kind], &doc)
	}
	return docs
}

// only decodes the one document of kind into v.
func only(t *testing.T, docs map[string][]*yaml.Node, kind string, v any) {
	t.Helper()
	if n := len(docs[kind]); n != 1 {
		t.Fatalf("%d %s documents, want 1", n, kind)
	}
	if err := docs[kind][0].Decode(v); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
}

// TestKubernetesManifests checks deploy/kubernetes against the daemon's
// defaults and the quickstart: probes on the right paths and port, a
// termination grace period longer than the drain, the broker URL from a
// Secret, and autoscaling on the quickstart's queues counting unacked
// jobs.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	var dep deployment
	only(t, readManifests(t, deploymentFile), "Deployment", &dep)
	if len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(dep.Spec.Template.Spec.Containers))
	}
	c := dep.Spec.Template.Spec.Containers[0]
	for k, v := range dep.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("the selector's %s=%s is not a label of the pod template", k, v)
		}
	}

	// The daemon's port and paths.
	portOf := func(p any) int {
		switch p := p.(type) {
		case int:
			return p
		case string:
			for _, cp := range c.Ports {
				if cp.Name == p {
					return cp.ContainerPort
				}
			}
		}
		return -1
	}
	if !slices.ContainsFunc(c.Ports, func(p port) bool { return p.ContainerPort == daemon.DefaultPort }) {
		t.Errorf("no container port %d (daemon.DefaultPort)", daemon.DefaultPort)
	}
	for _, pc := range []struct {
		name     string
		probe    *probe
		path     string
		optional bool
	}{
		{"livenessProbe", c.LivenessProbe, daemon.LivePath, false},
		{"readinessProbe", c.ReadinessProbe, daemon.ReadyPath, false},
		{"startupProbe", c.StartupProbe, daemon.LivePath, true},
	} {
		switch {
		case pc.probe == nil && pc.optional:
		case pc.probe == nil || pc.probe.HTTPGet == nil:
			t.Errorf("%s: missing, or not an httpGet", pc.name)
		default:
			if pc.probe.HTTPGet.Path != pc.path {
				t.Errorf("%s: path %q, want %q", pc.name, pc.probe.HTTPGet.Path, pc.path)
			}
			if got := portOf(pc.probe.HTTPGet.Port); got != daemon.DefaultPort {
				t.Errorf("%s: port %v (%d), want %d", pc.name, pc.probe.HTTPGet.Port, got, daemon.DefaultPort)
			}
		}
	}
	ann := dep.Spec.Template.Metadata.Annotations
	if p, ok := ann["prometheus.io/port"]; ok && p != strconv.Itoa(daemon.DefaultPort) {
		t.Errorf("prometheus.io/port %s, want %d", p, daemon.DefaultPort)
	}
	if p, ok := ann["prometheus.io/path"]; ok && p != daemon.MetricsPath {
		t.Errorf("prometheus.io/path %s, want %s", p, daemon.MetricsPath)
	}

	// The environment: the URL from a Secret; the drain deadline.
	env := map[string]string{}
	var secret string
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if strings.Contains(e.Value, "://") && strings.Contains(e.Value, "@") {
			t.Errorf("env %s holds a URL with credentials: use a Secret", e.Name)
		}
		if e.Name == daemon.EnvURL {
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("env %s must come from a secretKeyRef", e.Name)
			} else {
				secret = e.ValueFrom.SecretKeyRef.Name
			}
		}
	}
	if secret == "" {
		t.Errorf("no env %s", daemon.EnvURL)
	}
	drain := daemon.DefaultShutdownTimeout
	if v, ok := env[daemon.EnvShutdownTimeout]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("env %s=%q: %v", daemon.EnvShutdownTimeout, v, err)
		}
		drain = d
	}
	grace := dep.Spec.Template.Spec.TerminationGracePeriodSeconds
	deadlines := []time.Duration{daemon.DefaultShutdownTimeout}
	if drain != daemon.DefaultShutdownTimeout {
		deadlines = append(deadlines, drain)
	}
	for _, d := range deadlines {
		if need := d + daemon.ShutdownGrace; grace == nil || time.Duration(*grace)*time.Second <= need {
			t.Errorf("terminationGracePeriodSeconds %v: want more than %s (shutdown timeout %s + daemon.ShutdownGrace)", deref(grace), need, d)
		}
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	prefetch := flagValue(t, c.Args, "--prefetch")

	// KEDA: the worker's queues, counted with their unacked jobs.
	kedaDocs := readManifests(t, scaledObjectFile)
	var so scaledObject
	only(t, kedaDocs, "ScaledObject", &so)
	var auth triggerAuthentication
	only(t, kedaDocs, "TriggerAuthentication", &auth)
	if so.Spec.ScaleTargetRef.Name != dep.Metadata.Name {
		t.Errorf("the ScaledObject scales %q, want the Deployment %q", so.Spec.ScaleTargetRef.Name, dep.Metadata.Name)
	}
	if !slices.ContainsFunc(auth.Spec.SecretTargetRef, func(r secretTargetRef) bool { return r.Parameter == "host" && r.Name == secret }) {
		t.Errorf("the TriggerAuthentication does not take host from the Secret %q", secret)
	}
	topo, err := topology.Load(quickstartTopo)
	if err != nil {
		t.Fatal(err)
	}
	scaled := map[string]bool{}
	for i, tr := range so.Spec.Triggers {
		where := fmt.Sprintf("trigger %d", i+1)
		md := map[string]string{}
		for k, v := range tr.Metadata {
			s, ok := v.(string)
			if !ok {
				t.Errorf("%s: metadata %s is a %T; Kubernetes wants strings (quote it)", where, k, v)
			}
			md[k] = s
		}
		if tr.Type != "rabbitmq" {
			t.Errorf("%s: type %q, want rabbitmq", where, tr.Type)
		}
		// Only the management API counts unacked messages (KEDA reads its
		// "messages", ready + unacknowledged); AMQP counts ready ones.
		if md["protocol"] != "http" || md["mode"] != "QueueLength" {
			t.Errorf("%s: protocol %q, mode %q: want http and QueueLength, so that unacked jobs count", where, md["protocol"], md["mode"])
		}
		if v, ok := md["excludeUnacknowledged"]; ok && v != "false" {
			t.Errorf("%s: excludeUnacknowledged %q: long jobs would be scaled away", where, v)
		}
		if tr.AuthenticationRef.Name != auth.Metadata.Name {
			t.Errorf("%s: authenticationRef %q, want %q", where, tr.AuthenticationRef.Name, auth.Metadata.Name)
		}
		q, ok := topo.Queue(md["queueName"])
		switch {
		case !ok:
			t.Errorf("%s: queue %q is not in %s", where, md["queueName"], quickstartTopo)
		case q.Derived:
			t.Errorf("%s: queue %q is derived (dead letters or delays), not a work queue", where, q.Name)
		}
		scaled[md["queueName"]] = true
		if v, err := strconv.Atoi(md["value"]); err != nil || v < prefetch {
			t.Errorf("%s: value %q: want a number at least the prefetch %d, or the jobs replicas hold would alone scale them up", where, md["value"], prefetch)
		}
	}
	for _, q := range topo.WorkQueues() {
		if !scaled[q.Name] {
			t.Errorf("no trigger for the work queue %q", q.Name)
		}
	}
}

func deref(p *int) any {
	if p == nil {
		return "unset"
	}
	return *p
}

// flagValue returns the number following name in args.
func flagValue(t *testing.T, args []string, name string) int {
	t.Helper()
	i := slices.Index(args, name)
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("args %q: no %s", args, name)
	}
	n, err := strconv.Atoi(args[i+1])
	if err != nil {
		t.Fatalf("args: %s %q: %v", name, args[i+1], err)
	}
	return n
}
