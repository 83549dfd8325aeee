// Package storeurl opens an objstore backend from a store URL: it parses
// the scheme and calls the file or s3 backend. cmd/* mains and tests use
// it; it lives apart from objstore because the backends import objstore.
package storeurl
