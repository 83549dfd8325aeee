package main

import (
	"fmt"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/lifecycle"
)

// storeNames returns the names of --stores' stores, the primary first.
func (a *app) storeNames() ([]string, error) {
	if a.storesFile == "" {
		return nil, cli.Usage(fmt.Errorf("--every-store needs --stores"), "pass --stores FILE (docs/operations.md, multi-store layout)")
	}
	layout, err := lifecycle.Load(a.storesFile)
	if err != nil {
		return nil, cli.Usage(err, "fix the policy file (docs/operations.md, multi-store layout)")
	}
	var names []string
	for _, s := range layout.Stores {
		names = append(names, s.Name)
	}
	return names, nil
}

// applyStores resolves --stores and --from: --store becomes the named
// store's URL (the first, the primary, by default) and the file's other
// stores, in order, come after any --fallback-store. It returns the
// chosen store's policy and the primary's URL ("" without --stores).
func (a *app) applyStores(fallbacks *[]string) (*lifecycle.Store, string, error) {
	if a.storesFile == "" {
		if a.from != "" {
			return nil, "", cli.Usage(fmt.Errorf("--from needs --stores"), "pass --stores FILE (docs/operations.md, multi-store layout)")
		}
		return nil, "", nil
	}
	layout, err := lifecycle.Load(a.storesFile)
	if err != nil {
		return nil, "", cli.Usage(err, "fix the policy file (docs/operations.md, multi-store layout)")
	}
	name := a.from
	if name == "" {
		name = layout.Stores[0].Name
	}
	st, err := layout.Lookup(name)
	if err != nil {
		return nil, "", cli.Usage(err, "pass --from with a store name from the file")
	}
	if a.storeURL != "" && a.storeURL != st.URL {
		return nil, "", cli.Usage(fmt.Errorf("--store and --stores/--from name different stores"), "pass either --store or --stores with --from")
	}
	a.storeURL = st.URL
	if fallbacks != nil {
		for _, s := range layout.Stores {
			if s.Name != st.Name {
				*fallbacks = append(*fallbacks, s.URL)
			}
		}
	}
	return st, layout.Stores[0].URL, nil
}
