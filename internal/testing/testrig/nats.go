package testrig

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is an embedded nats-server with JetStream enabled.
type NATS struct {
	// URL is the client URL ("nats://127.0.0.1:PORT").
	URL string
	// StoreDir is the JetStream store directory.
	StoreDir string
	// Server is the embedded server.
	Server *server.Server
}

// StartNATS starts an embedded JetStream server in a test temporary
// directory and shuts it down when the test ends.
func StartNATS(tb testing.TB) *NATS {
	tb.Helper()
	n, err := StartNATSServer(tb.TempDir())
	if err != nil {
		tb.Fatalf("testrig: %v", err)
	}
	tb.Cleanup(n.Shutdown)
	return n
}

// StartNATSServer starts an embedded JetStream server storing under dir on
// a free loopback port; the caller shuts it down with Shutdown.
func StartNATSServer(dir string) (*NATS, error) {
	store := filepath.Join(dir, "jetstream")
	if err := os.MkdirAll(store, 0o755); err != nil {
		return nil, fmt.Errorf("create jetstream dir: %w", err)
	}
	opts := &server.Options{
		ServerName: "testrig",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   store,
		NoSigs:     true,
		NoLog:      true,
		// Stock limits otherwise (a 1 MiB payload limit), as users run it.
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("create nats server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("start nats server: not ready within 30s")
	}
	return &NATS{URL: s.ClientURL(), StoreDir: store, Server: s}, nil
}

// Shutdown stops the server and waits for it to finish.
func (n *NATS) Shutdown() {
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}
