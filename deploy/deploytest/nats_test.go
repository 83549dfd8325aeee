package deploytest

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// TestNATS_Config parses the reference configuration with nats-server's own
// parser and checks the choices docs/operations.md explains.
func TestNATS_Config(t *testing.T) {
	t.Setenv("SERVER_NAME", "nats-0")
	t.Setenv("TIDEMARK_NATS_PASSWORD", "test-only")
	opts, err := server.ProcessConfigFile(deployPath(t, "nats", "nats-server.conf"))
	if err != nil {
		t.Fatalf("nats-server.conf: %v", err)
	}
	if opts.ServerName != "nats-0" {
		t.Errorf("server_name = %q, want it from $SERVER_NAME", opts.ServerName)
	}
	if !opts.JetStream || opts.StoreDir == "" {
		t.Error("JetStream is not enabled with a store_dir")
	}
	if opts.SyncAlways {
		t.Error("sync_interval: always is set: it is only needed for feed-only deployments (--confirm-on=jetstream)")
	}
	if opts.Cluster.Name == "" || opts.Cluster.Port == 0 {
		t.Error("no cluster block")
	}
	hosts := map[string]bool{}
	for _, r := range opts.Routes {
		hosts[r.Hostname()] = true
	}
	if len(hosts) != 3 {
		t.Errorf("routes to %d servers, want 3 (R3)", len(hosts))
	}
	if opts.MaxPayload != 0 && opts.MaxPayload < 64<<10 {
		t.Errorf("max_payload %d < 64 KiB, the least capture accepts", opts.MaxPayload)
	}
	if len(opts.Users) == 0 || opts.Users[0].Password != "test-only" {
		t.Error("client authorization does not take its password from $TIDEMARK_NATS_PASSWORD")
	}

	tree := loadKustomization(t, deployPath(t, "nats"))
	sts := tree.find(t, "StatefulSet", "nats")
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != len(hosts) {
		t.Errorf("StatefulSet replicas %s, want %d", intOrUnset(sts.Spec.Replicas), len(hosts))
	}
	for h := range hosts {
		if !strings.HasPrefix(h, "nats-") || !strings.HasSuffix(h, "."+sts.Spec.ServiceName) {
			t.Errorf("route host %s is not a pod of StatefulSet nats behind Service %s", h, sts.Spec.ServiceName)
		}
	}
	if _, ok := tree.configMaps["nats-config"]["nats-server.conf"]; !ok {
		t.Error("nats-server.conf is not in the nats-config ConfigMap")
	}
	env := map[string]bool{}
	for _, e := range sts.pod().Spec.Containers[0].Env {
		env[e.Name] = true
	}
	if !env["SERVER_NAME"] || !env["TIDEMARK_NATS_PASSWORD"] {
		t.Error("the StatefulSet does not set SERVER_NAME and TIDEMARK_NATS_PASSWORD")
	}
	for _, r := range opts.Routes {
		if r.Port() != strconv.Itoa(opts.Cluster.Port) {
			t.Errorf("route %s: port is not the cluster port %d", r, opts.Cluster.Port)
		}
	}
}
