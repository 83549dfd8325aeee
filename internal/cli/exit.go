package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes shared by every Tidemark command (docs/exit-codes.md).
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
	ExitVerify  = 3
	// ExitWarning: a check (restorer verify, restorer drill) found
	// something that needs a look but does not make the archive wrong.
	ExitWarning     = 4
	ExitOutOfWindow = 10
	ExitCredentials = 12
	ExitInterrupted = 130
)

// Error is an error with an exit code and a hint the CLI prints as "Try: …".
type Error struct {
	Code int
	Err  error
	Hint string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// WithCode wraps err with an exit code and a hint.
func WithCode(code int, err error, hint string) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err, Hint: hint}
}

// Usage marks err as a usage or configuration error (exit 2).
func Usage(err error, hint string) error { return WithCode(ExitUsage, err, hint) }

// Execute runs root with a context cancelled by SIGINT or SIGTERM, prints
// a failure as "error: …" plus "Try: …" on stderr, and returns the exit code
// for main to pass to os.Exit.
func Execute(root *cobra.Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return Usage(err, fmt.Sprintf("%s --help", c.CommandPath()))
	})
	err := root.ExecuteContext(ctx)
	return Report(root.ErrOrStderr(), err, ctx.Err() != nil)
}

// Report prints err and returns its exit code; interrupted says whether a
// signal arrived.
func Report(w io.Writer, err error, interrupted bool) int {
	if err == nil {
		return ExitOK
	}
	code := ExitFailure
	var ce *Error
	switch {
	case errors.As(err, &ce):
		code = ce.Code
	case interrupted && errors.Is(err, context.Canceled):
		code = ExitInterrupted
	}
	fmt.Fprintf(w, "error: %v\n", err)
	if ce != nil && ce.Hint != "" {
		fmt.Fprintf(w, "Try: %s\n", ce.Hint)
	}
	return code
}
