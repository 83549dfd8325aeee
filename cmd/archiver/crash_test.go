//go:build failpoints

package main

import (
	"testing"

	"github.com/tidemark/tidemark/internal/archive"
)

func TestCrashHook_Parse(t *testing.T) {
	for _, bad := range []string{"uploaded", "uploaded:0", "uploaded:x", "nowhere:1", ":1"} {
		if _, err := crashHook(bad, nil); err == nil {
			t.Errorf("crashHook(%q) accepted", bad)
		}
	}
	if h, err := crashHook("", nil); h != nil || err != nil {
		t.Fatalf("empty spec: %v, %v", h != nil, err)
	}
	h, err := crashHook(archive.StageCataloged+":3", nil)
	if err != nil || h == nil {
		t.Fatalf("valid spec: %v", err)
	}
	h(archive.StageUploaded) // other stages never count
	h(archive.StageCataloged)
	h(archive.StageCataloged) // the third hit would exit the test binary
	for _, stage := range []string{archive.StageMergeWritten, archive.StageMergeUploaded, archive.StageMergeRecorded} {
		if h, err := crashHook(stage+":1", nil); err != nil || h == nil {
			t.Errorf("crashHook(%q): %v", stage+":1", err)
		}
	}
}
