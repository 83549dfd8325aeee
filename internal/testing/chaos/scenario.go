package chaos

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Scenario is one fault-injection experiment.
type Scenario struct {
	// Name identifies the scenario (make chaos SCENARIO=name).
	Name string
	// Injects says in one sentence what goes wrong.
	Injects string
	// Checks lists the invariants the scenario asserts, e.g. "I1-I6".
	Checks string
	// Short puts the scenario in the subset `make test` runs.
	Short bool
	// Budget bounds the scenario's wall time.
	Budget time.Duration
	// Run performs the scenario; it returns a *Violation when an invariant
	// broke, another error when the scenario itself could not run.
	Run func(e *Env) error
}

var registry []Scenario

// register adds scenarios to the suite; names must be unique.
func register(ss ...Scenario) {
	for _, s := range ss {
		if s.Budget == 0 {
			s.Budget = 4 * time.Minute
		}
		if Lookup(s.Name) != nil {
			panic("chaos: scenario registered twice: " + s.Name)
		}
		registry = append(registry, s)
	}
}

// All returns every scenario, sorted by name.
func All() []Scenario {
	out := slices.Clone(registry)
	slices.SortFunc(out, func(a, b Scenario) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Lookup returns the named scenario, or nil.
func Lookup(name string) *Scenario {
	for i := range registry {
		if registry[i].Name == name {
			return &registry[i]
		}
	}
	return nil
}

// Select returns the scenarios to run: the comma-separated names when
// given, else all of them when all is set, else the Short subset.
func Select(names string, all bool) ([]Scenario, error) {
	if names != "" {
		var out []Scenario
		for _, n := range strings.Split(names, ",") {
			s := Lookup(strings.TrimSpace(n))
			if s == nil {
				var known []string
				for _, k := range All() {
					known = append(known, k.Name)
				}
				return nil, fmt.Errorf("unknown scenario %q (known: %s)", n, strings.Join(known, ", "))
			}
			out = append(out, *s)
		}
		return out, nil
	}
	var out []Scenario
	for _, s := range All() {
		if all || s.Short {
			out = append(out, s)
		}
	}
	return out, nil
}

// Violation is a broken invariant.
type Violation struct {
	// Invariant is "I1" … "I6".
	Invariant string
	// Detail says what was seen.
	Detail string

	joined bool // Detail already names each invariant
}

func (v *Violation) Error() string {
	if v.joined {
		return v.Detail
	}
	return v.Invariant + ": " + v.Detail
}

// violation builds a *Violation.
func violation(inv, format string, args ...any) *Violation {
	return &Violation{Invariant: inv, Detail: fmt.Sprintf(format, args...)}
}
