package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/storeurl"
	"github.com/tidemark/tidemark/internal/segment"
)

// keysEnv holds encryption identities (one AGE-SECRET-KEY-1… per line)
// when no key file is given.
const keysEnv = "TIDEMARK_ENCRYPTION_KEYS"

// globalOptions are the flags every subcommand shares.
type globalOptions struct {
	natsURL, natsCreds string
	stream, consumer   string
	prefix             string
	store              string
	keyFile            string
	logLevel           string
	logFormat          string
}

func (g *globalOptions) register(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&g.natsURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	f.StringVar(&g.natsCreds, "nats-creds", "", "NATS credentials file")
	f.StringVar(&g.stream, "stream", "TIDEMARK", "JetStream stream capture publishes to")
	f.StringVar(&g.consumer, "consumer", "tidemark-archiver", "durable consumer name shared by all archivers")
	f.StringVar(&g.prefix, "subject-prefix", "tidemark", "feed subject prefix")
	f.StringVar(&g.store, "store", "./tidemark-archive", "archive location: s3://bucket/prefix?endpoint=…&region=…, file:///path or a directory")
	f.StringVar(&g.keyFile, "encryption-key-file", "", "file of age identities (first encrypts, all decrypt); else $"+keysEnv)
	f.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
}

func (g *globalOptions) logger(w io.Writer) (*slog.Logger, error) {
	return cli.NewLogger(w, g.logLevel, g.logFormat)
}

// keyring loads the encryption keys; nil means plaintext.
func (g *globalOptions) keyring() (*segment.Keyring, error) {
	if g.keyFile != "" {
		kr, err := segment.LoadKeyring(g.keyFile)
		if err != nil {
			return nil, cli.Usage(fmt.Errorf("load encryption keys: %w", err), "check --encryption-key-file (archiver keygen makes one)")
		}
		return kr, nil
	}
	if text, ok := os.LookupEnv(keysEnv); ok {
		kr, err := segment.ParseKeyring(text)
		if err != nil {
			return nil, cli.Usage(fmt.Errorf("parse %s: %w", keysEnv, err), "set it to one AGE-SECRET-KEY-1… per line (archiver keygen makes one)")
		}
		return kr, nil
	}
	return nil, nil
}

// openStore opens the archive's object store. It does not contact it:
// a missing bucket or missing credentials show with the first request.
func (g *globalOptions) openStore(ctx context.Context) (objstore.Store, error) {
	s, err := storeurl.Open(ctx, g.store)
	if err != nil {
		return nil, storeFailure(fmt.Errorf("open store: %w", err), "check --store and the S3 credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
	}
	return s, nil
}

// storeFailure gives err its exit code (docs/exit-codes.md) and hint:
// missing or refused store credentials exit 12, a missing bucket 10 (no
// archive at the store URL), anything else 1. The hint is the store
// backend's (objstore.Hint), or else the one given.
func storeFailure(err error, hint string) error {
	code := cli.ExitFailure
	switch {
	case errors.Is(err, objstore.ErrNoCredentials), errors.Is(err, objstore.ErrAccessDenied):
		code = cli.ExitCredentials
	case errors.Is(err, objstore.ErrBucketNotFound):
		code = cli.ExitOutOfWindow
	}
	if h := objstore.Hint(err); h != "" {
		hint = h
	}
	return cli.WithCode(code, err, hint)
}

// connect opens a NATS connection that reconnects forever.
func (g *globalOptions) connect(name string, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil && log != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			if log != nil {
				log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			}
		}),
	}
	if g.natsCreds != "" {
		opts = append(opts, nats.UserCredentials(g.natsCreds))
	}
	nc, err := nats.Connect(g.natsURL, opts...)
	if err != nil {
		return nil, nil, cli.WithCode(cli.ExitFailure, fmt.Errorf("connect to nats: %w", err), "check --nats-url / NATS_URL and --nats-creds")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}
