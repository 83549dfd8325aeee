package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Ops is a service's operations HTTP server: /livez (the process runs),
// /readyz (Ready returns nil) and /metrics (Prometheus).
type Ops struct {
	// Addr is the listen address, e.g. "127.0.0.1:9464"; "" disables the server.
	Addr string
	// Ready reports why the service is not ready, or nil.
	Ready func() error
	// Gatherer is the metrics registry; nil means prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Logger receives start and failure messages.
	Logger *slog.Logger
	// Listening, when set, receives the bound address once listening.
	Listening func(addr string)
}

// Run serves until ctx is cancelled.
func (o *Ops) Run(ctx context.Context) error {
	if o.Addr == "" {
		<-ctx.Done()
		return nil
	}
	g := o.Gatherer
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if o.Ready != nil {
			if err := o.Ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return Usage(fmt.Errorf("listen on %s: %w", o.Addr, err), "choose a free --http address")
	}
	if o.Listening != nil {
		o.Listening(ln.Addr().String())
	}
	if o.Logger != nil {
		o.Logger.Info("ops server listening", "addr", ln.Addr().String())
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve ops: %w", err)
	}
	return nil
}
