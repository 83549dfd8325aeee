package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/tidemark/tidemark/internal/testing/eventcore"
)

// restoreOutput is what one `restorer … --json` run printed.
type restoreOutput struct {
	ExitCode int
	// Target is the resolved instant ("target" record).
	Target time.Time
	// Result is the "result" record, if any.
	Result map[string]any
	// Err is the "error" record, if any.
	Err *restoreError
	// Verify is the "verify" record, if any.
	Verify *verifyReport
	// Stdout is everything printed, for failure messages.
	Stdout string
	// LogPath holds the standard error.
	LogPath string
	// Invalid counts records that were not valid JSON (repaired).
	Invalid int
}

type restoreError struct {
	Code    int    `json:"exit_code"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Hint    string `json:"hint"`
}

type verifyReport struct {
	Status   string `json:"status"`
	Segments int    `json:"segments"`
	Events   int64  `json:"events"`
	Problems []struct {
		Severity string `json:"severity"`
		Object   string `json:"object"`
		Stream   string `json:"stream"`
		Message  string `json:"message"`
	} `json:"problems"`
	Notes   []string `json:"notes"`
	Against *struct {
		SourceEvents   int64 `json:"source_events"`
		Missing        int64 `json:"missing"`
		Extra          int64 `json:"extra"`
		AfterWatermark int64 `json:"after_watermark"`
	} `json:"against"`
}

// problems summarises the report's findings.
func (r *verifyReport) problems() string {
	var b bytes.Buffer
	for i, p := range r.Problems {
		if i == 3 {
			fmt.Fprintf(&b, " … (%d in all)", len(r.Problems))
			break
		}
		fmt.Fprintf(&b, "[%s %s %s: %s] ", p.Severity, p.Object, p.Stream, p.Message)
	}
	return b.String()
}

// runRestorer runs the restorer with --json and parses what it printed.
func (e *Env) runRestorer(ctx context.Context, logName string, args ...string) (*restoreOutput, error) {
	res, err := e.H.RunProgram(ctx, "restorer", logName, nil, append(args, "--json")...)
	if err != nil {
		return nil, err
	}
	out := &restoreOutput{ExitCode: res.ExitCode, Stdout: string(res.Stdout), LogPath: res.LogPath}
	sc := bufio.NewScanner(bytes.NewReader(res.Stdout))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var rec struct {
			Type   string    `json:"type"`
			Target time.Time `json:"target_time"`
		}
		line := sc.Bytes()
		if json.Unmarshal(line, &rec) != nil {
			fixed, ok := repairRecord(line)
			if !ok || json.Unmarshal(fixed, &rec) != nil {
				continue
			}
			out.Invalid++
			line = fixed
		}
		switch rec.Type {
		case "target":
			out.Target = rec.Target
		case "result":
			_ = json.Unmarshal(line, &out.Result)
		case "error":
			out.Err = &restoreError{}
			_ = json.Unmarshal(line, out.Err)
		case "verify":
			out.Verify = &verifyReport{}
			_ = json.Unmarshal(line, out.Verify)
		}
	}
	if out.Invalid > 0 {
		e.NoteOnce("restorer_json_invalid")
	}
	return out, nil
}

// brokenRecord matches a record missing the comma after its type, as
// `{"type":"verify""status":…}`: the restorer's emit (cmd/restorer/main.go)
// splices the type onto the object without one.
var brokenRecord = regexp.MustCompile(`^\{"type":"([a-z_]+)""`)

// repairRecord inserts the missing comma, so the suite can still read the
// output while the restorer's bug stands (it is reported, not hidden: see
// restoreOutput.Invalid).
func repairRecord(line []byte) ([]byte, bool) {
	if !brokenRecord.Match(line) {
		return nil, false
	}
	return brokenRecord.ReplaceAll(line, []byte(`{"type":"$1","`)), true
}

// newTarget creates an empty database with EventCore's schema (triggers
// included) and returns its URL.
func (e *Env) newTarget(ctx context.Context) (string, error) {
	url, err := e.H.PG.CreateDatabase(ctx)
	if err != nil {
		return "", err
	}
	if err := eventcore.ApplyURL(ctx, url); err != nil {
		return "", fmt.Errorf("prepare restore target: %w", err)
	}
	return url, nil
}

// formatT formats an instant for --to with full microsecond precision.
func formatT(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// restoreTo restores the archive at storeURL to "to" into a fresh target
// and returns the output and the target's URL.
func (e *Env) restoreTo(ctx context.Context, logName, storeURL, to string, extra ...string) (*restoreOutput, string, error) {
	target, err := e.newTarget(ctx)
	if err != nil {
		return nil, "", err
	}
	args := append([]string{"restore", "--store", storeURL, "--target", target, "--to", to}, extra...)
	out, err := e.runRestorer(ctx, logName, args...)
	return out, target, err
}

// verifyArchive runs `restorer verify` (with --against the source when
// against is set).
func (e *Env) verifyArchive(ctx context.Context, logName, storeURL string, against bool) (*restoreOutput, error) {
	args := []string{"verify", "--store", storeURL}
	if against {
		args = append(args, "--against", e.H.SourceURL)
	}
	return e.runRestorer(ctx, logName, args...)
}
