package objstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Opener opens a Store from a URL of the scheme it was registered for.
type Opener func(ctx context.Context, rawURL string) (Store, error)

var (
	openersMu sync.RWMutex
	openers   = map[string]Opener{}
)

// Register makes a backend available to Open under scheme ("s3", "file").
// Backends register themselves from init, so Open knows every backend the
// program links; package storeurl links them all. Registering a scheme twice
// panics, as it is a programming error.
func Register(scheme string, open Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	if _, dup := openers[scheme]; dup {
		panic("objstore: backend registered twice for scheme " + scheme)
	}
	openers[scheme] = open
}

// Open opens the store named by rawURL: "s3://bucket/prefix?endpoint=…&region=…",
// "file:///path" or a bare filesystem path (which means file). The backend
// for the scheme must be linked into the program (import
// internal/objstore/storeurl, or the backend package itself); otherwise Open
// returns an error naming the missing scheme.
func Open(ctx context.Context, rawURL string) (Store, error) {
	scheme := Scheme(rawURL)
	openersMu.RLock()
	open, ok := openers[scheme]
	openersMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("open store: no backend for scheme %q is linked (have %s; import internal/objstore/storeurl)", scheme, registered())
	}
	return open(ctx, rawURL)
}

// Scheme returns the URL scheme of a store location in lower case, or
// "file" for a bare path (one without "://").
func Scheme(rawURL string) string {
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok || scheme == "" || strings.ContainsAny(scheme, "/\\") {
		return "file"
	}
	return strings.ToLower(scheme)
}

func registered() string {
	openersMu.RLock()
	defer openersMu.RUnlock()
	names := make([]string, 0, len(openers))
	for s := range openers {
		names = append(names, s)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
