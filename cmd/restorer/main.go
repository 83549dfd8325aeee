package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/restore"
)

// envPrefix prefixes every flag's environment variable.
const envPrefix = "TIDEMARK_RESTORER_"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// app holds what every subcommand shares.
type app struct {
	stdout, stderr io.Writer
	storeURL       string
	keyFile        string
	keyText        string
	jsonOut        bool
	logLevel       string
	logFormat      string
	log            *slog.Logger
	storesFile     string
	from           string
}

// run executes the command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SilenceErrors, root.SilenceUsage = true, true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return cli.Usage(err, c.CommandPath()+" --help")
	})
	err := classify(root.ExecuteContext(ctx))
	interrupted := ctx.Err() != nil
	if err != nil && a.jsonOut {
		a.emitError(err, cli.Report(io.Discard, err, interrupted))
	}
	return cli.Report(stderr, err, interrupted)
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "restorer",
		Short: "Point-in-time restore, listing and verification of a Tidemark archive",
		Long: `restorer reads a Tidemark archive (segments and catalog in object storage) and
restores the archived event table to any instant within the archive's window,
lists the window, or verifies the archive.

Every flag can also be set through the environment (TIDEMARK_RESTORER_<FLAG>,
e.g. TIDEMARK_RESTORER_STORE) or a YAML file (--config). Exit codes are listed
in docs/exit-codes.md.`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			// TIDEMARK_ENCRYPTION_KEYS is the archiver's variable: one Secret serves both.
			if err := cli.ApplyConfig(cmd, envPrefix, map[string]string{"TIDEMARK_ENCRYPTION_KEYS": "encryption-key"}); err != nil {
				return err
			}
			lg, err := cli.NewLogger(a.stderr, a.logLevel, a.logFormat)
			if err != nil {
				return err
			}
			a.log = lg
			return nil
		},
	}
	cli.AddConfigFlag(root)
	pf := root.PersistentFlags()
	pf.StringVar(&a.storeURL, "store", "", `archive location: "s3://bucket/prefix?endpoint=…&region=…", "file:///path" or a path`)
	pf.StringVar(&a.keyFile, "encryption-key-file", "", "file of age identities (AGE-SECRET-KEY-1…, one per line) that decrypt the segments")
	pf.StringVar(&a.keyText, "encryption-key", "", "age identities as text; prefer the environment variable "+envPrefix+"ENCRYPTION_KEY")
	pf.StringVar(&a.storesFile, "stores", "", "policy file naming the primary and its copies (docs/operations.md): restore and thaw fall back through them in order, verify compares with the primary and checks locks")
	pf.StringVar(&a.from, "from", "", "with --stores, the store to read first (default: the first, the primary)")
	pf.BoolVar(&a.jsonOut, "json", false, "machine-readable output on stdout: one JSON object per line (docs/restore.md)")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error (logs go to stderr)")
	pf.StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(a.restoreCmd(), a.listCmd(), a.verifyCmd(), a.drillCmd(), a.thawCmd(), a.replayCmd())
	return root
}

// emit writes one output record: a JSON object with a "type" field in
// --json mode, or the human form.
func (a *app) emit(typ string, v any, human func(w io.Writer)) {
	if !a.jsonOut {
		if human != nil {
			human(a.stdout)
		}
		return
	}
	b, err := json.Marshal(v)
	if err != nil || len(b) < 2 || b[0] != '{' {
		b = []byte(`{}`)
	}
	out := []byte(`{"type":` + quote(typ))
	if len(b) > 2 {
		out = append(out, ',')
	}
	out = append(out, b[1:]...)
	out = append(out, '\n')
	_, _ = a.stdout.Write(out)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// emitError writes the failure as a JSON record ({"type":"error"}).
func (a *app) emitError(err error, code int) {
	rec := struct {
		Code    int    `json:"exit_code"`
		Kind    string `json:"kind"`
		Message string `json:"message"`
		Hint    string `json:"hint,omitempty"`
	}{Code: code, Kind: kindOf(err), Message: err.Error()}
	var ce *cli.Error
	if errors.As(err, &ce) {
		rec.Hint = ce.Hint
	}
	a.emit("error", rec, nil)
}

// classify maps the restore package's error kinds to exit codes
// (docs/exit-codes.md) and attaches their hints.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ce *cli.Error
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted: %w", err)
	}
	code := cli.ExitFailure
	switch {
	case errors.Is(err, restore.ErrNoArchive), errors.Is(err, restore.ErrOutOfWindow):
		code = cli.ExitOutOfWindow
	case errors.Is(err, restore.ErrCredentials):
		code = cli.ExitCredentials
	case errors.Is(err, restore.ErrIntegrity), errors.Is(err, restore.ErrVerify):
		code = cli.ExitVerify
	case errors.Is(err, restore.ErrTarget), errors.Is(err, restore.ErrPrivilege), errors.Is(err, restore.ErrUsage),
		errors.Is(err, restore.ErrKey), errors.Is(err, restore.ErrBadTime):
		code = cli.ExitUsage
	}
	return cli.WithCode(code, err, restore.HintOf(err))
}

// kindOf names an error's class for the JSON error record.
func kindOf(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{
		{restore.ErrNoArchive, "no_archive"}, {restore.ErrOutOfWindow, "out_of_window"},
		{restore.ErrCredentials, "credentials"}, {restore.ErrIntegrity, "integrity"},
		{restore.ErrVerify, "verification"}, {restore.ErrTarget, "target"},
		{restore.ErrPrivilege, "privilege"}, {restore.ErrKey, "key"},
		{restore.ErrBadTime, "usage"}, {restore.ErrUsage, "usage"}, {context.Canceled, "interrupted"},
		{restore.ErrCold, "cold"},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	var ce *cli.Error
	if errors.As(err, &ce) && ce.Code == cli.ExitUsage {
		return "usage"
	}
	return "failure"
}
