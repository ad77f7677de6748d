package keys

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestClaimsValidate(t *testing.T) {
	big := `"` + strings.Repeat("x", MaxMeta) + `"`
	many := make([]string, MaxRooms+1)
	for i := range many {
		many[i] = "r"
	}
	tests := []struct {
		name string
		c    Claims
		want string // substring of the error; "" = valid
	}{
		{"empty", Claims{}, ""},
		{"full", Claims{User: "alice@example.com", Meta: json.RawMessage(`{"name":"Ada"}`), Rooms: []string{"lobby", "team.a"},
			Allow: []string{"team.*", "chat.>"}, Session: "s-1:x@y=z"}, ""},
		{"meta at limit", Claims{Meta: json.RawMessage(big[:MaxMeta-1] + `"`)}, ""},
		{"user with space", Claims{User: "ada lovelace"}, `user "ada lovelace" is invalid`},
		{"user empty token", Claims{User: "a..b"}, "dot-separated tokens"},
		{"user too long", Claims{User: strings.Repeat("u", 129)}, "is invalid"},
		{"meta too large", Claims{Meta: json.RawMessage(big)}, "limit is 4096"},
		{"meta not JSON", Claims{Meta: json.RawMessage(`{name:1}`)}, "meta is not valid JSON"},
		{"meta two values", Claims{Meta: json.RawMessage(`1 2`)}, "meta is not valid JSON"},
		{"bad room", Claims{Rooms: []string{"lobby", "a b"}}, `rooms[1]: room "a b" is invalid: use 1–128 chars`},
		{"wildcard room", Claims{Rooms: []string{"team.*"}}, `rooms[0]: room "team.*" is invalid`},
		{"too many rooms", Claims{Rooms: many}, "rooms has 257 entries"},
		{"bad pattern", Claims{Allow: []string{"team.>.x"}}, `allow[0]: room pattern "team.>.x" is invalid: ">" must be the last token`},
		{"empty pattern", Claims{Allow: []string{""}}, "allow[0]: room pattern"},
		{"session with dot", Claims{Session: "a.b"}, `session "a.b" is invalid`},
		{"session with slash", Claims{Session: "a/b"}, "no dots, or leave it empty"},
		{"session too long", Claims{Session: strings.Repeat("s", 129)}, "session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			if strings.Contains(err.Error(), "invalid name:") {
				t.Fatalf("error %q keeps the names package prefix", err)
			}
		})
	}
}

func TestParseMintRequest(t *testing.T) {
	const def, max = 2 * time.Minute, time.Hour
	ok := []struct {
		body string
		ttl  time.Duration
		c    Claims
	}{
		{``, def, Claims{}},
		{`  {}  `, def, Claims{}},
		{`{"ttl":"90s"}`, 90 * time.Second, Claims{}},
		{`{"ttl":30}`, 30 * time.Second, Claims{}},
		{`{"ttl":1.5}`, 1500 * time.Millisecond, Claims{}},
		{`{"ttl":0}`, def, Claims{}},
		{`{"ttl":null,"meta":null}`, def, Claims{}},
		{`{"user":"u1","meta":{"n":1},"rooms":["a"],"allow":["b.*"],"session":"s1"}`, def,
			Claims{User: "u1", Meta: json.RawMessage(`{"n":1}`), Rooms: []string{"a"}, Allow: []string{"b.*"}, Session: "s1"}},
	}
	for _, tt := range ok {
		c, ttl, err := ParseMintRequest([]byte(tt.body), def, max)
		if err != nil {
			t.Errorf("ParseMintRequest(%s): %v", tt.body, err)
			continue
		}
		if ttl != tt.ttl {
			t.Errorf("ParseMintRequest(%s) ttl = %s, want %s", tt.body, ttl, tt.ttl)
		}
		got, _ := json.Marshal(c)
		want, _ := json.Marshal(tt.c)
		if string(got) != string(want) {
			t.Errorf("ParseMintRequest(%s) = %s, want %s", tt.body, got, want)
		}
	}

	bad := []struct{ body, want string }{
		{`{`, "not valid JSON"},
		{`{"user":}`, "not valid JSON"},
		{`[]`, "must be a JSON object"},
		{`"x"`, "must be a JSON object"},
		{`{} {}`, "data after the JSON object"},
		{`{"room":["a"]}`, `unknown field "room": a mint request takes user, meta, rooms, allow, session, ttl`},
		{`{"rooms":"lobby"}`, `field "rooms" must be an array of strings`},
		{`{"user":42}`, `field "user" must be a string`},
		{`{"ttl":"2 minutes"}`, `ttl "2 minutes" is invalid: use a duration such as "90s"`},
		{`{"ttl":true}`, "ttl true is invalid"},
		{`{"ttl":"-1m"}`, "is negative"},
		{`{"ttl":"500ms"}`, "too short: use at least 1s"},
		{`{"ttl":"2h"}`, "too long: the limit is 1h0m0s"},
		{`{"ttl":1e300}`, "too long"},
		{`{"rooms":["a b"]}`, `rooms[0]: room "a b" is invalid`},
		{`{"meta":{"a":` + strings.Repeat(" ", MaxMeta) + `1}}`, "limit is 4096"},
	}
	for _, tt := range bad {
		_, _, err := ParseMintRequest([]byte(tt.body), def, max)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseMintRequest(%.40s) = %v, want an error containing %q", tt.body, err, tt.want)
			continue
		}
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("ParseMintRequest(%.40s): %v does not wrap ErrBadRequest", tt.body, err)
		}
	}
}

func TestParseMintRequestDefaults(t *testing.T) {
	// Zero defaults mean the package defaults.
	_, ttl, err := ParseMintRequest(nil, 0, 0)
	if err != nil || ttl != DefaultTTL {
		t.Fatalf("ttl = %s, %v; want %s", ttl, err, DefaultTTL)
	}
	if _, _, err := ParseMintRequest([]byte(`{"ttl":"25h"}`), 0, 0); err == nil {
		t.Fatalf("25h accepted with the default maximum %s", DefaultMaxTTL)
	}
}
