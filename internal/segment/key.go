package segment

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/event"
)

// KeyPrefix is the folder every segment object lives under.
const KeyPrefix = "segments/"

// KeyExt ends every segment object key.
const KeyExt = ".tms"

// Key returns the object key of a segment whose time bucket starts at
// bucketStart (taken in UTC, to the minute) and whose events span end LSNs
// first..last:
//
//	segments/2026/11/25/10/15/<table id>-<first end lsn, 16 hex>-<last end lsn, 16 hex>.tms
//
// LSNs are zero-padded upper-case hex, so keys of one table sort by position
// within a bucket.
func Key(bucketStart time.Time, first, last event.Position, tableID string) string {
	t := bucketStart.UTC()
	return fmt.Sprintf("%s%04d/%02d/%02d/%02d/%02d/%s-%016X-%016X%s", KeyPrefix,
		t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute(), tableID, uint64(first), uint64(last), KeyExt)
}

// KeyInfo is what a segment key says about its object.
type KeyInfo struct {
	// BucketStart is the key's time bucket (UTC, minute precision).
	BucketStart time.Time
	// FirstEndLSN and LastEndLSN are the end LSNs of the first and last events.
	FirstEndLSN, LastEndLSN event.Position
	// TableID is the table definition's ID (event.Table.ID).
	TableID string
}

// ParseKey parses a key made by Key (with or without a store prefix before
// "segments/"); it is the inverse of Key.
func ParseKey(key string) (KeyInfo, error) {
	i := strings.LastIndex(key, KeyPrefix)
	if i < 0 || !strings.HasSuffix(key, KeyExt) {
		return KeyInfo{}, fmt.Errorf("parse segment key %q: not segments/…%s", key, KeyExt)
	}
	parts := strings.Split(strings.TrimSuffix(key[i+len(KeyPrefix):], KeyExt), "/")
	if len(parts) != 6 {
		return KeyInfo{}, fmt.Errorf("parse segment key %q: want YYYY/MM/DD/HH/mm/name", key)
	}
	var nums [5]int
	for j, p := range parts[:5] {
		width := 2
		if j == 0 {
			width = 4
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || len(p) != width {
			return KeyInfo{}, fmt.Errorf("parse segment key %q: bad date part %q", key, p)
		}
		nums[j] = n
	}
	bucket := time.Date(nums[0], time.Month(nums[1]), nums[2], nums[3], nums[4], 0, 0, time.UTC)
	if bucket.Year() != nums[0] || int(bucket.Month()) != nums[1] || bucket.Day() != nums[2] ||
		bucket.Hour() != nums[3] || bucket.Minute() != nums[4] {
		return KeyInfo{}, fmt.Errorf("parse segment key %q: invalid date", key)
	}
	fields := strings.Split(parts[5], "-")
	if len(fields) != 3 || fields[0] == "" || len(fields[1]) != 16 || len(fields[2]) != 16 {
		return KeyInfo{}, fmt.Errorf("parse segment key %q: want <table id>-<16 hex>-<16 hex>", key)
	}
	first, err1 := strconv.ParseUint(fields[1], 16, 64)
	last, err2 := strconv.ParseUint(fields[2], 16, 64)
	if err1 != nil || err2 != nil {
		return KeyInfo{}, fmt.Errorf("parse segment key %q: bad LSN", key)
	}
	return KeyInfo{BucketStart: bucket, FirstEndLSN: event.Position(first), LastEndLSN: event.Position(last),
		TableID: fields[0]}, nil
}
