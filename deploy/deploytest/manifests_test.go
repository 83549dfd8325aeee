package deploytest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestManifests_Parse(t *testing.T) {
	files := manifestFiles(t)
	if len(files) < 10 {
		t.Fatalf("found only %d manifests under deploy/", len(files))
	}
	for _, f := range files {
		t.Run(rel(t, f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Ext(f) == ".json" {
				var v any
				if err := json.Unmarshal(data, &v); err != nil {
					t.Fatalf("parse: %v", err)
				}
				return
			}
			docs, err := decodeYAMLDocs[any](data)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if len(docs) == 0 {
				t.Fatal("no YAML document")
			}
			for i, d := range docs {
				if _, ok := d.(map[string]any); !ok {
					t.Errorf("document %d is a %T, want a mapping", i, d)
				}
			}
		})
	}
}

func TestKustomization_ResourcesExist(t *testing.T) {
	for _, dir := range kustomizationDirs(t) {
		t.Run(rel(t, dir), func(t *testing.T) {
			tree := loadKustomization(t, dir)
			if len(tree.objects) == 0 {
				t.Error("no objects")
			}
			for _, o := range tree.objects {
				if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
					t.Errorf("object without apiVersion, kind or name: %+v", o.Metadata)
				}
			}
		})
	}
}

// base loads deploy/kubernetes/base.
func base(tb testing.TB) *kustomizeTree {
	tb.Helper()
	return loadKustomization(tb, deployPath(tb, "kubernetes", "base"))
}

func TestCaptureDeployment_Contract(t *testing.T) {
	tree := base(t)
	d := tree.find(t, "Deployment", "tidemark-capture")
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas = %s, want 1 (the slot admits one reader)", intOrUnset(d.Spec.Replicas))
	}
	if d.Spec.Strategy.Type != "Recreate" {
		t.Errorf("strategy = %q, want Recreate", d.Spec.Strategy.Type)
	}
	checkServedProgram(t, tree, d, "capture", "TIDEMARK_CAPTURE_HTTP")
	env := tree.env(t, &d.Spec.Template.Spec.Containers[0])
	if got := env["TIDEMARK_CAPTURE_CONFIRM_ON"]; got != "archive" {
		t.Errorf("TIDEMARK_CAPTURE_CONFIRM_ON = %q, want archive (the slot holds WAL until events are archived)", got)
	}
	if got := env["TIDEMARK_CAPTURE_REPLICAS"]; got != "3" {
		t.Errorf("TIDEMARK_CAPTURE_REPLICAS = %q, want 3 (the reference NATS cluster is R3)", got)
	}
}

func TestArchiverDeployment_Contract(t *testing.T) {
	tree := base(t)
	d := tree.find(t, "Deployment", "tidemark-archiver")
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %s, want 2 (one writer, one standby)", intOrUnset(d.Spec.Replicas))
	}
	checkServedProgram(t, tree, d, "archiver", "TIDEMARK_ARCHIVER_HTTP")
	env := tree.env(t, &d.Spec.Template.Spec.Containers[0])
	if store := env["TIDEMARK_ARCHIVER_STORE"]; !strings.HasPrefix(store, "s3://") {
		t.Errorf("TIDEMARK_ARCHIVER_STORE = %q, want an s3:// URL", store)
	}
	pdb := tree.find(t, "PodDisruptionBudget", "tidemark-archiver")
	if pdb.Spec.Selector == nil {
		t.Error("PodDisruptionBudget without selector")
	}
}

// intOrUnset prints an optional integer.
func intOrUnset(p *int) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(*p)
}

