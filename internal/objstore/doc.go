// Package objstore is Tidemark's view of object storage: a small Store
// interface with one implementation per backend (objstore/s3,
// objstore/file) and a conformance suite (objstore/storetest) every backend
// passes. Everything read from a Store is untrusted input.
package objstore
