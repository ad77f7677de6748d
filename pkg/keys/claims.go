package keys

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/roomcast/roomcast/pkg/names"
)

// Limits on claims. Meta is DESIGN.md's; the list caps only bound the size
// of a bucket entry (the node applies its own, usually lower, limit on rooms
// per connection).
const (
	// MaxMeta is the largest meta value, in bytes of JSON as sent.
	MaxMeta = 4 << 10
	// MaxRooms is the most auto-joined rooms one key may carry.
	MaxRooms = 256
	// MaxAllow is the most allow patterns one key may carry.
	MaxAllow = 256
	// MinTTL is the shortest key lifetime: JetStream message TTLs count
	// whole seconds.
	MinTTL = time.Second
)

// Claims is what a key grants the session that redeems it.
type Claims struct {
	// User is the app's user id, empty for anonymous. It becomes the
	// subject rc.user.<user>, so it follows the room-name rules: 1–128
	// chars of [A-Za-z0-9_-:@=] in dot-separated tokens (an e-mail address
	// fits; a display name belongs in Meta).
	User string `json:"user,omitempty"`
	// Meta is any JSON value of at most MaxMeta bytes, shown to peers in
	// presence. Never logged.
	Meta json.RawMessage `json:"meta,omitempty"`
	// Rooms are joined automatically on connect; each a valid room name.
	Rooms []string `json:"rooms,omitempty"`
	// Allow are the room patterns (NATS wildcards "*" and a final ">") the
	// session may join and publish to, beyond Rooms.
	Allow []string `json:"allow,omitempty"`
	// Session is the session id the connection will get. Empty at Mint
	// means one is generated, and Minted.Session reports it, so the minting
	// back-end can always address exactly that socket via rc.session.<id>.
	// 1–128 chars of [A-Za-z0-9_-:@=], no dots.
	Session string `json:"session,omitempty"`
}

// Validate returns nil if c can be minted, else an error that tells people
// which field is wrong and what to use instead.
func (c *Claims) Validate() error {
	if c.User != "" && !names.ValidRoom(c.User) {
		return badRequest("user %s is invalid: use 1–128 chars of [A-Za-z0-9_-:@=] in dot-separated tokens "+
			"(it becomes the NATS subject rc.user.<user>); put display names and other details in meta", quote(c.User))
	}
	if len(c.Meta) > 0 {
		if len(c.Meta) > MaxMeta {
			return badRequest("meta is %d bytes of JSON; the limit is %d (4 KiB): keep ids and display data there, fetch the rest from your app", len(c.Meta), MaxMeta)
		}
		if !json.Valid(c.Meta) {
			return badRequest("meta is not valid JSON: send a JSON value such as {\"name\":\"Ada\"}")
		}
	}
	if len(c.Rooms) > MaxRooms {
		return badRequest("rooms has %d entries; the limit is %d", len(c.Rooms), MaxRooms)
	}
	for i, r := range c.Rooms {
		if err := names.CheckRoom(r); err != nil {
			return badRequest("rooms[%d]: %s", i, plain(err))
		}
	}
	if len(c.Allow) > MaxAllow {
		return badRequest("allow has %d entries; the limit is %d: use wildcards such as \"team.*\" or \"team.>\"", len(c.Allow), MaxAllow)
	}
	for i, p := range c.Allow {
		if err := names.CheckPattern(p); err != nil {
			return badRequest("allow[%d]: %s", i, plain(err))
		}
	}
	if c.Session != "" && !names.ValidToken(c.Session) {
		return badRequest("session %s is invalid: use 1–128 chars of [A-Za-z0-9_-:@=], no dots, or leave it empty to get a generated one", quote(c.Session))
	}
	return nil
}

// plain drops the package prefix of a names error: at the edge the message
// alone reads better ("room "a b" is invalid: use ...").
func plain(err error) string {
	return strings.TrimPrefix(err.Error(), names.ErrInvalid.Error()+": ")
}

// quote shows a user-supplied value in an error, cut to a readable length.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

