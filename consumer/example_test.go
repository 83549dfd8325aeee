package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/consumer"
)

// A projection rebuilt from the beginning of time and kept up to date:
// order totals per stream. Run reads the archive from the first event, then
// follows the live feed without a gap or a duplicate, and saves the
// position after each transaction in a file, so a restarted process
// continues where it stopped. docs/consumers.md walks through it. Set
// TIDEMARK_STORE and NATS_URL to run it against a real deployment.
func Example_projection() {
	store, url := os.Getenv("TIDEMARK_STORE"), os.Getenv("NATS_URL")
	if store == "" || url == "" {
		return
	}
	nc, err := nats.Connect(url)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	totals := map[string]float64{} // the projection: stream id -> sum of "total"
	apply := func(_ context.Context, t *consumer.Transaction) error {
		for _, e := range t.Events {
			var row struct {
				EventData struct {
					Total float64 `json:"total"`
				} `json:"event_data"`
			}
			if err := json.Unmarshal(e.Row, &row); err != nil {
				return err
			}
			totals[e.StreamID] += row.EventData.Total
		}
		return nil
	}
	cfg := consumer.Config{
		StoreURL:       store,
		DecryptionKeys: os.Getenv("TIDEMARK_ENCRYPTION_KEYS"), // "" for a plaintext archive
		NATS:           nc,
		Filter:         consumer.Filter{StreamPrefixes: []string{"order-"}, EventTypes: []string{"OrderPlaced"}},
	}
	// A real projection keeps its position in the same transaction as its
	// state; a file is enough when the state is rebuilt on every start.
	pos := consumer.FileStore{Path: "orders.position"}
	if err := consumer.Run(context.Background(), cfg, consumer.FromBeginning(), pos, apply); err != nil {
		log.Fatal(err) // consumer.ErrSeam: the feed and the archive could not be joined
	}
}

// Reading events one at a time; the cursor ends at the archive's
// watermark because it has no NATS connection and does not follow.
func ExampleCursor_Next() {
	store := os.Getenv("TIDEMARK_STORE")
	if store == "" {
		return
	}
	ctx := context.Background()
	cur, err := consumer.Open(ctx, consumer.Config{StoreURL: store}, consumer.FromBeginning())
	if err != nil {
		log.Fatal(err)
	}
	defer cur.Close()
	for {
		e, err := cur.Next(ctx)
		if err != nil {
			break // io.EOF at the watermark
		}
		fmt.Println(e.Position, e.CommitTime, e.StreamID, e.StreamVersion, e.EventType)
	}
}

// A Position's JSON form is what FileStore keeps; positions order the
// whole history.
func ExamplePosition() {
	a := consumer.Position{Archive: "3f2c0a9e5b7d1c44", End: 0x16B37400F8, Index: 1}
	b := consumer.Position{Archive: "3f2c0a9e5b7d1c44", End: 0x16B37400F8, Index: 2}
	j, _ := json.Marshal(a)
	fmt.Println(string(j))
	fmt.Println(a, a.Before(b), b.Before(a))
	// Output:
	// {"archive":"3f2c0a9e5b7d1c44","end":"16/B37400F8","index":1}
	// 16/B37400F8#1 true false
}

// FileStore saves a position atomically and loads it back.
func ExampleFileStore() {
	dir, _ := os.MkdirTemp("", "position")
	defer os.RemoveAll(dir)
	fs := consumer.FileStore{Path: filepath.Join(dir, "orders.position")}
	_, ok, _ := fs.Load()
	fmt.Println("saved:", ok)
	_ = fs.Save(consumer.Position{End: 0x1000, Index: 3})
	p, ok, err := fs.Load()
	fmt.Println("saved:", ok, p, err)
	// Output:
	// saved: false
	// saved: true 0/1000#3 <nil>
}
