package gossip

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Encryption. Without a key memberlist trusts its network: anyone who
// reaches the gossip port can join, and can declare any node dead (its
// sessions are then dropped everywhere) or alive. With keys, every packet
// and stream is sealed with AES-GCM under the first key, and one that no
// key opens, or that is not sealed at all, is dropped: only nodes sharing
// a key are members, and nobody else can read or forge what they say.
//
// Several keys are for rotation without a split: every node must be able
// to open what every other sends, so a new key is first added for reading
// (old,new), then used for sending (new,old), then the old one dropped
// (new), each step rolled out to every node before the next.

// makeKey is how the errors tell people to make a key.
const makeKey = "make one with: head -c 32 /dev/urandom | base64"

// ParseKeys reads a comma list of gossip keys, each base64 (standard
// encoding, padded, as base64(1) prints) of 16, 24 or 32 bytes: AES-128,
// -192 or -256. The first encrypts, all decrypt. "" gives none: no
// encryption. Errors never repeat the text: it is a secret.
func ParseKeys(s string) ([][]byte, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	keys := make([][]byte, 0, len(parts))
	for i, p := range parts {
		which := "the key"
		if len(parts) > 1 {
			which = fmt.Sprintf("key %d of %d", i+1, len(parts))
		}
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("%s is empty: give base64 keys separated by commas, the one that encrypts first", which)
		}
		k, err := base64.StdEncoding.DecodeString(p)
		if err != nil {
			// err says where the bad byte is, never what it is.
			return nil, fmt.Errorf("%s is not base64 (%v): %s", which, err, makeKey)
		}
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("%s %w", which, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func checkKey(k []byte) error {
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return fmt.Errorf("is %d bytes once decoded; AES-GCM takes 16, 24 or 32: %s", n, makeKey)
	}
	return nil
}

// checkKeys checks Options.Keys the way ParseKeys checks text, for
// callers that fill them directly.
func checkKeys(keys [][]byte) error {
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return fmt.Errorf("gossip: key %d of %d %w", i+1, len(keys), err)
		}
	}
	return nil
}
