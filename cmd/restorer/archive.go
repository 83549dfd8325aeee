package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/file"
	"github.com/tidemark/tidemark/internal/objstore/storeurl"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/segment"
)

// openArchive opens --store and loads its catalog, refusing to create
// anything: a local path that does not exist is "no archive".
func (a *app) openArchive(ctx context.Context) (*restore.Archive, error) {
	if a.storeURL == "" {
		return nil, cli.Usage(errors.New("--store is required"), "pass --store URL or set "+envPrefix+"STORE")
	}
	shown := restore.RedactURL(a.storeURL)
	if objstore.Scheme(a.storeURL) == "file" {
		dir, err := file.PathFromURL(a.storeURL)
		if err != nil {
			return nil, cli.Usage(fmt.Errorf("invalid --store %s: %w", shown, err), `use "file:///path", a path, or "s3://bucket/prefix?endpoint=…&region=…"`)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, cli.WithCode(cli.ExitOutOfWindow, fmt.Errorf("no archive at %s: no such directory", shown), "check --store")
		}
	}
	st, err := storeurl.Open(ctx, a.storeURL)
	if err != nil {
		if errors.Is(err, objstore.ErrAccessDenied) {
			return nil, cli.WithCode(cli.ExitCredentials, fmt.Errorf("open store %s: %w", shown, err), "check the store credentials")
		}
		return nil, cli.Usage(fmt.Errorf("open store %s: %w", shown, err), `use "file:///path", a path, or "s3://bucket/prefix?endpoint=…&region=…"`)
	}
	kr, err := a.keyring()
	if err != nil {
		return nil, err
	}
	return restore.Open(ctx, st, kr)
}

// keyring loads the decryption keys, if any were given.
func (a *app) keyring() (*segment.Keyring, error) {
	switch {
	case a.keyFile != "" && a.keyText != "":
		return nil, cli.Usage(errors.New("both --encryption-key-file and --encryption-key are set"), "give the keys one way")
	case a.keyFile != "":
		kr, err := segment.LoadKeyring(a.keyFile)
		if err != nil {
			return nil, cli.Usage(fmt.Errorf("load --encryption-key-file %s: %w", a.keyFile, err), "the file holds AGE-SECRET-KEY-1… lines")
		}
		return kr, nil
	case a.keyText != "":
		kr, err := segment.ParseKeyring(a.keyText)
		if err != nil {
			// Never echo the value: it is a secret.
			return nil, cli.Usage(errors.New("--encryption-key is not a valid age identity list"), "give AGE-SECRET-KEY-1… lines")
		}
		return kr, nil
	}
	return nil, nil
}
