package bench

import (
	"fmt"
	"strings"
	"time"
)

// Row is one line of the results table.
type Row struct {
	// Figure names what is measured.
	Figure string
	// Measured is Tidemark's figure; Baseline what it is compared with
	// ("—" for absolute targets).
	Measured, Baseline string
	// Ratio is Measured ÷ Baseline ("—" when there is none).
	Ratio string
	// Target is the goal ("report" when there is none).
	Target string
	// Met is "yes", "no" or "—".
	Met string
}

// Rows turns the results into the table `make bench` prints: the issue's
// figures first, then context rows without targets.
func (r *Results) Rows() []Row {
	n := r.Load.Events
	var rows []Row
	add := func(fig, meas, base, ratio, target, met string) {
		rows = append(rows, Row{fig, meas, base, ratio, target, met})
	}

	capRate, recvRate := rate(n, r.Capture), rate(n, r.RecvLogicalMean())
	recvRuns := make([]string, len(r.RecvLogical))
	for i, d := range r.RecvLogical {
		recvRuns[i] = secs(d)
	}
	add("capture ÷ pg_recvlogical drain (events/s)",
		fmt.Sprintf("%s ev/s (%s)", num(capRate), secs(r.Capture)),
		fmt.Sprintf("%s ev/s (mean of %s)", num(recvRate), strings.Join(recvRuns, ", ")),
		ratio(capRate, recvRate), "≥ 0.75", met(ratio(capRate, recvRate) != "—" && capRate >= 0.75*recvRate))

	p50, p99 := Percentile(r.StoredLatency, 0.5), Percentile(r.StoredLatency, 0.99)
	add(fmt.Sprintf("commit → stored in JetStream p50 (%s ev/s steady)", num(r.Steady.EventsPerSecond())), ms(p50), "—", "—", "report", "—")
	add(fmt.Sprintf("commit → stored in JetStream p99 (%s events)", num(float64(len(r.StoredLatency)))), ms(p99), "—", "—", "≤ 10 ms",
		met(len(r.StoredLatency) > 0 && p99 <= 10*time.Millisecond))

	r50, r99 := Percentile(r.RPO, 0.5), Percentile(r.RPO, 0.99)
	add("commit → durable in archive (RPO) p50", secs(r50), "—", "—", "report", "—")
	add(fmt.Sprintf("commit → durable in archive (RPO) p99 (%s events)", num(float64(len(r.RPO)))), secs(r99), "—", "—", "≤ 1.5 s",
		met(len(r.RPO) > 0 && r99 <= 1500*time.Millisecond))

	archRate := rate(n, r.Archiver)
	add("archiver ÷ capture (events/s)",
		fmt.Sprintf("%s ev/s (%s)", num(archRate), secs(r.Archiver)),
		fmt.Sprintf("%s ev/s", num(capRate)),
		ratio(archRate, capRate), "≥ 2", met(capRate > 0 && archRate >= 2*capRate))

	restRate, copyRate := r.RestoreLate.EventsPerSecond(), rate(r.CopyRows, r.Copy)
	add("restore ÷ plain COPY (rows/s)",
		fmt.Sprintf("%s rows/s (%s rows, %s)", num(restRate), num(float64(r.RestoreLate.Events)), secs(r.RestoreLate.Wall)),
		fmt.Sprintf("%s rows/s (%s)", num(copyRate), secs(r.Copy)),
		ratio(restRate, copyRate), "≥ 0.8", met(copyRate > 0 && restRate >= 0.8*copyRate))

	replRate := r.Replay.EventsPerSecond()
	add("replay ÷ restore (events/s)",
		fmt.Sprintf("%s ev/s (%s events, %s)", num(replRate), num(float64(r.Replay.Events)), secs(r.Replay.Wall)),
		fmt.Sprintf("%s ev/s", num(restRate)),
		ratio(replRate, restRate), "≥ 1", met(restRate > 0 && replRate >= restRate))

	add("archive bytes ÷ raw JSON bytes",
		fmt.Sprintf("%s (%d segments)", mib(r.ArchiveBytes), r.Segments), mib(r.RawJSONBytes),
		ratio(float64(r.ArchiveBytes), float64(r.RawJSONBytes)), "≤ 0.15",
		met(r.RawJSONBytes > 0 && r.ArchiveBytes > 0 && float64(r.ArchiveBytes) <= 0.15*float64(r.RawJSONBytes)))

	add("merged segment bytes ÷ raw JSON bytes (the backlog as one merged segment)",
		fmt.Sprintf("%s (level %d, %d segments → 1, %s)", mib(r.MergedBytes), r.MergedLevel, r.MergedInputs, secs(r.Merge)), mib(r.RawJSONBytes),
		ratio(float64(r.MergedBytes), float64(r.RawJSONBytes)), "≤ 0.12",
		met(r.RawJSONBytes > 0 && r.MergedBytes > 0 && float64(r.MergedBytes) <= 0.12*float64(r.RawJSONBytes)))

	early, late := r.RestoreEarly.Wall.Seconds(), r.RestoreLate.Wall.Seconds()
	add(fmt.Sprintf("restore time, T at %.0f%% ÷ T at 100%%", 100*r.Config.EarlyFraction),
		fmt.Sprintf("%s (%s events)", secs(r.RestoreEarly.Wall), num(float64(r.RestoreEarly.Events))),
		fmt.Sprintf("%s (%s events)", secs(r.RestoreLate.Wall), num(float64(r.RestoreLate.Events))),
		ratio(early, late), "≈ 0.1 (≤ 0.15)", met(late > 0 && early <= 0.15*late))

	add("peak RSS capture", mib(r.RSSCapture), "—", "—", "report", "—")
	add("peak RSS archiver", mib(r.RSSArchiver), "—", "—", "report", "—")
	add("peak RSS restorer, T at 100% vs 10%", mib(r.RestoreLate.MaxRSS), mib(r.RestoreEarly.MaxRSS),
		ratio(float64(r.RestoreLate.MaxRSS), float64(r.RestoreEarly.MaxRSS)), "≤ 1.5 and ≤ 256 MiB",
		met(r.RestoreEarly.MaxRSS > 0 && float64(r.RestoreLate.MaxRSS) <= 1.5*float64(r.RestoreEarly.MaxRSS) && r.RestoreLate.MaxRSS <= 256<<20))
	add("peak RSS restorer, T at 100% from one merged segment vs T at 10%", mib(r.RestoreMerged.MaxRSS), mib(r.RestoreEarly.MaxRSS),
		ratio(float64(r.RestoreMerged.MaxRSS), float64(r.RestoreEarly.MaxRSS)), "≤ 1.5 and ≤ 256 MiB",
		met(r.RestoreEarly.MaxRSS > 0 && r.RestoreMerged.MaxRSS > 0 && float64(r.RestoreMerged.MaxRSS) <= 1.5*float64(r.RestoreEarly.MaxRSS) &&
			r.RestoreMerged.MaxRSS <= 256<<20))

	// Context: no targets, but they explain the figures above.
	if len(r.StoredLatency) > 0 {
		add("commit → stored in JetStream p50, first vs last third of the steady run", ms(r.AckP50First)+" / "+ms(r.AckP50Last),
			"—", "—", "context", "—")
	}
	if r.SourceOK {
		add("source's share: commit → walsender sent p50 / p99 (capture's histogram)", ms(r.SourceDelayP50)+" / "+ms(r.SourceDelayP99),
			"—", "—", "context", "—")
	}
	if len(r.DeliveredLatency) > 0 {
		add("commit → delivered to a feed consumer p50 / p99", ms(Percentile(r.DeliveredLatency, 0.5))+" / "+ms(Percentile(r.DeliveredLatency, 0.99)),
			"—", "—", "context", "—")
	}
	if r.RSSNATS > 0 {
		add("peak RSS nats-server (stream of the whole run)", mib(r.RSSNATS), "—", "—", "context", "—")
	}
	if r.HistOK {
		add("capture's own commit → ack histogram p50 / p99", ms(r.AckHistP50)+" / "+ms(r.AckHistP99), "—", "—", "context", "—")
	}
	add("backlog load (5.5 events/txn, 3 sessions)",
		fmt.Sprintf("%s ev/s (%s events, %s txns, %s)", num(rate(n, r.Load.Duration)), num(float64(n)), num(float64(r.Load.Transactions)), secs(r.Load.Duration)),
		"—", "—", "context", "—")
	if r.Segments > 0 {
		add("segments: stored ÷ raw records", mib(r.SegmentBytes), mib(r.SegmentRawBytes),
			ratio(float64(r.SegmentBytes), float64(r.SegmentRawBytes)), "context", "—")
	}
	if r.JetStreamFastPublish.N > 0 {
		add("JetStream fast-ingest batch publish, 600 B (testing.Benchmark)", num(r.JetStreamFastPublish.PerSecond)+" msg/s",
			fmt.Sprintf("%s ev/s capture", num(capRate)), ratio(capRate, r.JetStreamFastPublish.PerSecond), "context", "—")
	}
	if r.JetStreamPublish.N > 0 {
		add("JetStream async publish, 600 B (testing.Benchmark)", num(r.JetStreamPublish.PerSecond)+" msg/s",
			fmt.Sprintf("%s ev/s capture", num(capRate)), ratio(capRate, r.JetStreamPublish.PerSecond), "context", "—")
	}
	if r.Zstd.N > 0 {
		add("zstd default level, 1 core, COPY text (testing.Benchmark)",
			fmt.Sprintf("%s/s, %.1f×", mib(int64(r.Zstd.PerSecond)), r.Zstd.Ratio), "—", "—", "context", "—")
	}
	return rows
}

// Table renders rows as an aligned plain-text table.
func Table(rows []Row) string {
	all := [][]string{{"figure", "measured", "baseline", "ratio", "target", "met?"}}
	for _, r := range rows {
		all = append(all, r.cells())
	}
	return alignRows(all)
}

// Markdown renders rows as a Markdown table.
func Markdown(rows []Row) string {
	var b strings.Builder
	b.WriteString("| figure | measured | baseline | ratio | target | met? |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r.cells(), " | ") + " |\n")
	}
	return b.String()
}

func (r Row) cells() []string {
	return []string{r.Figure, r.Measured, r.Baseline, r.Ratio, r.Target, r.Met}
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func ratio(a, b float64) string {
	if b <= 0 || a <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// num formats a count or rate with thousands separators, no decimals.
func num(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
