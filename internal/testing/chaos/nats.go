package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func init() {
	register(
		Scenario{
			Name:    "nats-restart-loses-tail",
			Injects: "with the archiver paused, kill -9 of the nats-server process and the tail of the stream's last message block cut off (acknowledged messages lost, as a crash without fsync can), then restart",
			Checks:  "I1-I6; I5: the archiver detects the hole and capture heals it from the slot",
			Short:   true,
			Run:     func(e *Env) error { return natsLosesTail(e, false) },
		},
		Scenario{
			Name: "nats-restart-loses-tail-at-bucket-boundary",
			Injects: "as nats-restart-loses-tail, timed so that the lost tail and the hole's repair straddle a minute boundary " +
				"(the archiver's commit-time bucket edge), so the refill crosses segment buckets",
			Checks: "I1-I6; I5: the hole is detected and healed; I6: no catalog entry's watermark covers a transaction a later entry archives",
			Run:    func(e *Env) error { return natsLosesTail(e, true) },
		},
		Scenario{
			Name:    "nats-kill9",
			Injects: "kill -9 of the single nats-server process under load (default fsync policy), restarted 1-3 s later, twice",
			Checks:  "I1-I6",
			Run:     natsKill9,
		},
		Scenario{
			Name:    "nats-cluster-leader-then-follower",
			Injects: "3-node JetStream cluster, stream with 3 replicas, under load: kill -9 of the stream's leader node; once a new leader is elected, kill -9 of the remaining follower (the stream loses quorum); both restarted 3-5 s later",
			Checks:  "I1-I6",
			Budget:  6 * time.Minute,
			Run:     natsClusterLeaderFollower,
		},
		Scenario{
			Name:    "nats-cluster-kill-all",
			Injects: "3-node JetStream cluster: kill -9 of every node at once under load (default fsync policy: acknowledged messages may vanish), all restarted 1-3 s later",
			Checks:  "I1-I6 (the archive must end complete, healed from the slot if JetStream lost messages)",
			Budget:  6 * time.Minute,
			Run:     natsClusterKillAll,
		},
	)
}

func natsLosesTail(e *Env, atBoundary bool) error {
	if err := e.Boot(Setup{NATS: "process"}); err != nil {
		return err
	}
	e.StartLoad(18*time.Second, 0)
	if err := e.Sleep(e.Between(3*time.Second, 5*time.Second)); err != nil {
		return err
	}
	if atBoundary {
		// The load must outlast the wait for the boundary and the repair.
		e.StartLoad(80*time.Second, 0)
		if err := e.sleepUntilBeforeMinute(5 * time.Second); err != nil {
			return err
		}
	}
	arch := e.Archivers[0]
	if err := arch.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	defer arch.Signal(syscall.SIGCONT)
	if err := e.Sleep(e.Between(2*time.Second, 3*time.Second)); err != nil {
		return err
	}
	e.Mark()
	node := e.H.NATSNode
	if err := node.Kill(); err != nil {
		return err
	}
	cut, err := cutStreamTail(node.Dir, "TIDEMARK", 0.3+0.4*e.Rand.Float64())
	if err != nil {
		return err
	}
	e.Note("cut_bytes=%d", cut)
	if err := node.Start(); err != nil {
		return err
	}
	if err := arch.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	return e.Finish(CheckOptions{ExpectHoles: true})
}

// sleepUntilBeforeMinute sleeps until d before the next whole minute
// (the next but one when that is too close).
func (e *Env) sleepUntilBeforeMinute(d time.Duration) error {
	now := time.Now()
	at := now.Truncate(time.Minute).Add(time.Minute - d)
	if at.Sub(now) < time.Second {
		at = at.Add(time.Minute)
	}
	return e.Sleep(time.Until(at))
}

// cutStreamTail removes the last fraction of the stream's newest message
// block (and the stream's cached state, so the server rebuilds it from the
// blocks), as if the server had crashed before writing them.
func cutStreamTail(natsDir, stream string, fraction float64) (int64, error) {
	var blocks []string
	var msgsDir string
	err := filepath.WalkDir(natsDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".blk") && strings.Contains(path, filepath.Join("streams", stream, "msgs")) {
			blocks = append(blocks, path)
			msgsDir = filepath.Dir(path)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("find message blocks: %w", err)
	}
	if len(blocks) == 0 {
		return 0, fmt.Errorf("no message blocks of stream %s under %s", stream, natsDir)
	}
	newest, newestIdx := "", -1
	for _, b := range blocks {
		var idx int
		if _, err := fmt.Sscanf(filepath.Base(b), "%d.blk", &idx); err == nil && idx > newestIdx {
			newest, newestIdx = b, idx
		}
	}
	st, err := os.Stat(newest)
	if err != nil {
		return 0, err
	}
	cut := int64(float64(st.Size()) * fraction)
	if err := os.Truncate(newest, st.Size()-cut); err != nil {
		return 0, fmt.Errorf("truncate %s: %w", newest, err)
	}
	_ = os.Remove(filepath.Join(msgsDir, "index.db"))
	return cut, nil
}

