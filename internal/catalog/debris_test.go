package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestWriter_AppendDebris(t *testing.T) {
	st := fileStore(t)
	f := newFixture(t, st, nil)
	f.standard(2)
	wm := f.c.Watermark()
	left := f.upload(f.batch(3), "") // uploaded, never listed
	d := left.AsDebris()
	e, err := f.w.AppendDebris(ctxT(t), []DebrisRef{d})
	if err != nil {
		t.Fatal(err)
	}
	if e.Segment != nil || len(e.Debris) != 1 || e.Watermark != wm {
		t.Fatalf("debris entry %+v, want one debris record and the watermark %s unchanged", e, wm.LSN)
	}
	for _, opts := range []LoadOptions{{}, {IgnoreCheckpoints: true}} {
		c, err := LoadWith(ctxT(t), st, opts)
		if err != nil {
			t.Fatal(err)
		}
		got, seq, ok := c.Debris(left.Key)
		if !ok || got != d || seq != e.Seq || !c.Known(left.Key) || c.Known(left.Key+"x") {
			t.Fatalf("loaded (%+v): debris %+v seq %d ok %v", opts, got, seq, ok)
		}
	}

	t.Run("refused", func(t *testing.T) {
		listed := f.refs[0]
		tests := []struct {
			name string
			refs []DebrisRef
			want string
		}{
			{"already recorded", []DebrisRef{d}, "already recorded"},
			{"listed", []DebrisRef{listed.AsDebris()}, "listed as a segment"},
			{"twice", []DebrisRef{{Key: "segments/x.tms", SHA256: d.SHA256}, {Key: "segments/x.tms", SHA256: d.SHA256}}, "twice"},
			{"outside segments", []DebrisRef{{Key: "catalog/x", SHA256: d.SHA256}}, "not a valid key"},
			{"bad checksum", []DebrisRef{{Key: "segments/y.tms", SHA256: "abc"}}, "malformed sha256"},
			{"too many", make([]DebrisRef, MaxDebrisPerEntry+1), "at most"},
		}
		for _, tt := range tests {
			_, err := f.w.AppendDebris(ctxT(t), tt.refs)
			if !errors.Is(err, ErrInvalidEntry) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: err = %v, want ErrInvalidEntry with %q", tt.name, err, tt.want)
			}
		}
	})

	t.Run("adopted by a later segment entry", func(t *testing.T) {
		f.appendRef(left)
		c, err := LoadWith(ctxT(t), st, LoadOptions{IgnoreCheckpoints: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok := c.Debris(left.Key); ok {
			t.Error("a listed key is still debris")
		}
		if seq, ok := c.SegmentSeq(left.Key); !ok || seq != c.NextSeq()-1 {
			t.Errorf("adopted key listed by entry %d (%v)", seq, ok)
		}
	})
}

// TestLoad_CheckpointKeepsDebris: a checkpoint folds debris records, Load
// from it knows them, and verify finds the checkpoint in agreement.
func TestLoad_CheckpointKeepsDebris(t *testing.T) {
	st := fileStore(t)
	f := newFixture(t, st, nil)
	f.w.CheckpointEvery = 2
	f.add(f.batch(2))
	d := f.upload(f.batch(2), "").AsDebris()
	if _, err := f.w.AppendDebris(ctxT(t), []DebrisRef{d}); err != nil { // entry 2: checkpoint
		t.Fatal(err)
	}
	c, err := Load(ctxT(t), st)
	if err != nil {
		t.Fatal(err)
	}
	if c.Checkpoint() != 2 {
		t.Fatalf("loaded from checkpoint %d, want 2", c.Checkpoint())
	}
	if _, seq, ok := c.Debris(d.Key); !ok || seq != 2 {
		t.Fatalf("debris after a checkpoint load: seq %d ok %v", seq, ok)
	}
	r, err := Verify(ctxT(t), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Worst() != OK || r.Debris != 1 {
		t.Fatalf("verify: worst %s, debris %d:%s", r.Worst(), r.Debris, findings(r))
	}
}

// TestVerify_Debris: recorded debris passes while unchanged; an altered one
// and an unrecorded unlisted object are warnings naming the object.
func TestVerify_Debris(t *testing.T) {
	st := fileStore(t)
	f := newFixture(t, st, nil)
	f.standard(3)
	left := f.upload(f.batch(2), "")
	if _, err := f.w.AppendDebris(ctxT(t), []DebrisRef{left.AsDebris()}); err != nil {
		t.Fatal(err)
	}
	r, err := Verify(ctxT(t), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Worst() != OK || r.Debris != 1 || !hasFinding(r, OK, "unlisted", "") {
		t.Fatalf("clean archive with debris: worst %s, debris %d:%s", r.Worst(), r.Debris, findings(r))
	}

	body := getRaw(t, st, left.Key)
	body[len(body)/2] ^= 1
	putRaw(t, st, left.Key, body)
	injected := f.upload(f.batch(1), "injected")
	r, err = Verify(ctxT(t), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.Worst() != Warning || r.Debris != 0 ||
		!hasFinding(r, Warning, "unlisted", left.Key) || !hasFinding(r, Warning, "unlisted", injected.Key) {
		t.Fatalf("altered debris and an injected object: worst %s, debris %d:%s", r.Worst(), r.Debris, findings(r))
	}
	for _, fd := range r.Findings {
		if fd.Object == left.Key && !strings.Contains(fd.Message, "altered since") {
			t.Errorf("altered debris reported as %q", fd.Message)
		}
	}
}