// checkServedProgram checks a long-running program's container: the command,
// probes on /livez and /readyz at the named port, the --http address from the
// environment on that port, and a metrics Service with scrape annotations.
func checkServedProgram(t *testing.T, tree *kustomizeTree, d *object, program, httpEnv string) {
	t.Helper()
	pod := d.pod()
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", d.id(), len(pod.Spec.Containers))
	}
	c := &pod.Spec.Containers[0]
	if want := []string{"/usr/local/bin/" + program}; !slices.Equal(c.Command, want) {
		t.Errorf("%s: command %q, want %q", d.id(), c.Command, want)
	}
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Errorf("%s: args %q, want run", d.id(), c.Args)
	}
	port := 0
	for _, p := range c.Ports {
		if p.Name == "http" {
			port = p.ContainerPort
		}
	}
	if port == 0 {
		t.Fatalf("%s: no container port named http", d.id())
	}
	for _, pr := range []struct {
		name string
		p    *probe
		path string
	}{{"livenessProbe", c.LivenessProbe, "/livez"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("%s: no %s with httpGet", d.id(), pr.name)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path {
			t.Errorf("%s: %s path %q, want %q", d.id(), pr.name, pr.p.HTTPGet.Path, pr.path)
		}
		if pr.p.HTTPGet.Port != "http" && pr.p.HTTPGet.Port != port {
			t.Errorf("%s: %s port %v, want http", d.id(), pr.name, pr.p.HTTPGet.Port)
		}
	}
	env := tree.env(t, c)
	addr := env[httpEnv]
	if addr != "0.0.0.0:"+strconv.Itoa(port) && addr != ":"+strconv.Itoa(port) {
		t.Errorf("%s: %s = %q, want 0.0.0.0:%d (the container port, reachable by the kubelet)", d.id(), httpEnv, addr, port)
	}
	svc := tree.find(t, "Service", d.Metadata.Name)
	a := svc.Metadata.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != strconv.Itoa(port) || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("%s: scrape annotations %v, want scrape=true port=%d path=/metrics", svc.id(), a, port)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("%s: publishNotReadyAddresses is false: a waiting capture or a standby archiver would not be scraped", svc.id())
	}
	for k, v := range svc.Spec.Selector {
		if pod.Metadata.Labels[k] != v {
			t.Errorf("%s: selector %s=%v does not match the pod labels %v", svc.id(), k, v, pod.Metadata.Labels)
		}
	}
	if len(svc.Spec.Selector) == 0 {
		t.Errorf("%s: empty selector", svc.id())
	}
}

func TestVerifyCronJob_Contract(t *testing.T) {
	tree := base(t)
	cj := tree.find(t, "CronJob", "tidemark-verify")
	if cj.Spec.Schedule == "" || cj.Spec.ConcurrencyPolicy != "Forbid" {
		t.Errorf("schedule %q, concurrencyPolicy %q: want a schedule and Forbid", cj.Spec.Schedule, cj.Spec.ConcurrencyPolicy)
	}
	pod := cj.pod()
	if pod.Spec.RestartPolicy != "Never" {
		t.Errorf("restartPolicy %q, want Never (required by podFailurePolicy)", pod.Spec.RestartPolicy)
	}
	c := pod.Spec.Containers[0]
	if !slices.Equal(c.Command, []string{"/usr/local/bin/restorer"}) || len(c.Args) == 0 || c.Args[0] != "verify" {
		t.Errorf("command %q args %q, want restorer verify", c.Command, c.Args)
	}
	for _, code := range []int{3, 4} {
		if !failsJobOnExit(cj.Spec.JobTemplate.Spec.PodFailurePolicy, c.Name, code) {
			t.Errorf("exit code %d (verification found problems or warnings) does not fail the Job at once", code)
		}
	}
	if env := tree.env(t, &c); !strings.HasPrefix(env["TIDEMARK_RESTORER_STORE"], "s3://") {
		t.Errorf("TIDEMARK_RESTORER_STORE = %q, want the archive's s3:// URL", env["TIDEMARK_RESTORER_STORE"])
	}
}

// failsJobOnExit reports whether the policy fails the Job when container
// exits with code.
func failsJobOnExit(p *podFailurePolicy, containerName string, code int) bool {
	if p == nil {
		return false
	}
	for _, r := range p.Rules {
		if r.Action == "FailJob" && r.OnExitCodes != nil && r.OnExitCodes.Operator == "In" &&
			(r.OnExitCodes.ContainerName == "" || r.OnExitCodes.ContainerName == containerName) &&
			slices.Contains(r.OnExitCodes.Values, code) {
			return true
		}
	}
	return false
}

