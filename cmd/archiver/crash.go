package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/tidemark/tidemark/internal/archive"
)

// crashEnv is a TEST-ONLY hook: "<stage>:<n>" makes the process exit with
// status 137 (as if killed with SIGKILL) the n-th time the archiver reaches
// the stage (archive.Stage*: mid-upload, uploaded, cataloged, watermarked,
// acked; and a merge's merge-written, merge-uploaded, merge-recorded).
// Crash tests use it to stop the process at exact points of the durability
// sequence and of a merge. Never set it in production.
const crashEnv = "TIDEMARK_ARCHIVER_CRASH_AT"

var crashStages = []string{archive.StageMidUpload, archive.StageUploaded, archive.StageCataloged,
	archive.StageWatermarked, archive.StageAcked}

// mergeCrashStages are the merge steps the hook also accepts; they are kept
// apart from crashStages, which the flush crash test draws its points from
// (a test without merges never reaches them).
var mergeCrashStages = []string{archive.StageMergeWritten, archive.StageMergeUploaded, archive.StageMergeRecorded}

// crashHook parses spec and returns the hook, or nil when spec is empty.
func crashHook(spec string, w io.Writer) (func(string), error) {
	if spec == "" {
		return nil, nil
	}
	stage, count, ok := strings.Cut(spec, ":")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n < 1 {
		return nil, fmt.Errorf("%s=%q: want <stage>:<n> with n >= 1", crashEnv, spec)
	}
	all := append(slices.Clone(crashStages), mergeCrashStages...)
	if !slices.Contains(all, stage) {
		return nil, fmt.Errorf("%s=%q: unknown stage (want one of %s)", crashEnv, spec, strings.Join(all, ", "))
	}
	var (
		mu   sync.Mutex
		hits int
	)
	return func(s string) {
		if s != stage {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if hits++; hits == n {
			fmt.Fprintf(w, "crash hook: exiting at %s #%d\n", stage, n)
			os.Exit(137)
		}
	}, nil
}
