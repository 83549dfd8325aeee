package s3fault

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Tiers simulates what versitygw lacks (docs/operations.md says which
// results rest on it): storage classes, their transitions by age, and the
// thaw of cold objects. Objects under PathContains keep the class their PUT
// asked for (x-amz-storage-class, default STANDARD) and move to each
// Transition's class once older than its After, as an S3 lifecycle rule
// moves them. HEAD reports the class (and x-amz-restore); a GET of a
// GLACIER or DEEP_ARCHIVE object answers 403 InvalidObjectState, as S3
// does, until a restore request (POST ?restore) was made and ThawAfter has
// passed since.
type Tiers struct {
	// PathContains selects the objects (e.g. "/segments/").
	PathContains string
	// Transitions move objects to colder classes by age, in order.
	Transitions []Transition
	// ThawAfter is how long a restore request takes.
	ThawAfter time.Duration
}

// Transition is one lifecycle step: after After, objects are in Class.
type Transition struct {
	After time.Duration
	Class string
}

// ColdRefused counts GETs of cold objects refused with InvalidObjectState
// (Stats.Hits).
const ColdRefused Action = 100

// tierState is what the proxy remembers per object path.
type tierState struct {
	mu     sync.Mutex
	cfg    *Tiers
	start  time.Time
	class  map[string]string
	putAt  map[string]time.Time
	thawAt map[string]time.Time // restore requested
	now    func() time.Time
}

// SetTiers turns the storage-class simulation on (nil: off). Objects
// stored before are taken as stored now, in STANDARD.
func (p *Proxy) SetTiers(t *Tiers) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t == nil {
		p.tiers = nil
		return
	}
	p.tiers = &tierState{cfg: t, start: time.Now(), class: map[string]string{}, putAt: map[string]time.Time{},
		thawAt: map[string]time.Time{}, now: time.Now}
}

func (p *Proxy) tierState() *tierState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tiers
}

// classOf returns an object's class now.
func (t *tierState) classOf(path string) string {
	at, ok := t.putAt[path]
	if !ok {
		at = t.start
	}
	class := t.class[path]
	if class == "" {
		class = "STANDARD"
	}
	age := t.now().Sub(at)
	for _, tr := range t.cfg.Transitions {
		if age >= tr.After {
			class = tr.Class
		}
	}
	return class
}

func cold(class string) bool { return class == "GLACIER" || class == "DEEP_ARCHIVE" }

// serveTiers handles r if the simulation concerns it; false passes it on.
func (p *Proxy) serveTiers(w http.ResponseWriter, r *http.Request) bool {
	t := p.tierState()
	if t == nil {
		return false
	}
	if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2" {
		p.serveList(t, w, r)
		return true
	}
	if !strings.Contains(r.URL.Path, t.cfg.PathContains) {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == "":
		t.class[path] = r.Header.Get("X-Amz-Storage-Class")
		t.putAt[path] = t.now()
	case r.Method == http.MethodPost && r.URL.Query().Has("restore"):
		class := t.classOf(path)
		if !cold(class) {
			writeS3ErrorCode(w, http.StatusForbidden, "InvalidObjectState", "restore is not allowed for the object's current storage class "+class)
			return true
		}
		at, asked := t.thawAt[path]
		switch {
		case !asked:
			t.thawAt[path] = t.now()
			w.WriteHeader(http.StatusAccepted)
		case t.now().Sub(at) < t.cfg.ThawAfter:
			writeS3ErrorCode(w, http.StatusConflict, "RestoreAlreadyInProgress", "object restore is already in progress")
		default:
			w.WriteHeader(http.StatusOK)
		}
		return true
	case r.Method == http.MethodGet && !r.URL.Query().Has("uploads"):
		class := t.classOf(path)
		if cold(class) && !t.thawed(path) {
			p.count(ColdRefused)
			writeS3ErrorCode(w, http.StatusForbidden, "InvalidObjectState", "The operation is not valid for the object's storage class")
			return true
		}
	case r.Method == http.MethodHead:
		rec := &headRecorder{ResponseWriter: w, extra: t.headHeaders(path)}
		p.rp.ServeHTTP(rec, r)
		return true
	}
	return false
}

// thawed reports whether path's restore request has completed.
func (t *tierState) thawed(path string) bool {
	at, ok := t.thawAt[path]
	return ok && t.now().Sub(at) >= t.cfg.ThawAfter
}

// headHeaders are the class and restore headers S3 would add to a HEAD.
func (t *tierState) headHeaders(path string) http.Header {
	h := http.Header{}
	h.Set("X-Amz-Storage-Class", t.classOf(path))
	if _, asked := t.thawAt[path]; asked {
		if t.thawed(path) {
			h.Set("X-Amz-Restore", `ongoing-request="false", expiry-date="`+t.now().Add(24*time.Hour).UTC().Format(http.TimeFormat)+`"`)
		} else {
			h.Set("X-Amz-Restore", `ongoing-request="true"`)
		}
	}
	return h
}

// headRecorder adds headers to a successful upstream HEAD response.
type headRecorder struct {
	http.ResponseWriter
	extra http.Header
}

func (h *headRecorder) WriteHeader(status int) {
	if status/100 == 2 {
		for k, v := range h.extra {
			h.Header()[k] = v
		}
	}
	h.ResponseWriter.WriteHeader(status)
}

// writeS3ErrorCode answers status with an S3 error document of code.
func writeS3ErrorCode(w http.ResponseWriter, status int, code, msg string) {
	body := `<?xml version="1.0" encoding="UTF-8"?>` + "\n<Error><Code>" + code + "</Code><Message>" + msg +
		"</Message><RequestId>s3fault</RequestId></Error>"
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

var (
	contentsRE = regexp.MustCompile(`(?s)<Contents>.*?</Contents>`)
	keyRE      = regexp.MustCompile(`<Key>([^<]*)</Key>`)
	classRE    = regexp.MustCompile(`<StorageClass>[^<]*</StorageClass>`)
)

// serveList forwards a ListObjectsV2 and rewrites each listed object's
// StorageClass to its simulated class, as S3 lists it.
func (p *Proxy) serveList(t *tierState, w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	p.rp.ServeHTTP(rec, r)
	body := rec.Body.String()
	if rec.Code == http.StatusOK {
		bucket := "/" + strings.Trim(r.URL.Path, "/") + "/"
		t.mu.Lock()
		body = contentsRE.ReplaceAllStringFunc(body, func(c string) string {
			m := keyRE.FindStringSubmatch(c)
			if m == nil {
				return c
			}
			path := bucket + unescapeXML(m[1])
			if !strings.Contains(path, t.cfg.PathContains) {
				return c
			}
			class := "<StorageClass>" + t.classOf(path) + "</StorageClass>"
			if !classRE.MatchString(c) {
				return strings.Replace(c, "</Contents>", class+"</Contents>", 1)
			}
			return classRE.ReplaceAllString(c, class)
		})
		t.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	_, _ = w.Write([]byte(body))
}

func unescapeXML(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&quot;", `"`, "&apos;", "'").Replace(s)
}
