package deploytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The subset of Kubernetes objects the checks read. Unknown fields are
// ignored; the manifests are validated for shape by `kubectl kustomize` and
// by the API server, and here for Tidemark's operational contract.

type objectMeta struct {
	Name         string            `yaml:"name"`
	GenerateName string            `yaml:"generateName"`
	Labels       map[string]string `yaml:"labels"`
	Annotations  map[string]string `yaml:"annotations"`
}

type keyRef struct {
	Name     string `yaml:"name"`
	Key      string `yaml:"key"`
	Optional *bool  `yaml:"optional"`
}

type envVar struct {
	Name      string  `yaml:"name"`
	Value     *string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef     *keyRef        `yaml:"secretKeyRef"`
		ConfigMapKeyRef  *keyRef        `yaml:"configMapKeyRef"`
		FieldRef         map[string]any `yaml:"fieldRef"`
		ResourceFieldRef map[string]any `yaml:"resourceFieldRef"`
	} `yaml:"valueFrom"`
}

type envFromSource struct {
	ConfigMapRef *keyRef `yaml:"configMapRef"`
	SecretRef    *keyRef `yaml:"secretRef"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name    string          `yaml:"name"`
	Image   string          `yaml:"image"`
	Command []string        `yaml:"command"`
	Args    []string        `yaml:"args"`
	Env     []envVar        `yaml:"env"`
	EnvFrom []envFromSource `yaml:"envFrom"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	StartupProbe   *probe `yaml:"startupProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Capabilities             *struct {
			Drop []string `yaml:"drop"`
			Add  []string `yaml:"add"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type podSpec struct {
	ServiceAccountName           string      `yaml:"serviceAccountName"`
	AutomountServiceAccountToken *bool       `yaml:"automountServiceAccountToken"`
	RestartPolicy                string      `yaml:"restartPolicy"`
	Containers                   []container `yaml:"containers"`
	InitContainers               []container `yaml:"initContainers"`
	SecurityContext              *struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	Volumes []struct {
		Name string `yaml:"name"`
	} `yaml:"volumes"`
}

type podTemplate struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     podSpec    `yaml:"spec"`
}

type podFailurePolicy struct {
	Rules []struct {
		Action      string `yaml:"action"`
		OnExitCodes *struct {
			ContainerName string `yaml:"containerName"`
			Operator      string `yaml:"operator"`
			Values        []int  `yaml:"values"`
		} `yaml:"onExitCodes"`
	} `yaml:"rules"`
}

type jobSpec struct {
	BackoffLimit     *int              `yaml:"backoffLimit"`
	PodFailurePolicy *podFailurePolicy `yaml:"podFailurePolicy"`
	Template         podTemplate       `yaml:"template"`
}

type servicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort any    `yaml:"targetPort"`
}

// object is any Kubernetes object of the manifests.
type object struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       struct {
		// Deployment, StatefulSet, Job
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		Selector map[string]any `yaml:"selector"`
		Template podTemplate    `yaml:"template"`
		// Job
		BackoffLimit     *int              `yaml:"backoffLimit"`
		PodFailurePolicy *podFailurePolicy `yaml:"podFailurePolicy"`
		// CronJob
		Schedule          string `yaml:"schedule"`
		ConcurrencyPolicy string `yaml:"concurrencyPolicy"`
		JobTemplate       struct {
			Spec jobSpec `yaml:"spec"`
		} `yaml:"jobTemplate"`
		// Service
		ClusterIP                string        `yaml:"clusterIP"`
		PublishNotReadyAddresses bool          `yaml:"publishNotReadyAddresses"`
		Ports                    []servicePort `yaml:"ports"`
		// StatefulSet
		ServiceName string `yaml:"serviceName"`
	} `yaml:"spec"`
}

// pod returns the pod template of a workload, or nil for other kinds.
func (o *object) pod() *podTemplate {
	switch o.Kind {
	case "Deployment", "StatefulSet", "DaemonSet", "Job":
		return &o.Spec.Template
	case "CronJob":
		return &o.Spec.JobTemplate.Spec.Template
	}
	return nil
}

// id names the object in messages.
func (o *object) id() string {
	name := o.Metadata.Name
	if name == "" {
		name = o.Metadata.GenerateName + "*"
	}
	return o.Kind + "/" + name
}

