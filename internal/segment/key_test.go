package segment

import (
	"testing"
	"time"
)

func TestKey(t *testing.T) {
	start := time.Date(2026, 11, 25, 11, 15, 42, 0, time.FixedZone("CET", 3600))
	got := Key(start, 0x16B374D848, 0x16B3800000, "0123456789abcdef")
	want := "segments/2026/11/25/10/15/0123456789abcdef-00000016B374D848-00000016B3800000.tms"
	if got != want {
		t.Fatalf("Key = %q, want %q", got, want)
	}
	info, err := ParseKey("prefix/" + got)
	if err != nil {
		t.Fatal(err)
	}
	if !info.BucketStart.Equal(time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC)) || info.FirstEndLSN != 0x16B374D848 ||
		info.LastEndLSN != 0x16B3800000 || info.TableID != "0123456789abcdef" {
		t.Fatalf("ParseKey = %+v", info)
	}
	if Key(info.BucketStart, info.FirstEndLSN, info.LastEndLSN, info.TableID) != got {
		t.Fatal("Key(ParseKey(k)) != k")
	}
	// Keys of one table sort by position.
	if Key(start, 0xF, 0xFF, "t") >= Key(start, 0x10, 0x100, "t") {
		t.Fatal("keys do not sort by LSN")
	}
}

func TestParseKey_Invalid(t *testing.T) {
	for _, k := range []string{
		"", "segments/x.tms", "segments/2026/11/25/10/15/t-00000016B374D848-00000016B3800000.json",
		"segments/2026/13/25/10/15/t-00000016B374D848-00000016B3800000.tms",
		"segments/2026/11/25/10/15/t-16B374D848-00000016B3800000.tms",
		"segments/2026/11/25/10/15/t-00000016B374D84G-00000016B3800000.tms",
		"segments/26/11/25/10/15/t-00000016B374D848-00000016B3800000.tms",
		"segments/2026/11/25/10/15/-00000016B374D848-00000016B3800000.tms",
	} {
		if info, err := ParseKey(k); err == nil {
			t.Errorf("ParseKey(%q) = %+v, want error", k, info)
		}
	}
}

func TestParseKey_IndexRange(t *testing.T) {
	bucket := time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC)
	k := KeyWithIndexRange(Key(bucket, 0x10, 0x10, "abc"), 4096, 8191)
	info, err := ParseKey(k)
	if err != nil || !info.HasIndexRange || info.FirstIndex != 4096 || info.LastIndex != 8191 ||
		info.FirstEndLSN != 0x10 || info.TableID != "abc" {
		t.Fatalf("ParseKey(%q) = %+v, %v", k, info, err)
	}
	plain, err := ParseKey(Key(bucket, 1, 2, "abc"))
	if err != nil || plain.HasIndexRange {
		t.Fatalf("plain key: %+v, %v", plain, err)
	}
	for _, bad := range []string{
		"segments/2026/11/25/10/15/abc-0000000000000010-0000000000000010-00000002-00000001.tms",
		"segments/2026/11/25/10/15/abc-0000000000000010-0000000000000010-0000000G-00000001.tms",
		"segments/2026/11/25/10/15/abc-0000000000000010-0000000000000010-0001-0002.tms",
	} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestKeyWithLevel(t *testing.T) {
	bucket := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	base := Key(bucket, 0x16B374D848, 0x16B3800000, "0123456789abcdef")
	for _, tc := range []struct {
		key       string
		level     int
		want      string
		hasRange  bool
		fi, li    int
		wantLevel int
	}{
		{KeyWithLevel(base, 0), 0, base, false, 0, 0, 0},
		{KeyWithLevel(base, 1), 1, "segments/2026/11/25/10/00/0123456789abcdef-00000016B374D848-00000016B3800000-L1.tms", false, 0, 0, 1},
		{KeyWithLevel(base, 3), 3, "segments/2026/11/25/10/00/0123456789abcdef-00000016B374D848-00000016B3800000-L3.tms", false, 0, 0, 3},
		{KeyWithLevel(base, MaxLevel), MaxLevel, "segments/2026/11/25/10/00/0123456789abcdef-00000016B374D848-00000016B3800000-L15.tms", false, 0, 0, MaxLevel},
		{KeyWithLevel(KeyWithIndexRange(base, 0, 4095), 2), 2,
			"segments/2026/11/25/10/00/0123456789abcdef-00000016B374D848-00000016B3800000-00000000-00000FFF-L2.tms", true, 0, 4095, 2},
	} {
		if tc.key != tc.want {
			t.Errorf("key %q, want %q", tc.key, tc.want)
			continue
		}
		info, err := ParseKey("store/prefix/" + tc.key)
		if err != nil {
			t.Errorf("ParseKey(%q): %v", tc.key, err)
			continue
		}
		if info.Level != tc.wantLevel || info.HasIndexRange != tc.hasRange || info.FirstIndex != tc.fi || info.LastIndex != tc.li ||
			info.FirstEndLSN != 0x16B374D848 || info.LastEndLSN != 0x16B3800000 || info.TableID != "0123456789abcdef" ||
			!info.BucketStart.Equal(bucket) {
			t.Errorf("ParseKey(%q) = %+v", tc.key, info)
		}
		// The inverse: rebuilding the key from what ParseKey says gives it back.
		back := Key(info.BucketStart, info.FirstEndLSN, info.LastEndLSN, info.TableID)
		if info.HasIndexRange {
			back = KeyWithIndexRange(back, info.FirstIndex, info.LastIndex)
		}
		if back = KeyWithLevel(back, info.Level); back != tc.key {
			t.Errorf("rebuilt %q from ParseKey(%q)", back, tc.key)
		}
	}
}

func TestParseKey_InvalidLevel(t *testing.T) {
	const k = "segments/2026/11/25/10/00/abc-0000000000000010-0000000000000020"
	for _, suffix := range []string{
		"-L0", "-L01", "-L16", "-L", "-l1", "-L1x", "-L+1", "-L-1", "-L1-L1", "-L99999999999999999999",
		"-L1-00000000-00000001", // level before the index range
		"-00000000-L1",          // half an index range
		"-L1-",
	} {
		if info, err := ParseKey(k + suffix + KeyExt); err == nil {
			t.Errorf("ParseKey(%q) = %+v, want error", k+suffix+KeyExt, info)
		}
	}
	if _, err := ParseKey(k + "-L9" + KeyExt); err != nil {
		t.Errorf("L9: %v", err)
	}
}
