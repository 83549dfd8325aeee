package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/restore"
)

func printPlan(w io.Writer, p *restore.Plan) {
	fmt.Fprintf(w, "Window:      %s\n", p.Window)
	fmt.Fprintf(w, "Table:       %s\n", p.Table)
	if p.BeforeFirst {
		fmt.Fprintf(w, "Plan:        nothing to restore: the target time is before the archive's first event\n")
		return
	}
	fmt.Fprintf(w, "Plan:        %d segments (%d entirely before T), %s to download (%s raw), up to %d events\n",
		p.SegmentCount, p.WholeSegments, bytesHuman(p.Bytes), bytesHuman(p.RawBytes), p.MaxEvents)
}

func printResult(w io.Writer, r *restore.Result) {
	if r.Empty {
		fmt.Fprintln(w, "Restore:     empty — the target time is before the archive's first event")
	}
	dest := r.Table
	if dest == "" {
		dest = "file"
	}
	resumed := ""
	if r.Resumed {
		resumed = fmt.Sprintf(" (resumed: %d written in this run)", r.EventsThisRun)
	}
	fmt.Fprintf(w, "Restored:    %d events, %d streams into %s%s\n", r.Events, r.Streams, dest, resumed)
	if r.EventsAlreadyPresent > 0 || (r.Table != "" && r.EventsThisRun != r.Events && !r.Resumed) {
		fmt.Fprintf(w, "             %d inserted, %d already present\n", r.EventsThisRun, r.EventsAlreadyPresent)
	}
	fmt.Fprintf(w, "Duration:    %s (%.0f events/s), %d segments, %s downloaded\n",
		r.Duration.Round(time.Millisecond), r.EventsPerSecond, r.Segments, bytesHuman(r.Bytes))
	if v := r.Verification; v != nil {
		fmt.Fprintf(w, "Verify:      %s\n", strings.ToUpper(v.Status))
		for _, c := range v.Checks {
			fmt.Fprintf(w, "  %-16s %-7s %s\n", c.Name, c.Status, c.Detail)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "Note:        %s\n", n)
	}
}

func bytesHuman(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func printListing(w io.Writer, l *restore.Listing) {
	fmt.Fprintf(w, "Archive:     %s (id %s)\n", l.Store, l.ArchiveID)
	fmt.Fprintf(w, "Tables:      %s\n", strings.Join(l.Tables, ", "))
	if l.Window.Empty {
		fmt.Fprintf(w, "Window:      no events archived yet\n")
	} else {
		fmt.Fprintf(w, "Window:      %s … %s (UTC)\n", restore.FormatTime(l.Window.First), restore.FormatTime(l.Window.Watermark))
	}
	fmt.Fprintf(w, "Watermark:   %s at %s, %s ago\n", restore.FormatTime(l.Window.Watermark), l.Window.WatermarkLSN, l.WatermarkAge.Round(time.Second))
	fmt.Fprintf(w, "Segments:    %d (%d catalog entries)\n", l.Segments, l.CatalogEntries)
	fmt.Fprintf(w, "Events:      %d in %d transactions\n", l.Events, l.Transactions)
	ratio := 0.0
	if l.StoredBytes > 0 {
		ratio = float64(l.RawBytes) / float64(l.StoredBytes)
	}
	fmt.Fprintf(w, "Size:        %s stored, %s raw (ratio %.1f)\n", bytesHuman(l.StoredBytes), bytesHuman(l.RawBytes), ratio)
	if len(l.Gaps) == 0 {
		fmt.Fprintf(w, "Gaps:        none\n")
	}
	for _, warn := range l.Warnings {
		fmt.Fprintf(w, "Warning:     %s\n", warn)
	}
	for _, g := range l.Gaps {
		fmt.Fprintf(w, "Gap:         %s … %s: segment %s %s\n",
			restore.FormatTime(g.From), restore.FormatTime(g.To), g.Segment, g.Reason)
	}
	for _, r := range l.Resyncs {
		if r.Open {
			fmt.Fprintf(w, "Resync:      %s OPEN: rows committed since %s re-read from timeline %d (fork %s), positions %s … %s (entry %d)\n",
				r.ID, restore.FormatTime(r.From), r.Timeline, r.ForkLSN, r.Base, r.SlotLSN, r.Seq)
			continue
		}
		fmt.Fprintf(w, "Resync:      %s: rows committed %s … %s re-read from timeline %d (from %d, fork %s), positions %s … %s: %d appended, %d already held (entry %d)\n",
			r.ID, restore.FormatTime(r.From), restore.FormatTime(r.SnapshotTime), r.Timeline, r.PrevTimeline, r.ForkLSN, r.Base, r.SlotLSN,
			r.Appended, r.Held, r.Seq)
	}
	for _, r := range l.Resyncs {
		if r.DivergedEvents > 0 {
			fmt.Fprintf(w, "Diverged:    %d events in %d transactions (end LSN %s … %s, committed %s … %s) archived from timeline %d past its fork: "+
				"not on the new primary; left out of restores unless --include-diverged\n",
				r.DivergedEvents, r.DivergedTransactions, r.ForkLSN, r.Base, fmtPtr(r.DivergedFirst), fmtPtr(r.DivergedLast), r.PrevTimeline)
		}
	}
}

func fmtPtr(t *time.Time) string {
	if t == nil {
		return "?"
	}
	return restore.FormatTime(*t)
}

func printReport(w io.Writer, r *restore.Report) {
	fmt.Fprintf(w, "Archive:     %s\n", r.Store)
	fmt.Fprintf(w, "Checked:     %d catalog entries, %d segments, %d events, %d streams\n", r.Entries, r.Segments, r.Events, r.Streams)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "OK       %s\n", n)
	}
	if ag := r.Against; ag != nil {
		fmt.Fprintf(w, "Against:     %s table %s: %d source events ≤ watermark, %d missing from the archive, %d archived but not in the source\n",
			ag.Source, ag.Table, ag.SourceEvents, ag.Missing, ag.Extra)
	}
	for _, p := range r.Problems {
		where := ""
		if p.Object != "" {
			where += " object " + p.Object
		}
		if p.Stream != "" {
			where += fmt.Sprintf(" stream %q", p.Stream)
		}
		known := ""
		if p.KnownGap != 0 {
			known = fmt.Sprintf(" (accepted by known-gap entry %d)", p.KnownGap)
		}
		fmt.Fprintf(w, "%-8s %s%s: %s%s\n", strings.ToUpper(p.Severity), p.Check, where, p.Message, known)
	}
	fmt.Fprintf(w, "Result:      %s\n", r.Status)
}
