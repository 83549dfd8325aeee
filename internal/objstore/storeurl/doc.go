// Package storeurl opens any objstore backend from a URL. It links every
// backend (file, s3), so importing it makes objstore.Open work for all
// schemes; cmd/* mains and tests use it. It lives apart from objstore
// because the backends import objstore.
package storeurl
