package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tidemark/tidemark/internal/objstore"
)

// now is the clock leases use; tests replace it.
var now = time.Now

// LeaseInfo is one epoch object: who acquired the epoch and until when its
// lease runs.
type LeaseInfo struct {
	// Epoch numbers writer terms from 1.
	Epoch uint64 `json:"epoch"`
	// Holder is the process that acquired the epoch.
	Holder string `json:"holder"`
	// Acquired is when it was acquired; Renewed when it was last renewed.
	Acquired time.Time `json:"acquired"`
	Renewed  time.Time `json:"renewed"`
	// Expires is when the lease lapses unless renewed (holder's clock).
	Expires time.Time `json:"expires"`
	// Released is set by Release: a standby need not wait for Expires.
	Released bool `json:"released,omitempty"`
}

// Expired reports whether the lease is released or past Expires at t.
func (l LeaseInfo) Expired(t time.Time) bool { return l.Released || !t.Before(l.Expires) }

// Lease is an acquired writer epoch. Only the holder of the newest epoch
// may append; every older writer is fenced.
type Lease struct {
	store objstore.Store
	ttl   time.Duration

	// op serializes Renew and Release and is held across their store
	// requests; mu guards info only briefly, so Expires never waits for a
	// renewal stuck on a slow store.
	op   sync.Mutex
	mu   sync.Mutex
	info LeaseInfo
}

// current returns a copy of the lease's state.
func (l *Lease) current() LeaseInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.info
}

func (l *Lease) set(info LeaseInfo) {
	l.mu.Lock()
	l.info = info
	l.mu.Unlock()
}

// AcquireLease makes holder the catalog's writer for a new epoch with a
// lease of ttl: it creates catalog/epochs/<latest+1>.json (conditional
// create, so of two contenders exactly one wins) once the latest epoch's
// lease has expired or been released, or right away when the latest epoch
// is holder's own (a restarted process; holder names must be unique per
// process). While another holder's lease runs it returns *ErrLeaseHeld.
// Expiry compares the holder's clock with ours: ttl must exceed the clock
// skew between archivers by a wide margin.
func AcquireLease(ctx context.Context, store objstore.Store, holder string, ttl time.Duration) (*Lease, error) {
	if holder == "" || len(holder) > maxString {
		return nil, errors.New("catalog: acquire lease: holder must be 1 to 1024 bytes")
	}
	if ttl <= 0 {
		return nil, errors.New("catalog: acquire lease: ttl must be positive")
	}
	latest, err := CurrentLease(ctx, store)
	if err != nil {
		return nil, fmt.Errorf("catalog: acquire lease: %w", err)
	}
	t := now().UTC()
	if latest != nil && latest.Holder != holder && !latest.Expired(t) {
		return nil, &ErrLeaseHeld{Holder: latest.Holder, Epoch: latest.Epoch, Expires: latest.Expires}
	}
	var next uint64 = 1
	if latest != nil {
		next = latest.Epoch + 1
	}
	info := LeaseInfo{Epoch: next, Holder: holder, Acquired: t, Renewed: t, Expires: t.Add(ttl)}
	err = putLeaseInfo(ctx, store, info, objstore.PutOptions{IfAbsent: true})
	if errors.Is(err, objstore.ErrExists) {
		won, rerr := readLeaseInfo(ctx, store, next)
		switch {
		case rerr == nil && won.Holder == info.Holder && won.Acquired.Equal(info.Acquired) && won.Expires.Equal(info.Expires):
			// Ours: a retried request found its own earlier, successful put.
		case rerr == nil:
			return nil, &ErrLeaseHeld{Holder: won.Holder, Epoch: won.Epoch, Expires: won.Expires}
		default:
			return nil, &ErrLeaseHeld{Holder: "(unknown)", Epoch: next, Expires: t.Add(ttl)}
		}
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: acquire lease: %w", err)
	}
	return &Lease{store: store, ttl: ttl, info: info}, nil
}

