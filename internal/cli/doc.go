// Package cli is the plumbing the Tidemark commands share: configuration
// from flags, environment and an optional YAML file; structured logging; the
// operations HTTP server (/livez, /readyz, /metrics); and exit codes.
package cli
