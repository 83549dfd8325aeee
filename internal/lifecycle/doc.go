// Package lifecycle is the per-store policy of a multi-store archive: one
// YAML file names the primary and its copies, in the order restores fall
// back through them, and for each store its gc grace, the storage class an
// object is uploaded in (by segment level), the class transitions the
// bucket's own lifecycle rule performs by age, and the retention lock
// (S3 Object Lock mode and period) every object must carry.
package lifecycle