// TestDrillCronJob_Contract: the drill CronJob runs restorer drill, fails
// at once on the exit codes that are not transient (2 usage, 3 a step
// failed, 4 warnings), and takes the scratch server from a Secret.
func TestDrillCronJob_Contract(t *testing.T) {
	cj := base(t).find(t, "CronJob", "tidemark-drill")
	pod := cj.pod()
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if !slices.Equal(c.Command, []string{"/usr/local/bin/restorer"}) || len(c.Args) == 0 || c.Args[0] != "drill" {
		t.Errorf("command %q args %q, want restorer drill", c.Command, c.Args)
	}
	for _, code := range []int{2, 3, 4} {
		if !failsJobOnExit(cj.Spec.JobTemplate.Spec.PodFailurePolicy, c.Name, code) {
			t.Errorf("exit code %d is retried; it cannot be transient", code)
		}
	}
	scratch := false
	for _, e := range c.Env {
		if e.Name == "TIDEMARK_RESTORER_SCRATCH" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "tidemark-drill" {
			scratch = true
		}
	}
	if !scratch {
		t.Error("TIDEMARK_RESTORER_SCRATCH does not come from the tidemark-drill Secret")
	}
}

func TestRestoreJob_Template(t *testing.T) {
	path := deployPath(t, "kubernetes", "jobs", "restore-job.yaml")
	docs := yamlDocs[object](t, path)
	if len(docs) != 1 || docs[0].Kind != "Job" {
		t.Fatalf("%s: want one Job", rel(t, path))
	}
	job := docs[0]
	if job.Metadata.GenerateName == "" {
		t.Error("no generateName: `kubectl create -f` could not run the template twice")
	}
	c := job.pod().Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "restore" || !slices.Contains(c.Args, "--to") {
		t.Errorf("args %q, want restore --to …", c.Args)
	}
	for _, code := range []int{2, 3, 10, 12} {
		if !failsJobOnExit(job.Spec.PodFailurePolicy, c.Name, code) {
			t.Errorf("exit code %d is retried; it cannot be transient", code)
		}
	}
	// A Job in a kustomization would run on every apply.
	for _, dir := range kustomizationDirs(t) {
		for _, o := range loadKustomization(t, dir).objects {
			if o.Kind == "Job" {
				t.Errorf("%s includes %s", rel(t, dir), o.id())
			}
		}
	}
}

// workloads returns every object with a pod template under deploy/kubernetes
// and deploy/nats.
func workloads(t *testing.T) []object {
	var out []object
	for _, f := range manifestFiles(t) {
		r := rel(t, f)
		if !strings.HasPrefix(r, filepath.Join("deploy", "kubernetes")) && !strings.HasPrefix(r, filepath.Join("deploy", "nats")) {
			continue
		}
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		for _, o := range yamlDocs[object](t, f) {
			if o.pod() != nil {
				out = append(out, o)
			}
		}
	}
	if len(out) < 5 {
		t.Fatalf("found %d workloads, want capture, archiver, verify, restore and nats", len(out))
	}
	return out
}

func TestWorkloads_Hardened(t *testing.T) {
	for _, o := range workloads(t) {
		t.Run(o.id(), func(t *testing.T) {
			pod := o.pod()
			if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
				t.Error("automountServiceAccountToken is not false (nothing here talks to the Kubernetes API)")
			}
			podNonRoot := pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.RunAsNonRoot != nil && *pod.Spec.SecurityContext.RunAsNonRoot
			for _, c := range append(slices.Clone(pod.Spec.Containers), pod.Spec.InitContainers...) {
				sc := c.SecurityContext
				if sc == nil {
					t.Errorf("container %s: no securityContext", c.Name)
					continue
				}
				if !podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
					t.Errorf("container %s: runAsNonRoot not set", c.Name)
				}
				if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("container %s: readOnlyRootFilesystem not true", c.Name)
				}
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("container %s: allowPrivilegeEscalation not false", c.Name)
				}
				if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || len(sc.Capabilities.Add) > 0 {
					t.Errorf("container %s: capabilities must drop ALL and add none", c.Name)
				}
				for _, r := range []string{"cpu", "memory"} {
					if c.Resources.Requests[r] == "" {
						t.Errorf("container %s: no %s request", c.Name, r)
					}
					if c.Resources.Limits[r] == "" {
						t.Errorf("container %s: no %s limit", c.Name, r)
					}
				}
				if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
					t.Errorf("container %s: image %q has no pinned tag", c.Name, c.Image)
				}
			}
		})
	}
}

