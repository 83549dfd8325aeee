package lifecycle

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tidemark/tidemark/internal/objstore"
)

// Layout is a policy file: the stores of one archive.
type Layout struct {
	// Stores are the primary (first) and its copies, in fallback order.
	Stores []Store `yaml:"stores"`
}

// Store is one store's policy.
type Store struct {
	// Name identifies the store in flags, metrics and reports.
	Name string `yaml:"name"`
	// URL is the store (s3://…, file:///…, a directory).
	URL string `yaml:"url"`
	// GCGrace is how long archiver gc keeps superseded objects (0: the
	// default).
	GCGrace Duration `yaml:"gc_grace"`
	// Classes give the storage class an object is uploaded in, by
	// segment level: the entry with the highest level at or below the
	// segment's applies. Catalog objects are always uploaded in the class
	// of level 0.
	Classes []LevelClass `yaml:"storage_class"`
	// Transitions record the bucket lifecycle rule's moves by age (time
	// since upload), which the store performs on its own: Tidemark never
	// changes an object's class after upload, and restores read each
	// object's actual class (so a rule that differs from this record does
	// no harm beyond a surprise thaw).
	Transitions []AgeClass `yaml:"transitions"`
	// Lock is the retention every segment and catalog entry must carry
	// (empty Mode: none). The copier sets it on what it uploads to a
	// copy; for the primary, which archiver run writes, set the bucket's
	// default retention to it. verify checks it in either case.
	Lock Lock `yaml:"lock"`
}

// LevelClass maps segment levels to a storage class.
type LevelClass struct {
	Level int    `yaml:"level"`
	Class string `yaml:"class"`
}

// AgeClass is a transition by age.
type AgeClass struct {
	After Duration `yaml:"after"`
	Class string   `yaml:"class"`
}

// Lock is a retention lock policy.
type Lock struct {
	// Mode is GOVERNANCE or COMPLIANCE.
	Mode string `yaml:"mode"`
	// Retain is the period from upload.
	Retain Duration `yaml:"retain"`
}

// Duration is a time.Duration that also reads "90d" and "7y" (365 days).
type Duration time.Duration

// UnmarshalYAML reads Go durations, and whole days or years.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// ParseDuration reads "10m", "36h", "90d" or "7y".
func ParseDuration(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "y": 365 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			var k int
			if _, err := fmt.Sscanf(n, "%d", &k); err != nil || fmt.Sprint(k) != n || k < 0 {
				return 0, fmt.Errorf("duration %q: want a whole number before %q", s, suffix)
			}
			return time.Duration(k) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want 10m, 36h, 90d or 7y", s)
	}
	return d, nil
}

// classes a Store may name: S3's.
var classes = map[string]bool{"STANDARD": true, "STANDARD_IA": true, "ONEZONE_IA": true, "INTELLIGENT_TIERING": true,
	"GLACIER_IR": true, "GLACIER": true, "DEEP_ARCHIVE": true, "REDUCED_REDUNDANCY": true}

// Load reads and checks a policy file.
func Load(path string) (*Layout, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy %s: %w", path, err)
	}
	l, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return l, nil
}

// Parse decodes and checks a policy. Unknown keys are errors, so a typo
// never silently drops a lock.
func Parse(b []byte) (*Layout, error) {
	var l Layout
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&l); err != nil {
		return nil, err
	}
	return &l, l.check()
}

func (l *Layout) check() error {
	if len(l.Stores) == 0 {
		return errors.New("no stores: list the primary first, then its copies")
	}
	seen := map[string]bool{}
	for i, s := range l.Stores {
		where := fmt.Sprintf("store %d (%s)", i+1, s.Name)
		switch {
		case s.Name == "" || s.URL == "":
			return fmt.Errorf("%s: name and url are required", where)
		case seen[s.Name] || seen[s.URL]:
			return fmt.Errorf("%s: name or url given twice", where)
		case s.Lock.Mode != "" && s.Lock.Mode != "GOVERNANCE" && s.Lock.Mode != "COMPLIANCE":
			return fmt.Errorf("%s: lock mode %q: want GOVERNANCE or COMPLIANCE", where, s.Lock.Mode)
		case s.Lock.Mode != "" && s.Lock.Retain <= 0:
			return fmt.Errorf("%s: a lock needs a retain period", where)
		case s.Lock.Mode != "" && s.GCGrace > 0 && time.Duration(s.GCGrace) < time.Duration(s.Lock.Retain):
			return fmt.Errorf("%s: gc_grace %s is shorter than the lock's %s: gc could never delete what it is due to", where,
				time.Duration(s.GCGrace), time.Duration(s.Lock.Retain))
		}
		seen[s.Name], seen[s.URL] = true, true
		for _, c := range s.Classes {
			if !classes[c.Class] {
				return fmt.Errorf("%s: storage class %q is not an S3 class", where, c.Class)
			}
		}
		for _, t := range s.Transitions {
			if !classes[t.Class] {
				return fmt.Errorf("%s: transition class %q is not an S3 class", where, t.Class)
			}
		}
	}
	return nil
}

// Lookup returns the store named name.
func (l *Layout) Lookup(name string) (*Store, error) {
	var names []string
	for i := range l.Stores {
		if l.Stores[i].Name == name {
			return &l.Stores[i], nil
		}
		names = append(names, l.Stores[i].Name)
	}
	return nil, fmt.Errorf("no store %q in the policy (it has %s)", name, strings.Join(names, ", "))
}

// ClassFor returns the storage class a segment of level is uploaded in
// ("" = the store's default).
func (s *Store) ClassFor(level int) string {
	class, best := "", -1
	for _, c := range s.Classes {
		if c.Level <= level && c.Level > best {
			class, best = c.Class, c.Level
		}
	}
	return class
}

// PutOptions returns the put options of an object uploaded now: its class
// (by level; -1 for catalog objects) and its lock.
func (s *Store) PutOptions(level int, now time.Time) objstore.PutOptions {
	var o objstore.PutOptions
	o.StorageClass = s.ClassFor(max(level, 0))
	if s.Lock.Mode != "" {
		o.Lock = objstore.Retention{Mode: s.Lock.Mode, Until: now.Add(time.Duration(s.Lock.Retain)).UTC()}
	}
	return o
}

// LockShort reports why an object uploaded at uploaded with lock got does
// not meet the policy ("" when it does): no lock, another mode, or a
// retain-until before uploaded plus the period (a minute of slack for
// clocks).
func (s *Store) LockShort(uploaded time.Time, got objstore.Retention) string {
	if s.Lock.Mode == "" {
		return ""
	}
	want := uploaded.Add(time.Duration(s.Lock.Retain)).Add(-time.Minute)
	switch {
	case got.Mode == "":
		return fmt.Sprintf("no retention lock (the policy wants %s for %s)", s.Lock.Mode, time.Duration(s.Lock.Retain))
	case got.Mode != s.Lock.Mode:
		return fmt.Sprintf("lock mode %s, the policy wants %s", got.Mode, s.Lock.Mode)
	case got.Until.Before(want):
		return fmt.Sprintf("locked until %s, the policy wants at least %s", got.Until.UTC().Format(time.RFC3339), want.Add(time.Minute).UTC().Format(time.RFC3339))
	}
	return ""
}
