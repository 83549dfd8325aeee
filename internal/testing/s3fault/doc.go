// Package s3fault is an HTTP reverse proxy in front of an S3 server that
// injects storage faults: 500/503 storms, slow responses, truncated GET
// bodies, and writes that succeed upstream while the client is told they
// failed. Requests are forwarded with their Host header and every signed
// header untouched, so SigV4 signatures made for the proxy's address still
// validate upstream.
package s3fault
