// Package redact hides the secrets in connection strings (PostgreSQL,
// NATS and store URLs, keyword/value DSNs) before they are logged or
// printed. Only secret values are replaced; every other byte is kept, so
// a redacted string still shows the host, database and options it names.
package redact
