package s3fault

import (
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
)

// s3ErrorBody renders an S3 error document for status.
func s3ErrorBody(status int, msg string) string {
	code := "InternalError"
	if status == http.StatusServiceUnavailable {
		code = "SlowDown"
	}
	var b strings.Builder
	b.WriteString(xml.Header)
	b.WriteString("<Error><Code>" + code + "</Code><Message>")
	_ = xml.EscapeText(&b, []byte(msg))
	b.WriteString("</Message><RequestId>s3fault</RequestId></Error>")
	return b.String()
}

// writeS3Error answers status with an S3 error document.
func writeS3Error(w http.ResponseWriter, status int, msg string) {
	body := s3ErrorBody(status, msg)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
