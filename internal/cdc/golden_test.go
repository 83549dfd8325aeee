package cdc

import (
	"encoding/json"
	"flag"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testing/golden"
)

// update rewrites the golden files instead of comparing with them:
// go test ./internal/cdc -run Golden -update
var update = flag.Bool("update", false, "rewrite golden files")

// goldenDir holds the META records capture writes besides table
// definitions (those are pinned in internal/feed): its slot record and
// the source's system id (docs/feed.md, META bucket).
const goldenDir = "testdata/golden"

func gtime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// goldenSlotRecords are capture's slot record in each state, as
// putSlotRecord and putSlotRecordIf store them (json.Marshal).
func goldenSlotRecords() []struct {
	file string
	rec  slotRecord
	data string
} {
	return []struct {
		file string
		rec  slotRecord
		data string
	}{{
		file: "meta-slot-creating.json",
		rec: slotRecord{Slot: "tidemark", SystemID: "7300000000000000001", State: slotCreating,
			Creator: &backendID{PID: 4242, Start: gtime("2026-11-25T10:14:00.123456Z")}, Updated: gtime("2026-11-25T10:14:01.5Z")},
		data: `{"slot":"tidemark","system_id":"7300000000000000001","state":"creating","consistent_point":"0/0",` +
			`"creator":{"pid":4242,"start":"2026-11-25T10:14:00.123456Z"},"updated":"2026-11-25T10:14:01.5Z"}`,
	}, {
		file: "meta-slot-snapshot.json",
		rec: slotRecord{Slot: "tidemark", SystemID: "7300000000000000001", State: slotSnapshot, ConsistentPoint: 0x16_B3740000,
			Snapshot: "00000003-00000002-1", Creator: &backendID{PID: 4242, Start: gtime("2026-11-25T10:14:00.123456Z")},
			Updated: gtime("2026-11-25T10:14:02Z")},
		data: `{"slot":"tidemark","system_id":"7300000000000000001","state":"snapshot","consistent_point":"16/B3740000",` +
			`"snapshot":"00000003-00000002-1","creator":{"pid":4242,"start":"2026-11-25T10:14:00.123456Z"},"updated":"2026-11-25T10:14:02Z"}`,
	}, {
		file: "meta-slot-resync.json",
		rec: slotRecord{Slot: "tidemark", SystemID: "7300000000000000001", State: slotSnapshot, ConsistentPoint: 0x17_00000028,
			Snapshot: "00000004-00000002-1", Creator: &backendID{PID: 977, Start: gtime("2026-11-25T10:20:00Z")},
			Resync:  &resyncPlan{Base: 0x16_B3750000, Prev: 0x16_B3740000, From: gtime("2026-11-25T10:10:00.5Z"), Timeline: 2, PrevTimeline: 1, ForkLSN: 0x16_B3760000},
			Updated: gtime("2026-11-25T10:20:01Z")},
		data: `{"slot":"tidemark","system_id":"7300000000000000001","state":"snapshot","consistent_point":"17/28",` +
			`"snapshot":"00000004-00000002-1","creator":{"pid":977,"start":"2026-11-25T10:20:00Z"},` +
			`"resync":{"base":"16/B3750000","prev":"16/B3740000","from":"2026-11-25T10:10:00.5Z","timeline":2,"prev_timeline":1,"fork_lsn":"16/B3760000"},` +
			`"updated":"2026-11-25T10:20:01Z"}`,
	}, {
		file: "meta-slot-streaming.json",
		rec: slotRecord{Slot: "tidemark", SystemID: "7300000000000000001", State: slotStreaming, ConsistentPoint: 0x16_B3740000,
			Updated: gtime("2026-11-25T10:15:00.000000001Z")},
		data: `{"slot":"tidemark","system_id":"7300000000000000001","state":"streaming","consistent_point":"16/B3740000",` +
			`"updated":"2026-11-25T10:15:00.000000001Z"}`,
	}}
}

// TestSlotRecord_Golden encodes each slot record as capture stores it in
// META (key slot.<name>) and requires the golden file, then decodes the
// stored value as getSlotRecord does and compares every field.
func TestSlotRecord_Golden(t *testing.T) {
	if slotKey("tidemark") != "slot.tidemark" {
		t.Errorf("slot key %q", slotKey("tidemark"))
	}
	for _, g := range goldenSlotRecords() {
		t.Run(g.file, func(t *testing.T) {
			b, err := json.Marshal(g.rec)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(goldenDir, g.file)
			golden.Check(t, path, b, *update)
			stored := golden.Read(t, path)
			if string(stored) != g.data {
				t.Errorf("slot record %s, want %s", stored, g.data)
			}
			var got slotRecord
			if err := json.Unmarshal(stored, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, g.rec) {
				t.Errorf("decoded slot record\n got %+v\nwant %+v", got, g.rec)
			}
		})
	}
}

// TestSystemID_Golden pins the system_id record: the decimal system
// identifier as plain text, which checkSystemID compares after trimming
// white space.
func TestSystemID_Golden(t *testing.T) {
	const sysid = "7300000000000000001"
	path := filepath.Join(goldenDir, "meta-system-id.txt")
	golden.Check(t, path, []byte(sysid), *update) // checkSystemID stores []byte(sysid)
	if got := strings.TrimSpace(string(golden.Read(t, path))); got != sysid || KeySystemID != "system_id" {
		t.Errorf("META %s holds %q, want %q", KeySystemID, got, sysid)
	}
}

// TestSource_Golden pins META's source record: the server capture last
// streamed from, with its timeline history.
func TestSource_Golden(t *testing.T) {
	src := sourceIdentity{SystemID: "7300000000000000001", Timeline: 2, Server: "10.0.0.7:5432",
		History: []timelineFork{{Timeline: 1, SwitchPoint: 0x16_B3760000}}, Updated: gtime("2026-11-25T10:20:05Z")}
	const want = `{"system_id":"7300000000000000001","timeline":2,"server":"10.0.0.7:5432","history":[{"timeline":1,"switchpoint":"16/B3760000"}],"updated":"2026-11-25T10:20:05Z"}`
	b, err := json.Marshal(src)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(goldenDir, "meta-source.json")
	golden.Check(t, path, b, *update)
	stored := golden.Read(t, path)
	if string(stored) != want || KeySource != "source" {
		t.Errorf("META %s holds %s, want %s", KeySource, stored, want)
	}
	var got sourceIdentity
	if err := json.Unmarshal(stored, &got); err != nil || !reflect.DeepEqual(got, src) {
		t.Errorf("decoded %+v (%v), want %+v", got, err, src)
	}
}
