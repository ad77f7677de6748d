package keys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/names"
)

// The fuzz targets here guard the inputs that reach a node from outside
// before any NATS round trip: mint request bodies (POST /_/keys,
// rc.keys.mint), connection keys (the /_/connect/<key> path) and the claims
// a key carries. Seeds live in f.Add and in testdata/fuzz/<target>; `make
// fuzz` runs each target for FUZZTIME.

// FuzzParseMintRequest feeds arbitrary bodies to ParseMintRequest. Whatever
// it accepts must be something Mint accepts too and must survive being
// re-encoded as a request (so the HTTP and NATS doors, which both decode
// with it, cannot disagree with Mint); whatever it refuses must be a
// caller's error (ErrBadRequest), never anything that would turn into a 5xx.
func FuzzParseMintRequest(f *testing.F) {
	for _, s := range []string{
		``,
		`{}`,
		`{"user":"u1","meta":{"n":1},"rooms":["a"],"allow":["b.*"],"session":"s1","ttl":"2m"}`,
		`{"ttl":30}`,
		`{"ttl":1.5}`,
		`{"ttl":"-1m"}`,
		`{"ttl":1e300}`,
		`{"meta":null,"ttl":null}`,
		`{"meta":` + "\n" + `{ "a" : [1, 2] }}`,
		`{"room":["a"]}`,
		`{"USER":"case-folded"}`,
		`{"user":"a"}{"user":"b"}`,
		`{"rooms":"lobby"}`,
		`[]`,
		`{"allow":["team.>",">"],"rooms":["x.y.z"]}`,
	} {
		f.Add([]byte(s))
	}
	const def, max = 2 * time.Minute, time.Hour
	f.Fuzz(func(t *testing.T, body []byte) {
		c, ttl, err := ParseMintRequest(body, def, max)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("ParseMintRequest(%q) = %v: not ErrBadRequest", body, err)
			}
			if err.Error() == "" {
				t.Fatalf("ParseMintRequest(%q): empty error message", body)
			}
			return
		}
		if ttl < MinTTL || ttl > max {
			t.Fatalf("ParseMintRequest(%q): ttl %s outside [%s, %s]", body, ttl, MinTTL, max)
		}
		checkValidClaims(t, c)
		if bytes.Equal(c.Meta, []byte("null")) {
			t.Fatalf("ParseMintRequest(%q): meta null kept instead of dropped", body)
		}
		// Mint's own checks must agree with the decoder's.
		if got, err := resolveTTL(ttl, def, max); err != nil || got != ttl {
			t.Fatalf("resolveTTL(%s) = %s, %v after ParseMintRequest accepted it", ttl, got, err)
		}
		// Re-encode as a request: the same claims and TTL must come back.
		again, err := json.Marshal(struct {
			Claims
			TTL string `json:"ttl"`
		}{c, ttl.String()})
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", c, err)
		}
		c2, ttl2, err := ParseMintRequest(again, def, max)
		if err != nil {
			t.Fatalf("ParseMintRequest(%s) (re-encoded from %q): %v", again, body, err)
		}
		if ttl2 != ttl || !sameClaims(c, c2) {
			t.Fatalf("round trip of %q: %+v %s, then %+v %s", body, c, ttl, c2, ttl2)
		}
	})
}

// FuzzParseKey feeds arbitrary strings to parseKey, the check Redeem runs
// before asking NATS anything. A key has exactly one valid spelling (43
// chars of canonical base64url), and everything else is refused locally.
func FuzzParseKey(f *testing.F) {
	var raw [secretBytes]byte
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	valid := base64.RawURLEncoding.EncodeToString(raw[:])
	for _, s := range []string{
		valid,
		valid[:42] + "B",              // non-canonical last char: the same bytes, refused
		valid[:42],                    // short
		valid + "A",                   // long
		valid[:20] + "+" + valid[21:], // std alphabet char
		valid[:42] + "=",              // padding
		"",
		"AAAAnotAkeyAAAA",
		"%41" + valid[3:],
	} {
		f.Add(s)
	}
	// A Store with no bucket: if Redeem went to NATS for a malformed key it
	// would panic on the nil JetStream handle.
	offline := &Store{}
	f.Fuzz(func(t *testing.T, secret string) {
		id, ok := parseKey(secret)
		if !ok {
			if id != "" {
				t.Fatalf("parseKey(%q) refused but returned id %q", secret, id)
			}
			if _, err := offline.Redeem(context.Background(), secret); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("Redeem(%q) of a malformed key = %v, want ErrInvalidKey without NATS", secret, err)
			}
			return
		}
		if len(secret) != SecretLen {
			t.Fatalf("parseKey accepted %q of length %d", secret, len(secret))
		}
		b, err := base64.RawURLEncoding.DecodeString(secret)
		if err != nil || len(b) != secretBytes {
			t.Fatalf("parseKey accepted %q, which is not 32 bytes of base64url: %v", secret, err)
		}
		if canon := base64.RawURLEncoding.EncodeToString(b); canon != secret {
			t.Fatalf("parseKey accepted %q, a non-canonical spelling of %q", secret, canon)
		}
		sum := sha256.Sum256(b)
		if want := hex.EncodeToString(sum[:]); id != want {
			t.Fatalf("parseKey(%q) = %q, want hex SHA-256 %q", secret, id, want)
		}
	})
}

