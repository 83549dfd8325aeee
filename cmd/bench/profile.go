package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/testing/bench"
)

func newProfileCmd() *cobra.Command {
	var component, out, traceOut, heapOut, dir string
	var events, streams int
	var keep bool
	cmd := &cobra.Command{
		Use:   "profile --component capture|archiver|restore --cpuprofile FILE",
		Short: "Run one component in-process on the benchmark backlog under the CPU profiler",
		Long: `profile builds the same rig and backlog as a benchmark run, prepares the component's
input with the real programs, then runs the component in-process (its internal package,
default settings) under the Go CPU profiler until it has handled the backlog. Read the
profile with: go tool pprof -top FILE`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := cli.NewLogger(cmd.ErrOrStderr(), "info", "text")
			if err != nil {
				return err
			}
			if dir == "" {
				if dir, err = os.MkdirTemp("", "tidemark-profile-"); err != nil {
					return fmt.Errorf("create working directory: %w", err)
				}
				if !keep {
					defer os.RemoveAll(dir)
				}
			}
			f, err := os.Create(out)
			if err != nil {
				return cli.Usage(fmt.Errorf("create profile: %w", err), "choose a writable --cpuprofile path")
			}
			defer f.Close()
			pc := bench.ProfileConfig{Dir: dir, Events: events, Streams: streams,
				Component: component, CPUProfile: f, Progress: func(msg string, args ...any) { log.Info(msg, args...) }}
			if traceOut != "" {
				tf, err := os.Create(traceOut)
				if err != nil {
					return cli.Usage(fmt.Errorf("create trace: %w", err), "choose a writable --trace path")
				}
				defer tf.Close()
				pc.Trace = tf
			}
			if heapOut != "" {
				hf, err := os.Create(heapOut)
				if err != nil {
					return cli.Usage(fmt.Errorf("create heap profile: %w", err), "choose a writable --heapprofile path")
				}
				defer hf.Close()
				pc.HeapProfile = hf
			}
			res, err := bench.Profile(cmd.Context(), pc)
			if err != nil {
				return err
			}
			names := make([]string, 0, len(res.Metrics))
			for k := range res.Metrics {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, k := range names {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %g\n", k, res.Metrics[k])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s handled %d events in %.2f s (%.0f events/s); peak live heap %.1f MiB; profile in %s\n",
				component, res.Events, res.Duration.Seconds(), float64(res.Events)/res.Duration.Seconds(), float64(res.PeakHeap)/(1<<20), out)
			fmt.Fprintf(cmd.OutOrStdout(), "CPU while it ran: %s\n", describeCPU(res.CPU, res.Events, component))
			return f.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&component, "component", "capture", "capture, archiver or restore")
	f.StringVar(&out, "cpuprofile", "cpu.pprof", "where to write the CPU profile")
	f.StringVar(&heapOut, "heapprofile", "", "also write a heap profile taken at the run's peak live heap here")
	f.StringVar(&traceOut, "trace", "", "also write a runtime execution trace here (go tool trace -pprof=net|sync|syscall FILE)")
	f.IntVar(&events, "events", 200_000, "events in the backlog")
	f.IntVar(&streams, "streams", 10_000, "streams the events spread over")
	f.StringVar(&dir, "dir", "", "working directory (default: a temporary directory, removed afterwards)")
	f.BoolVar(&keep, "keep", false, "keep the working directory")
	return cmd
}

// describeCPU prints each party's cores and CPU time per event (the
// component is the "bench" party: it runs in-process).
func describeCPU(u bench.CPUUse, events int64, component string) string {
	wall := u.Wall.Seconds()
	if wall <= 0 || events <= 0 {
		return "not measured"
	}
	names := make([]string, 0, len(u.By))
	for k := range u.By {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		d := u.By[k]
		label := k
		if k == "bench" {
			label = component + " (in-process)"
		}
		fmt.Fprintf(&b, "%s %.2f cores, %.1f µs/event; ", label, d.Seconds()/wall, float64(d.Microseconds())/float64(events))
	}
	fmt.Fprintf(&b, "machine %.2f of %d cores", u.Machine.Seconds()/wall, u.Cores)
	return b.String()
}
