// Package s3 is the S3 objstore backend (AWS S3 and S3-compatible servers
// such as MinIO or versitygw), built on aws-sdk-go-v2. Conditional creates
// use If-None-Match: * on PutObject and on CompleteMultipartUpload, so they
// hold for multipart objects too.
package s3