// kustomization is the subset of kustomization.yaml the checks read.
type kustomization struct {
	Namespace          string      `yaml:"namespace"`
	Resources          []string    `yaml:"resources"`
	ConfigMapGenerator []generator `yaml:"configMapGenerator"`
	SecretGenerator    []generator `yaml:"secretGenerator"`
	Images             []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
	Replicas []struct {
		Name  string `yaml:"name"`
		Count int    `yaml:"count"`
	} `yaml:"replicas"`
	Patches []struct {
		Path   string `yaml:"path"`
		Patch  string `yaml:"patch"`
		Target *struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"target"`
	} `yaml:"patches"`
}

type generator struct {
	Name     string   `yaml:"name"`
	Behavior string   `yaml:"behavior"`
	Envs     []string `yaml:"envs"`
	Files    []string `yaml:"files"`
	Literals []string `yaml:"literals"`
}

// kustomizeTree is a kustomization and everything it includes, resolved
// without kustomize: objects of resource files (recursively through
// resource directories) and the ConfigMaps its generators make.
type kustomizeTree struct {
	dir        string
	k          kustomization
	objects    []object
	configMaps map[string]map[string]string // generated name → data
}

// loadKustomization reads dir/kustomization.yaml and what it includes,
// failing the test on a resource or generator input that does not exist.
func loadKustomization(tb testing.TB, dir string) *kustomizeTree {
	tb.Helper()
	path := filepath.Join(dir, "kustomization.yaml")
	docs := yamlDocs[kustomization](tb, path)
	if len(docs) != 1 {
		tb.Fatalf("%s: want one document, got %d", rel(tb, path), len(docs))
	}
	t := &kustomizeTree{dir: dir, k: docs[0], configMaps: map[string]map[string]string{}}
	for _, r := range t.k.Resources {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			tb.Errorf("%s: resource %s does not exist", rel(tb, path), r)
			continue
		}
		if st.IsDir() {
			sub := loadKustomization(tb, p)
			t.objects = append(t.objects, sub.objects...)
			for name, data := range sub.configMaps {
				t.configMaps[name] = data
			}
			continue
		}
		t.objects = append(t.objects, yamlDocs[object](tb, p)...)
	}
	for _, g := range t.k.ConfigMapGenerator {
		data := t.configMaps[g.Name]
		if data == nil || g.Behavior == "replace" {
			data = map[string]string{}
		}
		for _, e := range g.Envs {
			p := filepath.Join(dir, e)
			if _, err := os.Stat(p); err != nil {
				tb.Errorf("%s: configMapGenerator %s: env file %s does not exist", rel(tb, path), g.Name, e)
				continue
			}
			_, values := readEnvFile(tb, p)
			for k, v := range values {
				data[k] = v
			}
		}
		for _, f := range g.Files {
			p := filepath.Join(dir, f)
			content, err := os.ReadFile(p)
			if err != nil {
				tb.Errorf("%s: configMapGenerator %s: file %s does not exist", rel(tb, path), g.Name, f)
				continue
			}
			data[filepath.Base(f)] = string(content)
		}
		for _, l := range g.Literals {
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				tb.Errorf("%s: configMapGenerator %s: literal %q is not KEY=VALUE", rel(tb, path), g.Name, l)
				continue
			}
			data[k] = v
		}
		t.configMaps[g.Name] = data
	}
	for _, p := range t.k.Patches {
		if p.Path != "" {
			if _, err := os.Stat(filepath.Join(dir, p.Path)); err != nil {
				tb.Errorf("%s: patch %s does not exist", rel(tb, path), p.Path)
			}
		}
	}
	return t
}

// find returns the object of that kind and name, failing the test if absent.
func (t *kustomizeTree) find(tb testing.TB, kind, name string) *object {
	tb.Helper()
	for i := range t.objects {
		if t.objects[i].Kind == kind && t.objects[i].Metadata.Name == name {
			return &t.objects[i]
		}
	}
	tb.Fatalf("%s: no %s/%s", rel(tb, t.dir), kind, name)
	return nil
}

// env returns the environment a container gets from its ConfigMaps (envFrom
// and configMapKeyRef) and literal values; secret references map to "".
func (t *kustomizeTree) env(tb testing.TB, c *container) map[string]string {
	tb.Helper()
	out := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			data, ok := t.configMaps[ef.ConfigMapRef.Name]
			if !ok {
				tb.Errorf("container %s: envFrom ConfigMap %s is not generated by %s", c.Name, ef.ConfigMapRef.Name, rel(tb, t.dir))
			}
			for k, v := range data {
				out[k] = v
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.Value != nil:
			out[e.Name] = *e.Value
		case e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			data, ok := t.configMaps[ref.Name]
			if !ok {
				tb.Errorf("container %s: env %s: ConfigMap %s is not generated by %s", c.Name, e.Name, ref.Name, rel(tb, t.dir))
			}
			v, ok := data[ref.Key]
			if !ok {
				tb.Errorf("container %s: env %s: ConfigMap %s has no key %s", c.Name, e.Name, ref.Name, ref.Key)
			}
			out[e.Name] = v
		default:
			out[e.Name] = ""
		}
	}
	return out
}

// kustomizationDirs lists every directory under deploy/ with a kustomization.yaml.
func kustomizationDirs(tb testing.TB) []string {
	tb.Helper()
	var dirs []string
	for _, f := range manifestFiles(tb) {
		if filepath.Base(f) == "kustomization.yaml" {
			dirs = append(dirs, filepath.Dir(f))
		}
	}
	if len(dirs) == 0 {
		tb.Fatal("no kustomization.yaml under deploy/")
	}
	return dirs
}