// mintRequest is the JSON body of POST /_/keys and rc.keys.mint.
type mintRequest struct {
	User    string          `json:"user"`
	Meta    json.RawMessage `json:"meta"`
	Rooms   []string        `json:"rooms"`
	Allow   []string        `json:"allow"`
	Session string          `json:"session"`
	// TTL is a Go duration string ("90s", "2m") or a number of seconds.
	TTL json.RawMessage `json:"ttl"`
}

// ParseMintRequest decodes a mint request body, as POST /_/keys and
// rc.keys.mint receive it:
//
//	{"user":"u1","meta":{...},"rooms":["lobby"],"allow":["team.*"],"session":"s1","ttl":"2m"}
//
// Every field is optional; an empty body mints an anonymous key. ttl is a
// duration string or a number of seconds; absent or 0 means defaultTTL, and
// it must lie within [MinTTL, maxTTL]; zero defaultTTL or maxTTL mean
// DefaultTTL and DefaultMaxTTL. Unknown fields are refused, so that a
// typo such as "room" does not silently mint a key without rooms. Errors
// wrap ErrBadRequest and are written for the caller.
func ParseMintRequest(body []byte, defaultTTL, maxTTL time.Duration) (Claims, time.Duration, error) {
	var req mintRequest
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return Claims{}, 0, decodeError(err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return Claims{}, 0, badRequest("the request body has data after the JSON object: send exactly one object")
		}
	}
	ttl, err := parseTTL(req.TTL)
	if err != nil {
		return Claims{}, 0, err
	}
	if ttl, err = resolveTTL(ttl, defaultTTL, maxTTL); err != nil {
		return Claims{}, 0, err
	}
	c := Claims{User: req.User, Rooms: req.Rooms, Allow: req.Allow, Session: req.Session}
	if len(req.Meta) > 0 && !bytes.Equal(req.Meta, []byte("null")) {
		c.Meta = req.Meta
	}
	if err := c.Validate(); err != nil {
		return Claims{}, 0, err
	}
	return c, ttl, nil
}

const requestFields = "user, meta, rooms, allow, session, ttl"

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the request body is not valid JSON (%v): send an object with any of %s", err, requestFields)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("the request body must be a JSON object with any of %s", requestFields)
		}
		want := map[string]string{
			"user": "a string", "session": "a string", "rooms": "an array of strings", "allow": "an array of strings",
		}[strings.SplitN(typ.Field, ".", 2)[0]]
		if want == "" {
			want = "of another type"
		}
		return badRequest("field %q must be %s, not a JSON %s", typ.Field, want, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return badRequest("unknown field %s: a mint request takes %s", field, requestFields)
	}
	return badRequest("the request body could not be read as JSON (%v)", err)
}

// parseTTL reads "2m", "90s" or 120 (seconds). Absent or null is 0.
func parseTTL(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return 0, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, badRequest("ttl %s is not a valid string", raw)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, badRequest("ttl %s is invalid: use a duration such as \"90s\" or \"2m\", or a number of seconds", quote(s))
		}
		return d, nil
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return 0, badRequest("ttl %s is invalid: use a duration such as \"90s\" or \"2m\", or a number of seconds", raw)
	}
	if secs > float64(1<<62)/float64(time.Second) {
		return 0, badRequest("ttl %s seconds is too long", raw)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// resolveTTL applies the default to 0 and checks the bounds. A zero
// defaultTTL or maxTTL means DefaultTTL or DefaultMaxTTL.
func resolveTTL(ttl, defaultTTL, maxTTL time.Duration) (time.Duration, error) {
	if defaultTTL <= 0 {
		defaultTTL = DefaultTTL
	}
	if maxTTL <= 0 {
		maxTTL = DefaultMaxTTL
	}
	switch {
	case ttl == 0:
		ttl = defaultTTL
	case ttl < 0:
		return 0, badRequest("ttl %s is negative: use a positive duration, or leave it out for the default %s", ttl, defaultTTL)
	}
	if ttl < MinTTL {
		return 0, badRequest("ttl %s is too short: use at least %s", ttl, MinTTL)
	}
	if ttl > maxTTL {
		return 0, badRequest("ttl %s is too long: the limit is %s", ttl, maxTTL)
	}
	return ttl, nil
}
