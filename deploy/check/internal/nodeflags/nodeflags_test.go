package nodeflags

import (
	"strings"
	"testing"
)

func TestCheckGossipKey(t *testing.T) {
	for _, ok := range []string{
		"AAECAwQFBgcICQoLDA0ODw==",                     // 16 bytes
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",             // 24
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", // 32
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=, AAECAwQFBgcICQoLDA0ODw==",
	} {
		if err := CheckGossipKey(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "hunter2", "c2VjcmV0LXBhc3N3b3Jk", "AAECAwQFBgcICQoLDA0ODw==,"} {
		err := CheckGossipKey(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("%q: the error shows the key: %v", bad, err)
		}
	}
}
