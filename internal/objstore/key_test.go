package objstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/objstore"
)

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"segments/2026/11/25/10/15/abc-0000000000000001-0000000000000002.tms", true},
		{"catalog/entries/00000000000000000001.json", true},
		{"with space/and+plus/ünïcode", true},
		{".hidden/x", true},
		{"dots..inside", true},
		{"", false},
		{"/abs", false},
		{"trailing/", false},
		{"a//b", false},
		{".", false},
		{"..", false},
		{"a/../b", false},
		{"a/./b", false},
		{"nul\x00", false},
		{`back\slash`, false},
		{"\xff\xfe", false},
		{"a/" + objstore.TempPrefix + "1", false},
		{strings.Repeat("k", objstore.MaxKeyLength), true},
		{strings.Repeat("k", objstore.MaxKeyLength+1), false},
	}
	for _, tt := range tests {
		err := objstore.ValidateKey(tt.key)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", tt.key, err, tt.ok)
		}
		if err != nil && !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", tt.key, err)
		}
	}
}