func natsKill9(e *Env) error {
	if err := e.Boot(Setup{NATS: "process"}); err != nil {
		return err
	}
	e.StartLoad(20*time.Second, 0)
	for range 2 {
		if err := e.Sleep(e.Between(3*time.Second, 5*time.Second)); err != nil {
			return err
		}
		e.Mark()
		if err := e.H.NATSNode.Kill(); err != nil {
			return err
		}
		if err := e.Sleep(e.Between(time.Second, 3*time.Second)); err != nil {
			return err
		}
		if err := e.H.NATSNode.Start(); err != nil {
			return err
		}
	}
	return e.Finish(CheckOptions{})
}

// streamPlacement returns the names of the stream's leader and followers.
func (e *Env) streamPlacement(stream string) (leader string, followers []string, err error) {
	nc, err := nats.Connect(e.H.NATSURL, nats.Timeout(3*time.Second))
	if err != nil {
		return "", nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithTimeout(e.Ctx, 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", nil, err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", nil, fmt.Errorf("stream %s has no leader", stream)
	}
	for _, r := range info.Cluster.Replicas {
		followers = append(followers, r.Name)
	}
	return info.Cluster.Leader, followers, nil
}

func natsClusterLeaderFollower(e *Env) error {
	if err := e.Boot(Setup{NATS: "cluster", CaptureArgs: []string{"--replicas", "3"}}); err != nil {
		return err
	}
	c := e.H.NATSCluster
	e.StartLoad(30*time.Second, 0)
	if err := e.Sleep(e.Between(3*time.Second, 5*time.Second)); err != nil {
		return err
	}
	leader, _, err := e.streamPlacement("TIDEMARK")
	if err != nil {
		return err
	}
	li := c.Index(leader)
	if li < 0 {
		return fmt.Errorf("unknown server %q", leader)
	}
	e.Mark()
	if err := c.Kill(li); err != nil {
		return err
	}
	// The two survivors elect a new leader; then the other one goes too,
	// and the stream has no quorum until both come back.
	var newLeader string
	deadline := time.Now().Add(30 * time.Second)
	for {
		if l, _, err := e.streamPlacement("TIDEMARK"); err == nil && l != leader {
			newLeader = l
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no new stream leader within 30 s of killing %s", leader)
		}
		if err := e.Sleep(250 * time.Millisecond); err != nil {
			return err
		}
	}
	if err := e.Sleep(e.Between(2*time.Second, 4*time.Second)); err != nil {
		return err
	}
	fi := -1
	for i, n := range c.Nodes {
		if i != li && n.Name != newLeader {
			fi = i
		}
	}
	e.Mark()
	e.Note("killed_leader=%s killed_follower=%s (new leader %s)", leader, c.Nodes[fi].Name, newLeader)
	if err := c.Kill(fi); err != nil {
		return err
	}
	if err := e.Sleep(e.Between(3*time.Second, 5*time.Second)); err != nil {
		return err
	}
	for _, i := range []int{li, fi} {
		if err := c.Restart(i); err != nil {
			return err
		}
	}
	wctx, cancel := context.WithTimeout(e.Ctx, 90*time.Second)
	err = c.WaitJetStream(wctx, 3)
	cancel()
	if err != nil {
		return err
	}
	return e.Finish(CheckOptions{SettleTimeout: 3 * time.Minute})
}

func natsClusterKillAll(e *Env) error {
	if err := e.Boot(Setup{NATS: "cluster", CaptureArgs: []string{"--replicas", "3"}}); err != nil {
		return err
	}
	c := e.H.NATSCluster
	e.StartLoad(20*time.Second, 0)
	if err := e.Sleep(e.Between(4*time.Second, 8*time.Second)); err != nil {
		return err
	}
	e.Mark()
	done := make(chan error, len(c.Nodes))
	for i := range c.Nodes {
		go func() { done <- c.Kill(i) }()
	}
	for range c.Nodes {
		if err := <-done; err != nil {
			return err
		}
	}
	if err := e.Sleep(e.Between(time.Second, 3*time.Second)); err != nil {
		return err
	}
	for i := range c.Nodes {
		if err := c.Restart(i); err != nil {
			return err
		}
	}
	wctx, cancel := context.WithTimeout(e.Ctx, 90*time.Second)
	err := c.WaitJetStream(wctx, 3)
	cancel()
	if err != nil {
		return err
	}
	return e.Finish(CheckOptions{SettleTimeout: 3 * time.Minute})
}
