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
	return fmt.Sprintf("%s%s-%016X-%016X%s", BucketPrefix(bucketStart), tableID, uint64(first), uint64(last), KeyExt)
}

// BucketPrefix returns the folder of the time bucket holding t (UTC, to
// the minute), "segments/YYYY/MM/DD/HH/mm/". Prefixes sort in time order,
// so listing after one lists the buckets from there on.
func BucketPrefix(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%s%04d/%02d/%02d/%02d/%02d/", KeyPrefix, t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute())
}

// KeyInfo is what a segment key says about its object.
type KeyInfo struct {
	// BucketStart is the key's time bucket (UTC, minute precision).
	BucketStart time.Time
	// FirstEndLSN and LastEndLSN are the end LSNs of the first and last events.
	FirstEndLSN, LastEndLSN event.Position
	// TableID is the table definition's ID (event.Table.ID).
	TableID string
	// HasIndexRange marks the key of one part of a transaction too large for
	// one segment ("…-<first index, 8 hex>-<last index, 8 hex>.tms"); the
	// parts of one transaction share their LSNs and differ in FirstIndex.
	HasIndexRange         bool
	FirstIndex, LastIndex int
	// Level is the merge level of the segment ("…-L<level>.tms", 1 to
	// MaxLevel); 0, a flush segment, when the key has no level suffix.
	Level int
}

// KeyWithIndexRange returns the key of the part of a large transaction
// holding events first..last of it.
func KeyWithIndexRange(key string, first, last int) string {
	return strings.TrimSuffix(key, KeyExt) + fmt.Sprintf("-%08X-%08X", first, last) + KeyExt
}

// KeyWithLevel returns the key of a merged segment of level 1 to MaxLevel:
// key (from Key or KeyWithIndexRange) with "-L<level>" before ".tms",
//
//	segments/2026/11/25/10/00/<table id>-<first end lsn>-<last end lsn>[-<first idx>-<last idx>]-L2.tms
//
// A level-0 (flush) segment's key has no suffix: level 0 returns key as is.
func KeyWithLevel(key string, level int) string {
	if level == 0 {
		return key
	}
	return strings.TrimSuffix(key, KeyExt) + "-L" + strconv.Itoa(level) + KeyExt
}

// ParseKey parses a key made by Key, KeyWithIndexRange and KeyWithLevel
// (with or without a store prefix before "segments/"); it is their inverse
// and accepts nothing they do not make.
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
	var info KeyInfo
	if l, ok := parseLevel(fields[len(fields)-1]); ok {
		info.Level = l
		fields = fields[:len(fields)-1]
	} else if strings.HasPrefix(fields[len(fields)-1], "L") {
		return KeyInfo{}, fmt.Errorf("parse segment key %q: bad level, want L1..L%d", key, MaxLevel)
	}
	if len(fields) == 5 && len(fields[3]) == 8 && len(fields[4]) == 8 {
		fi, err1 := strconv.ParseUint(fields[3], 16, 32)
		li, err2 := strconv.ParseUint(fields[4], 16, 32)
		if err1 != nil || err2 != nil || fi > li {
			return KeyInfo{}, fmt.Errorf("parse segment key %q: bad index range", key)
		}
		info.HasIndexRange, info.FirstIndex, info.LastIndex = true, int(fi), int(li)
		fields = fields[:3]
	}
	if len(fields) != 3 || fields[0] == "" || len(fields[1]) != 16 || len(fields[2]) != 16 {
		return KeyInfo{}, fmt.Errorf("parse segment key %q: want <table id>-<16 hex>-<16 hex>[-<8 hex>-<8 hex>][-L<level>]", key)
	}
	first, err1 := strconv.ParseUint(fields[1], 16, 64)
	last, err2 := strconv.ParseUint(fields[2], 16, 64)
	if err1 != nil || err2 != nil {
		return KeyInfo{}, fmt.Errorf("parse segment key %q: bad LSN", key)
	}
	info.BucketStart, info.FirstEndLSN, info.LastEndLSN, info.TableID = bucket, event.Position(first), event.Position(last), fields[0]
	return info, nil
}

// parseLevel parses a key's level suffix, "L1" to "L<MaxLevel>" in decimal
// without leading zeros.
func parseLevel(f string) (int, bool) {
	if len(f) < 2 || f[0] != 'L' || f[1] == '0' {
		return 0, false
	}
	for _, c := range []byte(f[1:]) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	l, err := strconv.Atoi(f[1:])
	if err != nil || l > MaxLevel {
		return 0, false
	}
	return l, true
}
