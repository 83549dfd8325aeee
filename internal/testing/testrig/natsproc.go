package testrig

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// natsStartTimeout bounds how long a nats-server process may take to start.
const natsStartTimeout = 60 * time.Second

// NATSNode is one real nats-server process with JetStream enabled.
type NATSNode struct {
	// Name is the server name (unique in a cluster).
	Name string
	// URL is the client URL ("nats://127.0.0.1:PORT").
	URL string
	// Port is the client port on 127.0.0.1.
	Port int
	// ClusterPort is the route port (0 for a standalone node).
	ClusterPort int
	// Dir holds the node's config, log and JetStream store.
	Dir string
	// ConfigPath is the generated server configuration file.
	ConfigPath string
	// LogPath is the server log file.
	LogPath string

	bin  string
	mu   sync.Mutex
	proc *testkit.Proc
}

// NATSOption adjusts a nats-server process's configuration.
type NATSOption func(*natsOptions)

type natsOptions struct {
	extra []string
}

// WithNATSConfig appends raw nats-server configuration lines.
func WithNATSConfig(lines ...string) NATSOption {
	return func(o *natsOptions) { o.extra = append(o.extra, lines...) }
}

// StartNATSProcess starts a standalone nats-server process (bin/nats-server,
// built from the tool pinned in go.mod if missing) with JetStream storing
// under dir; the caller stops it with Stop.
func StartNATSProcess(ctx context.Context, dir string, opts ...NATSOption) (*NATSNode, error) {
	var o natsOptions
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := natsServerBinary(ctx)
	if err != nil {
		return nil, err
	}
	port, err := testkit.FreePort()
	if err != nil {
		return nil, err
	}
	n, err := newNATSNode(bin, dir, "standalone", port, 0, nil, o.extra)
	if err != nil {
		return nil, err
	}
	if err := n.Start(); err != nil {
		return nil, err
	}
	return n, nil
}

func natsServerBinary(ctx context.Context) (string, error) {
	return toolBinary(ctx, "nats-server", "github.com/nats-io/nats-server/v2")
}

// newNATSNode writes the node's configuration; routes lists the cluster
// ports of all cluster members (nil for a standalone node).
func newNATSNode(bin, dir, name string, port, clusterPort int, routes []int, extra []string) (*NATSNode, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve nats dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "jetstream"), 0o755); err != nil {
		return nil, fmt.Errorf("create nats dir: %w", err)
	}
	n := &NATSNode{
		Name:        name,
		URL:         "nats://127.0.0.1:" + strconv.Itoa(port),
		Port:        port,
		ClusterPort: clusterPort,
		Dir:         dir,
		ConfigPath:  filepath.Join(dir, "nats-server.conf"),
		LogPath:     filepath.Join(dir, "nats-server.log"),
		bin:         bin,
	}
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %q\n", name)
	fmt.Fprintf(&b, "listen: \"127.0.0.1:%d\"\n", port)
	// Stock limits, as users run nats-server: a 1 MiB payload limit and the
	// JetStream limits the server derives from the machine. Only the store
	// directory is set.
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n}\n", filepath.Join(dir, "jetstream"))
	if clusterPort != 0 {
		b.WriteString("cluster {\n  name: \"tidemark\"\n")
		fmt.Fprintf(&b, "  listen: \"127.0.0.1:%d\"\n  routes: [\n", clusterPort)
		for _, rp := range routes {
			if rp != clusterPort {
				fmt.Fprintf(&b, "    \"nats-route://127.0.0.1:%d\"\n", rp)
			}
		}
		b.WriteString("  ]\n}\n")
	}
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	if err := os.WriteFile(n.ConfigPath, []byte(b.String()), 0o644); err != nil {
		return nil, fmt.Errorf("write nats config: %w", err)
	}
	return n, nil
}

// Start starts the node (again, after Kill or Stop) on the same ports and
// store and waits until it accepts client connections.
func (n *NATSNode) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if running(n.proc) {
		return fmt.Errorf("start nats-server %s: already running (pid %d)", n.Name, n.proc.PID())
	}
	cmd := exec.Command(n.bin, "-c", n.ConfigPath)
	cmd.Dir = n.Dir
	proc, err := testkit.Start("nats-server "+n.Name, cmd, n.LogPath)
	if err != nil {
		return err
	}
	n.proc = proc
	if err := n.waitConnectable(proc); err != nil {
		_ = proc.Stop(10*time.Second, syscall.SIGKILL)
		return startupError("nats-server "+n.Name, n.LogPath, err)
	}
	return nil
}

func (n *NATSNode) waitConnectable(proc *testkit.Proc) error {
	deadline := time.Now().Add(natsStartTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if exited, err := proc.Exited(); exited {
			return fmt.Errorf("nats-server exited: %v", err)
		}
		nc, err := nats.Connect(n.URL, nats.Timeout(2*time.Second), nats.NoReconnect())
		if err == nil {
			nc.Close()
			return nil
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nats-server not ready on port %d within %s (last: %v)", n.Port, natsStartTimeout, lastErr)
}

// PID returns the server's process id (0 when never started).
func (n *NATSNode) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return 0
	}
	return n.proc.PID()
}

// Running reports whether the process is running.
func (n *NATSNode) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return running(n.proc)
}

// Kill kills the server with SIGKILL and waits for it to exit.
func (n *NATSNode) Kill() error {
	return n.stopWith(syscall.SIGKILL)
}

// Stop shuts the server down gracefully (SIGTERM) and waits for it to exit.
func (n *NATSNode) Stop() error {
	return n.stopWith(syscall.SIGTERM)
}

func (n *NATSNode) stopWith(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return nil
	}
	if err := n.proc.Stop(30*time.Second, sig); err != nil {
		return fmt.Errorf("stop nats-server %s: %w", n.Name, err)
	}
	return nil
}

// waitJetStream waits until a JetStream stream with the given replica count
// can be created through url (the cluster has a meta leader and enough
// peers), then deletes it.
func waitJetStream(ctx context.Context, url string, replicas int) error {
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		return fmt.Errorf("connect %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	name := "TESTRIG_READY_" + randomHex(4)
	var lastErr error
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.CreateStream(cctx, jetstream.StreamConfig{
			Name: name, Subjects: []string{"_testrig.ready." + name}, Replicas: replicas, Storage: jetstream.MemoryStorage,
		})
		cancel()
		if err == nil {
			dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
			defer dcancel()
			if err := js.DeleteStream(dctx, name); err != nil {
				return fmt.Errorf("delete readiness stream: %w", err)
			}
			return nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("jetstream not ready (replicas %d): %w (last: %v)", replicas, ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