// FuzzClaimsValidate checks Validate against what the rest of the system
// assumes of claims it passed: the node compiles rooms+allow into patterns
// at redemption and treats a failure as impossible (pkg/node/upgrade.go),
// users and sessions become NATS subject tokens, and the claims survive the
// bucket's JSON record unchanged.
func FuzzClaimsValidate(f *testing.F) {
	f.Add("alice@example.com", []byte(`{"name":"Ada"}`), "lobby", "team.a", "team.*", "chat.>", "s-1:x@y=z")
	f.Add("", []byte(nil), "", "", "", "", "")
	f.Add("a..b", []byte(`{name:1}`), "a b", "team.*", ">.a", "", "a.b")
	f.Add("u", []byte("1 2"), "x", "y", "*", ">", "s")
	f.Add("u", []byte("\"\xff\""), "x", "y", "a.*.c", "a.>", "s")
	f.Fuzz(func(t *testing.T, user string, meta []byte, room1, room2, allow1, allow2, session string) {
		c := Claims{User: user, Session: session}
		if len(meta) > 0 {
			c.Meta = meta
		}
		for _, r := range []string{room1, room2} {
			if r != "" {
				c.Rooms = append(c.Rooms, r)
			}
		}
		for _, p := range []string{allow1, allow2} {
			if p != "" {
				c.Allow = append(c.Allow, p)
			}
		}
		if err := c.Validate(); err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("Validate(%+v) = %v: not ErrBadRequest", c, err)
			}
			return
		}
		checkValidClaims(t, c)
		// What Mint stores and Redeem reads back.
		v, err := encodeRecord(record{Claims: c, Exp: 1})
		if err != nil {
			t.Fatalf("valid claims %+v cannot be stored: %v", c, err)
		}
		var rec record
		if err := json.Unmarshal(v, &rec); err != nil || rec.Exp != 1 {
			t.Fatalf("stored record %s does not read back: %v", v, err)
		}
		if !sameClaims(c, rec.Claims) {
			t.Fatalf("claims changed in the bucket: %+v became %+v", c, rec.Claims)
		}
	})
}

// checkValidClaims asserts what every accepted claim set guarantees.
func checkValidClaims(t *testing.T, c Claims) {
	t.Helper()
	if c.User != "" && !names.ValidRoom(c.User) {
		t.Fatalf("accepted user %q that is not a subject token sequence", c.User)
	}
	if c.Session != "" && !names.ValidToken(c.Session) {
		t.Fatalf("accepted session %q that is not one subject token", c.Session)
	}
	if len(c.Meta) > MaxMeta || (len(c.Meta) > 0 && !json.Valid(c.Meta)) {
		t.Fatalf("accepted meta %q (%d bytes)", c.Meta, len(c.Meta))
	}
	if len(c.Rooms) > MaxRooms || len(c.Allow) > MaxAllow {
		t.Fatalf("accepted %d rooms, %d patterns", len(c.Rooms), len(c.Allow))
	}
	for _, r := range c.Rooms {
		if !names.ValidRoom(r) {
			t.Fatalf("accepted room %q", r)
		}
	}
	// The node's redeem path: Compile(allow + rooms) "cannot fail".
	ps, err := names.Compile(append(slices.Clone(c.Allow), c.Rooms...))
	if err != nil {
		t.Fatalf("accepted claims whose patterns do not compile: %v (%+v)", err, c)
	}
	for _, r := range c.Rooms {
		if !ps.Allows(r) {
			t.Fatalf("a session may not use its own auto-joined room %q", r)
		}
	}
}

// sameClaims compares claims with meta compared as compacted JSON (the
// encoder compacts a RawMessage; whitespace is not part of the value).
func sameClaims(a, b Claims) bool {
	return a.User == b.User && a.Session == b.Session &&
		slices.Equal(a.Rooms, b.Rooms) && slices.Equal(a.Allow, b.Allow) &&
		bytes.Equal(compact(a.Meta), compact(b.Meta))
}

func compact(raw json.RawMessage) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}
