package redact_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/internal/redact"
)

func TestURL(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		// postgres:// URLs
		{"password", "postgres://u:secret@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"postgresql scheme", "postgresql://u:secret@h/db", "postgresql://u:xxxxx@h/db"},
		{"escaped password", "postgres://u:p%40ss%2Fw@h/db", "postgres://u:xxxxx@h/db"},
		{"unescaped @ in password", "postgres://u:p@ss@h/db", "postgres://u:xxxxx@h/db"},
		{"unescaped / in password", "postgres://u:p/ss@h/db", "postgres://u:xxxxx@h/db"},
		{"empty password", "postgres://u:@h/db", "postgres://u:@h/db"},
		{"user only", "postgres://postgres@127.0.0.1:5/x?sslmode=disable", "postgres://postgres@127.0.0.1:5/x?sslmode=disable"},
		{"query password", "postgres://u@h/db?password=secret", "postgres://u@h/db?password=xxxxx"},
		{"query sslpassword", "postgres://u@h/db?sslmode=verify-full&sslpassword=keypass&sslkey=/k.pem",
			"postgres://u@h/db?sslmode=verify-full&sslpassword=xxxxx&sslkey=/k.pem"},
		{"query order and escaping kept", "postgres://u:pw@h/db?sslmode=require&application_name=a%20b&Password=x&connect_timeout=5",
			"postgres://u:xxxxx@h/db?sslmode=require&application_name=a%20b&Password=xxxxx&connect_timeout=5"},
		{"multi-host", "postgres://u:secret@h1:5432,h2:5433,[::1]:5434/db?target_session_attrs=read-write",
			"postgres://u:xxxxx@h1:5432,h2:5433,[::1]:5434/db?target_session_attrs=read-write"},
		{"multi-host without password", "postgres://u@h1,h2/db", "postgres://u@h1,h2/db"},
		{"fragment kept", "postgres://u:pw@h/db?password=a#frag", "postgres://u:xxxxx@h/db?password=xxxxx#frag"},

		// keyword/value DSNs
		{"dsn", "host=h user=u password=secret dbname=d", "host=h user=u password=xxxxx dbname=d"},
		{"dsn quoted with spaces", "host=h password='se cret' dbname=d", "host=h password=xxxxx dbname=d"},
		{"dsn escaped quote", `host=h password='it\'s me' dbname=d`, "host=h password=xxxxx dbname=d"},
		{"dsn escaped blank", `password=a\ b dbname=d`, "password=xxxxx dbname=d"},
		{"dsn blanks around =", "host = h password = secret", "host = h password = xxxxx"},
		{"dsn sslpassword", "host=h sslpassword=keypass sslkey=/k.pem", "host=h sslpassword=xxxxx sslkey=/k.pem"},
		{"dsn unterminated quote", "host=h password='abc def", "host=h password=xxxxx"},
		{"dsn options kept", "host=h options='-c search_path=a,b' application_name=x", "host=h options='-c search_path=a,b' application_name=x"},
		{"dsn without secret", "host=/var/run/postgresql dbname=d", "host=/var/run/postgresql dbname=d"},

		// NATS
		{"nats", "nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats user and password", "nats://u:secret@h:4222", "nats://u:xxxxx@h:4222"},
		{"nats token", "nats://s3cr3ttoken@h:4222", "nats://xxxxx@h:4222"},
		{"nats list", "nats://u:p1@a:4222,nats://u:p2@b:4222", "nats://u:xxxxx@a:4222,nats://u:xxxxx@b:4222"},
		{"nats list with blanks", "nats://u:p1@a:4222, tls://tok@b:4222", "nats://u:xxxxx@a:4222, tls://xxxxx@b:4222"},

		// store URLs
		{"s3", "s3://bucket/p?endpoint=http%3A%2F%2F127.0.0.1%3A17391&region=us-east-1",
			"s3://bucket/p?endpoint=http%3A%2F%2F127.0.0.1%3A17391&region=us-east-1"},
		{"s3 userinfo", "s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/p?region=eu-west-1", "s3://AKIAEXAMPLE:xxxxx@bucket/p?region=eu-west-1"},
		{"s3 query keys", "s3://bucket/p?access_key=AKIAEXAMPLE&secret_key=wJalr&session_token=tok&region=r",
			"s3://bucket/p?access_key=xxxxx&secret_key=xxxxx&session_token=xxxxx&region=r"},
		{"s3 aws-style names", "s3://bucket/p?aws_secret_access_key=wJalr&AWS_SESSION_TOKEN=tok",
			"s3://bucket/p?aws_secret_access_key=xxxxx&AWS_SESSION_TOKEN=xxxxx"},
		{"presigned", "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=abc&X-Amz-Security-Token=t&X-Amz-Expires=60",
			"https://b.s3.amazonaws.com/k?X-Amz-Credential=xxxxx&X-Amz-Signature=xxxxx&X-Amz-Security-Token=xxxxx&X-Amz-Expires=60"},
		{"endpoint with credentials", "s3://bucket/p?endpoint=http://u:secret@127.0.0.1:9000&region=r",
			"s3://bucket/p?endpoint=http://u:xxxxx@127.0.0.1:9000&region=r"},
		{"escaped endpoint with credentials", "s3://bucket/p?endpoint=http%3A%2F%2Fu%3Asecret%40127.0.0.1%3A9000",
			"s3://bucket/p?endpoint=http%3A%2F%2Fu%3Axxxxx%40127.0.0.1%3A9000"},
		{"file URL", "file:///var/backups/tm", "file:///var/backups/tm"},
		{"bare path", "/var/backups/tm", "/var/backups/tm"},
		{"relative path", "relative/dir", "relative/dir"},
		{"path with blanks", "/mnt/my backups/tm", "/mnt/my backups/tm"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact.URL(tt.in); got != tt.want {
				t.Errorf("URL(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestError(t *testing.T) {
	tests := []struct {
		name       string
		raw        string
		err        error
		secret     string // must not appear
		wantSubstr string
	}{
		{"raw quoted verbatim", "postgres://u:hunter22@h:bad/db",
			errors.New("parse postgres://u:hunter22@h:bad/db: invalid port"), "hunter22", "postgres://u:xxxxx@h:bad/db"},
		{"raw quoted with escapes", `postgres://u:hun"ter22@h:bad/db`,
			fmt.Errorf("parse %q: invalid port", `postgres://u:hun"ter22@h:bad/db`), `hun\"ter22`, "invalid port"},
		{"escaped password quoted unescaped", "postgres://u:p%40ssword@h/db",
			errors.New("password p@ssword rejected"), "p@ssword", "password xxxxx rejected"},
		{"dsn", "host=h password='se cret' port=x",
			errors.New("cannot parse host=h password='se cret' port=x"), "se cret", "host=h password=xxxxx port=x"},
		{"short secret left in the rest of the text", "postgres://u:pw@h/db",
			errors.New("pw: at postgres://u:pw@h/db"), "postgres://u:pw@", "pw: at postgres://u:xxxxx@h/db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redact.Error(tt.err, tt.raw)
			if strings.Contains(got, tt.secret) || !strings.Contains(got, tt.wantSubstr) {
				t.Errorf("Error = %q: want %q in it and no %q", got, tt.wantSubstr, tt.secret)
			}
		})
	}
}

// TestError_PgxParse checks the messages of the parser every connection
// string goes through.
func TestError_PgxParse(t *testing.T) {
	for _, raw := range []string{
		"postgres://u:hunter22@h:99999/db",
		"postgres://u:hunter 22@h:bad/db",
		"host=h password='hunter22' port=xx",
		"postgres://u:hunter22@[::1/db",
	} {
		_, err := pgx.ParseConfig(raw)
		if err == nil {
			t.Fatalf("ParseConfig(%q) accepted", raw)
		}
		if got := redact.Error(err, raw); strings.Contains(got, "hunter") {
			t.Errorf("Error(%q) = %q", raw, got)
		}
	}
}
