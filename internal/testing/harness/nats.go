package harness

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/tidemark/tidemark/internal/testing/testrig"
)

// startNATS starts the NATS flavour Options.NATS asks for under Dir/nats
// and sets NATSURL.
func (h *Harness) startNATS(ctx context.Context) error {
	dir := filepath.Join(h.Opts.Dir, "nats")
	var err error
	switch h.Opts.NATS {
	case "", "embedded":
		if h.NATS, err = testrig.StartNATSServer(dir); err != nil {
			return err
		}
		h.NATSURL = h.NATS.URL
	case "process":
		if h.NATSNode, err = testrig.StartNATSProcess(ctx, dir); err != nil {
			return err
		}
		h.NATSURL = h.NATSNode.URL
	case "stock":
		if h.NATSNode, err = testrig.StartNATSProcess(ctx, dir); err != nil {
			return err
		}
		h.NATSURL = h.NATSNode.URL
	case "cluster":
		if h.NATSCluster, err = testrig.StartNATSClusterProcess(ctx, dir, 3); err != nil {
			return err
		}
		h.NATSURL = h.NATSCluster.URLs()
	default:
		return fmt.Errorf("harness: unknown NATS mode %q (want embedded, process, stock or cluster)", h.Opts.NATS)
	}
	return nil
}

// stopNATS stops whichever NATS runs.
func (h *Harness) stopNATS() {
	if h.NATS != nil {
		h.NATS.Shutdown()
	}
	if h.NATSNode != nil {
		_ = h.NATSNode.Stop()
	}
	if h.NATSCluster != nil {
		_ = h.NATSCluster.Stop()
	}
}
