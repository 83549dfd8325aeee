package chaos

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/catalog"
	"github.com/tidemark/tidemark/internal/objstore"
	"github.com/tidemark/tidemark/internal/objstore/s3"
	"github.com/tidemark/tidemark/internal/objstore/storeurl"
	"github.com/tidemark/tidemark/internal/testing/harness"
	"github.com/tidemark/tidemark/internal/testing/s3fault"
	"github.com/tidemark/tidemark/internal/testing/testkit"
	"github.com/tidemark/tidemark/internal/testing/testrig"
)

func init() {
	register(Scenario{
		Name: "region-copy-outage",
		Injects: "`archiver copy` follows the primary (versitygw, region A) into region B (a second versitygw with its own credentials, " +
			"read through a profile); every request to B fails (503 from its S3 fault proxy) for 2-3 minutes under load; " +
			"then the primary store is deleted entirely",
		Checks: "the primary's watermark advances through B's outage; B catches up with no gap (its chain head is the primary's); " +
			"with the primary gone, I1-I6 against B alone: verify of B clean, restores from B match the oracle at 25 random instants",
		Budget: 16 * time.Minute,
		Run:    regionCopyOutage,
	})
}

// region is a second S3 server standing for another region, reached by
// the copier through a fault proxy and by the checks directly.
type region struct {
	s3      *testrig.S3
	proxy   *s3fault.Proxy
	url     string // direct, with ?profile=
	viaURL  string // through the proxy
	store   objstore.Store
	profile string
}

// startRegion starts region B with its own credentials, written to a
// shared credentials file under profile "region-b" that every program this
// scenario starts reads (AWS_SHARED_CREDENTIALS_FILE).
func (e *Env) startRegion() (*region, error) {
	b, err := testrig.StartS3Process(e.Ctx, filepath.Join(e.Dir, "region-b"))
	if err != nil {
		return nil, err
	}
	e.Defer(func() { _ = b.Stop() })
	if err := b.CreateBucket(e.Ctx, "tidemark-b"); err != nil {
		return nil, err
	}
	r := &region{s3: b, profile: "region-b"}
	creds := filepath.Join(e.Dir, "aws-credentials")
	body := fmt.Sprintf("[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n", r.profile, b.AccessKey, b.SecretKey)
	if err := os.WriteFile(creds, []byte(body), 0o600); err != nil {
		return nil, err
	}
	old, had := os.LookupEnv("AWS_SHARED_CREDENTIALS_FILE")
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	e.Defer(func() {
		if had {
			os.Setenv("AWS_SHARED_CREDENTIALS_FILE", old)
		} else {
			os.Unsetenv("AWS_SHARED_CREDENTIALS_FILE")
		}
	})
	if r.proxy, err = s3fault.New(b.Endpoint, e.Seed+1); err != nil {
		return nil, err
	}
	e.Defer(func() { r.proxy.Close() })
	r.url = b.StoreURL("tidemark-b", "archive") + "&profile=" + r.profile
	r.viaURL = strings.Replace(r.url, b.Endpoint, r.proxy.URL(), 1)
	r.store, err = storeurl.OpenWith(e.Ctx, r.url, storeurl.Options{S3: s3.Options{AccessKey: b.AccessKey, SecretKey: b.SecretKey, MaxAttempts: 3}})
	return r, err
}

// startCopier starts `archiver copy` from the rig's store to the URLs.
func (e *Env) startCopier(to ...string) (*harness.Proc, error) {
	addr, err := testkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"copy", "--store", e.H.StoreURL, "--interval", "1s", "--http", addr, "--log-level", "debug"}
	for _, u := range to {
		args = append(args, "--to", u)
	}
	p, err := e.H.StartProgram(e.Ctx, "archiver", "copier", nil, args...)
	if err != nil {
		return nil, err
	}
	p.HTTPAddr = addr
	e.helpers = append(e.helpers, p)
	return p, e.waitReady(p, time.Minute)
}

func regionCopyOutage(e *Env) error {
	if err := e.Boot(Setup{Store: "s3"}); err != nil {
		return err
	}
	b, err := e.startRegion()
	if err != nil {
		return err
	}
	copier, err := e.startCopier(b.viaURL)
	if err != nil {
		return err
	}
	outage := e.Between(2*time.Minute, 3*time.Minute)
	e.StartLoad(outage+40*time.Second, 0)
	if err := e.Sleep(e.Between(10*time.Second, 20*time.Second)); err != nil {
		return err
	}
	if err := e.bOutage(b, copier, outage); err != nil {
		return err
	}
	for _, l := range e.loads {
		l.Wait()
	}
	if err := e.settleUntil(3*time.Minute, time.Time{}); err != nil {
		return err
	}
	if err := e.waitCaughtUp(b, copier, 3*time.Minute); err != nil {
		return err
	}
	if err := e.losePrimary(copier); err != nil {
		return err
	}
	e.Store = b.store
	return e.Finish(CheckOptions{Instants: 25, RestoreStoreURL: b.url, VerifyStoreURL: b.url})
}

