package drill

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/redact"
)

// ErrUsage marks options the drill refuses (a scratch server that is the
// source database, a bad prefix).
var ErrUsage = errors.New("drill: usage")

// validPrefix is what a scratch database prefix may be: it leads every
// name the drill creates, and only such names are ever dropped.
var validPrefix = regexp.MustCompile(`^[a-z_][a-z0-9_]{2,39}$`)

// scratch creates and drops the drill's databases on one server.
type scratch struct {
	adminURL string // a database on the scratch server to connect to (e.g. postgres)
	prefix   string
	run      string // this run's id, part of every name
	n        int
	created  []string
}

// checkScratch refuses a scratch server connection that is the source
// database, and a prefix that could name databases the drill did not create.
func checkScratch(adminURL, sourceURL, prefix string) error {
	if !validPrefix.MatchString(prefix) {
		return fmt.Errorf("%w: scratch prefix %q must be 3–40 lower-case letters, digits or _ (it leads every database the drill creates and drops)", ErrUsage, prefix)
	}
	a, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return fmt.Errorf("%w: scratch server URL: %s", ErrUsage, redact.Error(err, adminURL))
	}
	if strings.HasPrefix(a.Database, prefix) {
		return fmt.Errorf("%w: the scratch server URL names database %q, which starts with the scratch prefix; connect to a maintenance database (postgres)", ErrUsage, a.Database)
	}
	if sourceURL == "" {
		return nil
	}
	s, err := pgx.ParseConfig(sourceURL)
	if err != nil {
		return fmt.Errorf("%w: source URL: %s", ErrUsage, redact.Error(err, sourceURL))
	}
	if sameServer(a, s) && a.Database == s.Database {
		return fmt.Errorf("%w: the scratch server URL is the source database %q; the drill restores only into databases it creates — connect it to the server's maintenance database (postgres), better on another server", ErrUsage, s.Database)
	}
	if sameServer(a, s) && strings.HasPrefix(s.Database, prefix) {
		return fmt.Errorf("%w: the source database %q starts with the scratch prefix %q; choose another prefix", ErrUsage, s.Database, prefix)
	}
	return nil
}

func sameServer(a, b *pgx.ConnConfig) bool { return a.Host == b.Host && a.Port == b.Port }

// create makes a new empty database for step and returns its URL.
func (s *scratch) create(ctx context.Context, step string) (name, target string, err error) {
	s.n++
	name = fmt.Sprintf("%s%s_%d_%s", s.prefix, s.run, s.n, step)
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return "", "", fmt.Errorf("connect to the scratch server: %s", redact.Error(err, s.adminURL))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", fmt.Errorf("create scratch database %s: %w", name, err)
	}
	s.created = append(s.created, name)
	u, err := url.Parse(s.adminURL)
	if err != nil || u.Scheme == "" {
		return "", "", fmt.Errorf("%w: the scratch server must be given as a postgres:// URL", ErrUsage)
	}
	u.Path = "/" + name
	return name, u.String(), nil
}

// drop removes a database this run created (and only such a one).
func (s *scratch) drop(ctx context.Context, name string) error {
	i := -1
	for k, c := range s.created {
		if c == name {
			i = k
		}
	}
	if i < 0 || !strings.HasPrefix(name, s.prefix+s.run+"_") {
		return fmt.Errorf("drill: refusing to drop %s: not a database this run created", name)
	}
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return fmt.Errorf("connect to the scratch server: %s", redact.Error(err, s.adminURL))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop scratch database %s: %w", name, err)
	}
	s.created = append(s.created[:i], s.created[i+1:]...)
	return nil
}

// dropAll removes every database this run created and has not dropped.
func (s *scratch) dropAll(ctx context.Context) error {
	var errs []error
	for _, name := range append([]string(nil), s.created...) {
		errs = append(errs, s.drop(ctx, name))
	}
	return errors.Join(errs...)
}

// urlOf returns the URL of a database this run created.
func (s *scratch) urlOf(name string) (string, string, error) {
	u, err := url.Parse(s.adminURL)
	if err != nil || u.Scheme == "" {
		return "", "", fmt.Errorf("%w: the scratch server must be given as a postgres:// URL", ErrUsage)
	}
	u.Path = "/" + name
	return name, u.String(), nil
}
