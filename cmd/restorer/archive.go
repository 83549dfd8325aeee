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
	"github.com/tidemark/tidemark/internal/redact"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/segment"
)

// openArchive opens --store and loads its catalog.
func (a *app) openArchive(ctx context.Context) (*restore.Archive, error) {
	st, kr, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	return restore.Open(ctx, st, kr)
}

// openStore opens --store and the decryption keys, refusing to create
// anything: a local path that does not exist is "no archive".
func (a *app) openStore(ctx context.Context) (objstore.Store, *segment.Keyring, error) {
	if _, _, err := a.applyStores(nil); err != nil {
		return nil, nil, err
	}
	if a.storeURL == "" {
		return nil, nil, cli.Usage(errors.New("--store is required"), "pass --store URL or set "+envPrefix+"STORE")
	}
	shown := redact.URL(a.storeURL)
	if storeurl.Scheme(a.storeURL) == "file" {
		dir, err := file.PathFromURL(a.storeURL)
		if err != nil {
			return nil, nil, cli.Usage(fmt.Errorf("invalid --store %s: %w", shown, err), `use "file:///path", a path, or "s3://bucket/prefix?endpoint=…&region=…"`)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, nil, cli.WithCode(cli.ExitOutOfWindow, fmt.Errorf("no archive at %s: no such directory", shown), "check --store")
		}
	}
	st, err := storeurl.Open(ctx, a.storeURL)
	if err != nil {
		if errors.Is(err, objstore.ErrAccessDenied) {
			return nil, nil, cli.WithCode(cli.ExitCredentials, fmt.Errorf("open store %s: %w", shown, err), "check the store credentials")
		}
		return nil, nil, cli.Usage(fmt.Errorf("open store %s: %w", shown, err), `use "file:///path", a path, or "s3://bucket/prefix?endpoint=…&region=…"`)
	}
	kr, err := a.keyring()
	if err != nil {
		return nil, nil, err
	}
	return st, kr, nil
}

// openOther opens another store named by flag (a fallback or a primary),
// refusing, like --store, a local path that does not exist.
func (a *app) openOther(ctx context.Context, flag, rawURL string) (objstore.Store, error) {
	shown := redact.URL(rawURL)
	if storeurl.Scheme(rawURL) == "file" {
		dir, err := file.PathFromURL(rawURL)
		if err != nil {
			return nil, cli.Usage(fmt.Errorf("invalid %s %s: %w", flag, shown, err), `use "file:///path", a path, or "s3://bucket/prefix?endpoint=…&region=…"`)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, cli.WithCode(cli.ExitOutOfWindow, fmt.Errorf("no archive at %s %s: no such directory", flag, shown), "check "+flag)
		}
	}
	st, err := storeurl.Open(ctx, rawURL)
	if err != nil {
		return nil, cli.Usage(fmt.Errorf("open %s %s: %w", flag, shown, err), `use "file:///path", a path, or "s3://bucket/prefix?endpoint=…&region=…"`)
	}
	return st, nil
}

// keyring loads the decryption keys, if any were given: the identities of
// --encryption-key-file and of --encryption-key together (reading needs
// every key a segment may name; which one is first does not matter).
func (a *app) keyring() (*segment.Keyring, error) {
	if a.keyFile == "" && a.keyText == "" {
		return nil, nil
	}
	text := a.keyText
	if a.keyFile != "" {
		b, err := os.ReadFile(a.keyFile)
		if err != nil {
			return nil, cli.Usage(fmt.Errorf("read --encryption-key-file %s: %w", a.keyFile, err), "give a readable file of AGE-SECRET-KEY-1… lines")
		}
		text = string(b) + "\n" + text
	}
	kr, err := segment.ParseKeyring(text)
	if err != nil {
		// ParseKeyring's errors never contain key material.
		return nil, cli.Usage(fmt.Errorf("decryption keys: %w", err), "give age identities (AGE-SECRET-KEY-1…), one per line")
	}
	return kr, nil
}
