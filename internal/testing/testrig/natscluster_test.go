package testrig_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func TestNATSCluster_SurvivesLeaderKill(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := testrig.StartNATSCluster(t, 3)

	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "HA", Subjects: []string{"ha.>"}, Replicas: 3, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}

	acked := map[string]bool{}
	publish := func(i int) {
		t.Helper()
		id := "m" + strconv.Itoa(i)
		for {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.Publish(pctx, "ha.x", []byte(id), jetstream.WithMsgID(id))
			pcancel()
			if err == nil {
				acked[id] = true
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("publish %s: %v", id, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for i := range 50 {
		publish(i)
	}

	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	leader := c.Index(info.Cluster.Leader)
	if leader < 0 {
		t.Fatalf("stream leader %q is not a cluster node", info.Cluster.Leader)
	}
	oldPID := c.Nodes[leader].PID()
	if err := c.Kill(leader); err != nil {
		t.Fatalf("kill leader: %v", err)
	}
	if c.Nodes[leader].Running() {
		t.Fatalf("node %d (pid %d) still running after kill", leader, oldPID)
	}
	for i := 50; i < 100; i++ {
		publish(i)
	}

	for i, node := range c.Nodes {
		if i == leader {
			continue
		}
		got := readAll(ctx, t, node.URL, "HA")
		for id := range acked {
			if !got[id] {
				t.Fatalf("node %s: acknowledged message %s missing (have %d of %d)", node.Name, id, len(got), len(acked))
			}
		}
	}

	if err := c.Restart(leader); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if c.Nodes[leader].PID() == oldPID {
		t.Fatalf("restarted node kept pid %d", oldPID)
	}
	if err := c.WaitJetStream(ctx, 3); err != nil {
		t.Fatalf("cluster after restart: %v", err)
	}
}

// readAll reads every message of the stream through the node at url and
// returns the set of payloads.
func readAll(ctx context.Context, t *testing.T, url, streamName string) map[string]bool {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	var stream jetstream.Stream
	for {
		stream, err = js.Stream(ctx, streamName)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("stream via %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatalf("stream info via %s: %v", url, err)
	}
	got := map[string]bool{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		// Right after a leader is lost the survivors may answer 503 (JetStream
		// temporarily unavailable) until the new leader settles: retry that,
		// never a message the stream does not have.
		for err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			msg, err = stream.GetMsg(ctx, seq)
		}
		if err != nil {
			t.Fatalf("get seq %d via %s: %v", seq, url, err)
		}
		got[string(msg.Data)] = true
	}
	if len(got) == 0 {
		t.Fatalf("no messages via %s", url)
	}
	return got
}
