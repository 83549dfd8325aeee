package redact

import (
	"net/url"
	"strconv"
	"strings"
)

// Mask replaces each secret value.
const Mask = "xxxxx"

// minQuoted is the shortest secret Error replaces wherever it occurs in a
// message: shorter ones would mangle ordinary words.
const minQuoted = 4

// URL returns s with its secrets replaced by Mask. s may be
//   - a URL (postgres://, nats://, s3://, …): the password of its user
//     info and the value of every secret-named query parameter (password,
//     sslpassword, secret_key, X-Amz-Signature, …);
//   - a comma-separated list of URLs ("nats://a:4222,nats://b:4222");
//   - a keyword/value connection string ("host=h password='a b'"): the
//     value of every secret-named keyword, quoted or not.
//
// Anything else, a bare path for example, comes back unchanged.
func URL(s string) string {
	return scan(s, nil)
}

// Error returns err's text with raw, the connection string it concerns,
// replaced by URL(raw), and each secret of raw at least four bytes long
// replaced by Mask wherever else it appears, also percent-unescaped or
// Go-quoted (parsers may quote a part of raw, or raw escaped).
func Error(err error, raw string) string {
	msg := err.Error()
	if raw == "" {
		return msg
	}
	var secrets []string
	msg = strings.ReplaceAll(msg, raw, scan(raw, func(v string) { secrets = append(secrets, v) }))
	for _, v := range secrets {
		if len(v) >= minQuoted {
			msg = strings.ReplaceAll(msg, v, Mask)
		}
	}
	return msg
}

// scan redacts s, passing each secret it hides (and its unescaped form) to
// found when found is not nil.
func scan(s string, found func(string)) string {
	r := redactor{found: found}
	if schemeLen(s) == 0 {
		return r.keywordValue(s)
	}
	parts := splitURLs(s)
	for i, p := range parts {
		parts[i] = r.url(p)
	}
	return strings.Join(parts, "")
}

type redactor struct {
	found func(string)
}

// hide returns Mask for a non-empty secret value v and reports v, its
// unescaped form and its Go-quoted form (as %q prints it).
func (r redactor) hide(v string) string {
	if v == "" {
		return v
	}
	if r.found != nil {
		r.found(v)
		if u, err := url.PathUnescape(v); err == nil && u != v {
			r.found(u)
		}
		if q := strconv.Quote(v); q[1:len(q)-1] != v {
			r.found(q[1 : len(q)-1])
		}
	}
	return Mask
}

// schemeLen returns the length of s's "scheme://" prefix, or 0.
func schemeLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && strings.HasPrefix(s[i:], "://"):
			return i + 3
		default:
			return 0
		}
	}
	return 0
}

// splitURLs cuts a list of URLs before each comma (and the blanks after
// it) that starts another URL; the pieces keep their separators, so
// joining them gives s back. A comma within one URL (the host list of a
// multi-host postgres:// URL) does not split it.
func splitURLs(s string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] != ',' {
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		if schemeLen(s[j:]) > 0 {
			parts = append(parts, s[start:i], s[i:j])
			start = j
			i = j - 1
		}
	}
	return append(parts, s[start:])
}

// url redacts one URL: the password of its user info and its secret query
// values. The user info ends at the last '@' of the authority, or, when the
// authority has none, at the last '@' before the query (a password holding
// an unescaped '/').
func (r redactor) url(s string) string {
	n := schemeLen(s)
	if n == 0 {
		return s // a list separator
	}
	head, rest := s[:n], s[n:]
	beforeQuery, query, hasQuery := strings.Cut(rest, "?")
	authority := beforeQuery
	if i := strings.IndexByte(authority, '/'); i >= 0 {
		authority = authority[:i]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		at = strings.LastIndexByte(beforeQuery, '@')
	}
	if at >= 0 {
		user, pass, ok := strings.Cut(beforeQuery[:at], ":")
		switch {
		case ok:
			beforeQuery = user + ":" + r.hide(pass) + beforeQuery[at:]
		case tokenSchemes[strings.ToLower(head)]:
			beforeQuery = r.hide(user) + beforeQuery[at:]
		}
	}
	if !hasQuery {
		return head + beforeQuery
	}
	query, fragment, hasFragment := strings.Cut(query, "#")
	params := strings.Split(query, "&")
	for i, p := range params {
		if k, v, ok := strings.Cut(p, "="); ok {
			params[i] = k + "=" + r.param(k, v)
		}
	}
	out := head + beforeQuery + "?" + strings.Join(params, "&")
	if hasFragment {
		out += "#" + fragment
	}
	return out
}

// tokenSchemes are the schemes whose URLs may carry a secret token as the
// user name alone ("nats://token@host:4222").
var tokenSchemes = map[string]bool{"nats://": true, "tls://": true}

// param redacts the value v of query parameter k: all of it when k names a
// secret, the secrets of the URL it holds otherwise ("endpoint=http://…").
func (r redactor) param(k, v string) string {
	if secretName(k) {
		return r.hide(v)
	}
	u, err := url.QueryUnescape(v)
	if err != nil || schemeLen(u) == 0 {
		return v
	}
	red := r.url(u)
	switch {
	case red == u:
		return v
	case u == v:
		return red
	}
	return url.QueryEscape(red)
}

// keywordValue redacts a libpq-style "key=value key='quoted value'"
// string. Values are single-quoted (with \' and \\ escapes) or run to the
// next blank; text that is not key=value is copied as it is.
func (r redactor) keywordValue(s string) string {
	var b strings.Builder
	i := 0
	for i < len(s) {
		if isBlank(s[i]) {
			b.WriteByte(s[i])
			i++
			continue
		}
		k := i
		for i < len(s) && s[i] != '=' && !isBlank(s[i]) {
			i++
		}
		key := s[k:i]
		j := i
		for j < len(s) && isBlank(s[j]) {
			j++
		}
		if j == len(s) || s[j] != '=' {
			b.WriteString(s[k:i]) // a word without a value
			continue
		}
		j++
		for j < len(s) && isBlank(s[j]) {
			j++
		}
		b.WriteString(s[k:j])
		end := valueEnd(s, j)
		if secretName(key) {
			b.WriteString(r.hide(s[j:end]))
		} else {
			b.WriteString(s[j:end])
		}
		i = end
	}
	return b.String()
}

// valueEnd returns the end of the keyword value starting at s[i].
func valueEnd(s string, i int) int {
	quoted := i < len(s) && s[i] == '\''
	if quoted {
		i++
	}
	for i < len(s) {
		switch c := s[i]; {
		case c == '\\':
			i += 2
			continue
		case quoted && c == '\'':
			return i + 1
		case !quoted && isBlank(c):
			return i
		}
		i++
	}
	return len(s)
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// secretName reports whether a parameter or keyword named k carries a
// secret: its name (case, '_', '-' and '.' aside) holds password, secret,
// token, signature, credential, apikey or accesskey, or is pwd or pass.
func secretName(k string) bool {
	if u, err := url.QueryUnescape(k); err == nil {
		k = u
	}
	k = strings.NewReplacer("_", "", "-", "", ".", "").Replace(strings.ToLower(k))
	if k == "pwd" || k == "pass" {
		return true
	}
	for _, w := range []string{"password", "passwd", "secret", "token", "signature", "credential", "apikey", "accesskey"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}
