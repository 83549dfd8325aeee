package s3

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/tidemark/tidemark/internal/objstore"
)

// location is a parsed store URL.
type location struct {
	bucket    string
	prefix    string // "" or ends with "/"
	endpoint  string
	region    string
	pathStyle *bool // nil: not given
	profile   string
}

// parseURL parses "s3://bucket/prefix?endpoint=…&region=…&path_style=true&profile=…".
// Errors never echo query values, which could be secrets pasted by mistake.
func parseURL(rawURL string) (location, error) {
	var loc location
	u, err := url.Parse(rawURL)
	if err != nil {
		return loc, errors.New("parse url: not a valid URL")
	}
	if u.Scheme != "s3" {
		return loc, fmt.Errorf("parse url: scheme %q is not s3", u.Scheme)
	}
	if u.User != nil {
		return loc, errors.New("parse url: credentials in the URL are not accepted (use the environment or options)")
	}
	loc.bucket = u.Host
	if err := validBucket(loc.bucket); err != nil {
		return loc, err
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if err := objstore.ValidateKey(p); err != nil {
			return loc, fmt.Errorf("parse url: prefix: %w", err)
		}
		loc.prefix = p + "/"
	}
	for name, vals := range u.Query() {
		if len(vals) != 1 {
			return loc, fmt.Errorf("parse url: parameter %q given %d times", name, len(vals))
		}
		v := vals[0]
		switch name {
		case "endpoint":
			if err := validEndpoint(v); err != nil {
				return loc, err
			}
			loc.endpoint = strings.TrimRight(v, "/")
		case "region":
			loc.region = v
		case "path_style":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return loc, fmt.Errorf("parse url: path_style: want true or false")
			}
			loc.pathStyle = &b
		case "profile":
			loc.profile = v
		default:
			return loc, fmt.Errorf("parse url: unknown parameter %q (known: endpoint, region, path_style, profile)", name)
		}
	}
	return loc, nil
}

func validBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("parse url: bucket name %q must have 3 to 63 characters", b)
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("parse url: bucket name %q: only lowercase letters, digits, '-' and '.'", b)
		}
	}
	return nil
}

func validEndpoint(e string) error {
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("parse url: endpoint must be http(s)://host[:port]")
	}
	if u.User != nil {
		return errors.New("parse url: endpoint must not carry credentials")
	}
	return nil
}

// String formats the location back into a URL (no credentials are ever
// part of it).
func (l location) String() string {
	s := "s3://" + l.bucket + "/" + l.prefix
	q := url.Values{}
	if l.endpoint != "" {
		q.Set("endpoint", l.endpoint)
	}
	if l.region != "" {
		q.Set("region", l.region)
	}
	if l.pathStyle != nil {
		q.Set("path_style", strconv.FormatBool(*l.pathStyle))
	}
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}