// bOutage makes every request to region B fail for d under load and
// checks that the primary's watermark advances meanwhile while B's lag
// grows.
func (e *Env) bOutage(b *region, copier *harness.Proc, d time.Duration) error {
	leader, err := e.Leader(30 * time.Second)
	if err != nil {
		return err
	}
	wm0, err := leader.Metric(e.Ctx, "tidemark_archiver_watermark_lsn")
	if err != nil {
		return err
	}
	e.Mark()
	b.proxy.SetRules(s3fault.ErrorStorm(http.StatusServiceUnavailable, 1, 0))
	e.Logf("region b unreachable for %s", d.Round(time.Second))
	var maxLag, maxCopyLag float64
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if err := e.Sleep(2 * time.Second); err != nil {
			return err
		}
		if v, err := leader.Metric(e.Ctx, "tidemark_archiver_watermark_lag_seconds"); err == nil {
			maxLag = max(maxLag, v)
		}
		if m, err := copier.Metrics(e.Ctx); err == nil {
			maxCopyLag = max(maxCopyLag, sumMetric(m, "tidemark_copier_lag_seconds"))
		}
	}
	wm1, err := leader.Metric(e.Ctx, "tidemark_archiver_watermark_lsn")
	b.proxy.Clear()
	if err != nil {
		return err
	}
	st := b.proxy.Stats()
	e.Note("b_outage=%s b_failed_requests=%d primary_wm_lag_max=%.1fs copy_lag_max=%.0fs", d.Round(time.Second), st.Hits[s3fault.Fail], maxLag, maxCopyLag)
	switch {
	case wm1 <= wm0:
		return violation("I3", "the primary's watermark did not advance while region b was unreachable (%v -> %v)", wm0, wm1)
	case maxCopyLag <= 0:
		return violation("I5", "region b's copy lag never grew while it was unreachable")
	case st.Hits[s3fault.Fail] == 0:
		return fmt.Errorf("the fault proxy refused no request: the copier never tried region b")
	}
	return nil
}

// waitCaughtUp waits until region B holds the primary's whole catalog:
// the same last entry with the same hash.
func (e *Env) waitCaughtUp(b *region, copier *harness.Proc, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		pc, perr := catalog.Load(e.Ctx, e.Store)
		bc, berr := catalog.Load(e.Ctx, b.store)
		if perr == nil && berr == nil {
			ph, _ := pc.Head()
			bh, _ := bc.Head()
			if ph == bh && pc.NextSeq() == bc.NextSeq() {
				m, _ := copier.Metrics(e.Ctx)
				e.Note("b_entries=%d b_copied_objects=%.0f b_jumps=%.0f", bc.NextSeq()-1,
					sumMetric(m, "tidemark_copier_objects_copied_total"), sumMetric(m, "tidemark_copier_checkpoint_jumps_total"))
				return nil
			}
		}
		if time.Now().After(deadline) {
			return violation("I1", "region b did not catch up with the primary within %s (primary %v, b %v)\n%s", d, perr, berr, copier.LogTail(20))
		}
		if err := e.Sleep(time.Second); err != nil {
			return err
		}
	}
}

// losePrimary stops the copier, capture and the archivers, and deletes
// every object of the primary store.
func (e *Env) losePrimary(copier *harness.Proc) error {
	procs := append([]*harness.Proc{copier, e.Capture}, e.Archivers...)
	for _, p := range procs {
		if p != nil {
			_ = p.Stop(30 * time.Second)
		}
	}
	ctx, cancel := context.WithTimeout(e.Ctx, 2*time.Minute)
	defer cancel()
	objs, err := e.Store.List(ctx, "", "")
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := e.Store.Delete(ctx, o.Key); err != nil {
			return fmt.Errorf("delete the primary's %s: %w", o.Key, err)
		}
	}
	if left, err := e.Store.List(ctx, "", ""); err != nil || len(left) > 0 {
		return fmt.Errorf("the primary store still holds %d objects (%v)", len(left), err)
	}
	e.Note("primary_deleted=%d", len(objs))
	return nil
}
