package testrig

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/testing/testkit"
)

// NATSCluster is a JetStream cluster of real nats-server processes on
// loopback.
type NATSCluster struct {
	// Nodes are the cluster members, named n0, n1, ….
	Nodes []*NATSNode
}

// StartNATSCluster starts an n-node JetStream cluster in a test temporary
// directory, waits until a stream with n replicas can be created, and stops
// every node when the test ends.
func StartNATSCluster(tb testing.TB, n int) *NATSCluster {
	tb.Helper()
	c, err := StartNATSClusterProcess(context.Background(), tb.TempDir(), n)
	if err != nil {
		tb.Fatalf("testrig: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Errorf("testrig: %v", err)
		}
	})
	return c
}

// StartNATSClusterProcess starts an n-node cluster with one directory per
// node under dir; the caller stops it with Stop.
func StartNATSClusterProcess(ctx context.Context, dir string, n int) (*NATSCluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("start nats cluster: need at least one node, got %d", n)
	}
	bin, err := natsServerBinary(ctx)
	if err != nil {
		return nil, err
	}
	ports, err := testkit.FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	routes := ports[n:]
	c := &NATSCluster{}
	for i := range n {
		name := fmt.Sprintf("n%d", i)
		node, err := newNATSNode(bin, filepath.Join(dir, name), name, ports[i], routes[i], routes, nil)
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, node)
	}
	for _, node := range c.Nodes {
		if err := node.Start(); err != nil {
			_ = c.Stop()
			return nil, err
		}
	}
	if err := waitJetStream(ctx, c.URLs(), n); err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("start nats cluster: %w\n%s", err, c.logTails())
	}
	return c, nil
}

// URLs returns the client URLs of all nodes, comma-separated (the form
// nats.Connect accepts).
func (c *NATSCluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL
	}
	return strings.Join(urls, ",")
}

// Kill kills node i with SIGKILL.
func (c *NATSCluster) Kill(i int) error {
	return c.Nodes[i].Kill()
}

// Restart starts node i again (after Kill) with its store intact.
func (c *NATSCluster) Restart(i int) error {
	return c.Nodes[i].Start()
}

// WaitJetStream waits until a stream with the given number of replicas can
// be created, e.g. after Restart once the node must be a full peer again.
func (c *NATSCluster) WaitJetStream(ctx context.Context, replicas int) error {
	return waitJetStream(ctx, c.URLs(), replicas)
}

// Index returns the index of the node with the given server name, or -1.
func (c *NATSCluster) Index(name string) int {
	for i, n := range c.Nodes {
		if n.Name == name {
			return i
		}
	}
	return -1
}

// Stop stops every node.
func (c *NATSCluster) Stop() error {
	var errs []error
	for _, n := range c.Nodes {
		errs = append(errs, n.Stop())
	}
	return errors.Join(errs...)
}

func (c *NATSCluster) logTails() string {
	var b strings.Builder
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "--- %s (tail) ---\n%s\n", n.LogPath, fileTail(n.LogPath, 15))
	}
	return b.String()
}