// secretName matches environment variable and configuration key names that
// hold secrets.
var secretName = regexp.MustCompile(`(?i)PASSWORD|PASSWD|SECRET|KEY|TOKEN|CREDENTIAL|CREDS`)

// urlWithPassword matches a URL carrying a password (scheme://user:pass@host).
var urlWithPassword = regexp.MustCompile(`[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@`)

func TestWorkloads_NoInlineSecrets(t *testing.T) {
	for _, o := range workloads(t) {
		t.Run(o.id(), func(t *testing.T) {
			pod := o.pod()
			for _, c := range pod.Spec.Containers {
				for _, e := range c.Env {
					switch {
					case e.Value != nil && secretName.MatchString(e.Name):
						t.Errorf("container %s: %s has a literal value; use valueFrom.secretKeyRef", c.Name, e.Name)
					case e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil && secretName.MatchString(e.Name):
						t.Errorf("container %s: %s comes from a ConfigMap; use a Secret", c.Name, e.Name)
					case e.Value != nil && urlWithPassword.MatchString(*e.Value):
						t.Errorf("container %s: %s holds a URL with a password", c.Name, e.Name)
					}
				}
				for _, arg := range append(slices.Clone(c.Command), c.Args...) {
					if urlWithPassword.MatchString(arg) || strings.Contains(strings.ToLower(arg), "password") {
						t.Errorf("container %s: argument %q carries a secret; arguments are visible in ps and the API", c.Name, arg)
					}
				}
			}
		})
	}
	// Non-secret configuration only in the generated ConfigMaps.
	for _, dir := range kustomizationDirs(t) {
		tree := loadKustomization(t, dir)
		for name, data := range tree.configMaps {
			for k, v := range data {
				if strings.HasSuffix(k, ".conf") {
					continue // a whole config file: its secrets are $VARIABLES (TestNATS_Config)
				}
				if secretName.MatchString(k) || urlWithPassword.MatchString(v) {
					t.Errorf("%s: ConfigMap %s key %s looks like a secret", rel(t, dir), name, k)
				}
			}
		}
		if len(tree.k.SecretGenerator) > 0 {
			t.Errorf("%s: secretGenerator would keep secret values in the repository", rel(t, dir))
		}
	}
}

func TestWorkloads_SecretsDocumented(t *testing.T) {
	ops, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "operations.md"))
	if err != nil {
		t.Fatalf("read docs/operations.md: %v", err)
	}
	for _, o := range workloads(t) {
		for _, c := range o.pod().Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				if !strings.Contains(string(ops), ref.Name) {
					t.Errorf("%s: Secret %s (key %s) is not described in docs/operations.md", o.id(), ref.Name, ref.Key)
				}
			}
		}
	}
}

func TestOverlayExample_Patches(t *testing.T) {
	dir := deployPath(t, "kubernetes", "overlays", "example")
	tree := loadKustomization(t, dir)
	if tree.k.Namespace == "" {
		t.Error("no namespace")
	}
	retagged := false
	for _, img := range tree.k.Images {
		if img.Name == "tidemark" && img.NewTag != "" && img.NewTag != "latest" {
			retagged = true
		}
	}
	if !retagged {
		t.Error("the overlay does not pin the tidemark image tag")
	}
	if store := tree.configMaps["tidemark-store"]["url"]; !strings.HasPrefix(store, "s3://") ||
		store == base(t).configMaps["tidemark-store"]["url"] {
		t.Errorf("tidemark-store url = %q, want the overlay's own s3:// bucket", store)
	}
	for _, r := range tree.k.Replicas {
		tree.find(t, "Deployment", r.Name)
		if r.Name == "tidemark-capture" && r.Count != 1 {
			t.Errorf("capture replicas %d: the slot admits one reader", r.Count)
		}
	}
	for _, p := range tree.k.Patches {
		if p.Target != nil {
			tree.find(t, p.Target.Kind, p.Target.Name)
		}
	}
	for _, g := range tree.k.ConfigMapGenerator {
		if g.Behavior != "merge" && g.Behavior != "replace" {
			t.Errorf("ConfigMap %s: behavior %q; an overlay must merge into or replace the base's", g.Name, g.Behavior)
		}
	}
}