// CurrentLease returns the newest epoch object, or nil when no epoch was
// ever acquired. An epoch object that cannot be read or parsed counts as
// expired at its modification time plus one hour.
func CurrentLease(ctx context.Context, store objstore.Store) (*LeaseInfo, error) {
	objs, err := store.List(ctx, EpochsPrefix, "")
	if err != nil {
		return nil, fmt.Errorf("list epochs: %w", err)
	}
	var (
		latest uint64
		mod    time.Time
	)
	for _, o := range objs {
		if n, ok := parseSeqKey(EpochsPrefix, o.Key); ok && n >= latest {
			latest, mod = n, o.ModTime
		}
	}
	if latest == 0 {
		return nil, nil
	}
	info, err := readLeaseInfo(ctx, store, latest)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return &LeaseInfo{Epoch: latest, Holder: "(unreadable)", Expires: mod.Add(time.Hour)}, nil
	}
	return &info, nil
}

func readLeaseInfo(ctx context.Context, store objstore.Store, epoch uint64) (LeaseInfo, error) {
	var info LeaseInfo
	b, err := objstore.ReadAll(ctx, store, EpochKey(epoch), MaxEpochBytes, objstore.WithRetry(objstore.DefaultRetry))
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("epoch object %s: %w", EpochKey(epoch), err)
	}
	if info.Epoch != epoch {
		return info, fmt.Errorf("epoch object %s says epoch %d", EpochKey(epoch), info.Epoch)
	}
	return info, nil
}

func putLeaseInfo(ctx context.Context, store objstore.Store, info LeaseInfo, opts objstore.PutOptions) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return store.Put(ctx, EpochKey(info.Epoch), bytes.NewReader(b), int64(len(b)), opts)
}

// Epoch returns the lease's epoch, the one to give NewWriter.
func (l *Lease) Epoch() uint64 { return l.current().Epoch }

// Holder returns the lease holder's name.
func (l *Lease) Holder() string { return l.current().Holder }

// Expires returns when the lease lapses unless renewed, as of the last
// renewal that completed; it does not wait for one in progress.
func (l *Lease) Expires() time.Time { return l.current().Expires }

// TTL returns the lease duration each renewal extends it by.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Renew extends the lease by its ttl by rewriting the holder's own epoch
// object. It returns ErrFenced when a newer epoch exists (the lease is
// lost for good). Renew at a fraction of the ttl (a third, say).
func (l *Lease) Renew(ctx context.Context) error {
	l.op.Lock()
	defer l.op.Unlock()
	info := l.current()
	if err := checkNotFenced(ctx, l.store, info.Epoch); err != nil {
		return fmt.Errorf("catalog: renew lease: %w", err)
	}
	t := now().UTC()
	info.Renewed, info.Expires, info.Released = t, t.Add(l.ttl), false
	if err := putLeaseInfo(ctx, l.store, info, objstore.PutOptions{}); err != nil {
		return fmt.Errorf("catalog: renew lease: %w", err)
	}
	l.set(info)
	return nil
}

// Release ends the lease so a standby can take over without waiting for
// it to expire. Releasing a lease that a newer epoch has fenced is a no-op.
func (l *Lease) Release(ctx context.Context) error {
	l.op.Lock()
	defer l.op.Unlock()
	info := l.current()
	if err := checkNotFenced(ctx, l.store, info.Epoch); err != nil {
		if errors.Is(err, ErrFenced) {
			return nil
		}
		return fmt.Errorf("catalog: release lease: %w", err)
	}
	t := now().UTC()
	info.Renewed, info.Expires, info.Released = t, t, true
	if err := putLeaseInfo(ctx, l.store, info, objstore.PutOptions{}); err != nil {
		return fmt.Errorf("catalog: release lease: %w", err)
	}
	l.set(info)
	return nil
}
