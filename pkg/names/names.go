// Package names checks room names and room patterns, and matches one against
// the other without allocating.
//
// Room names become NATS subject tokens (rc.room.<room>), so the alphabet is
// the safe part of NATS's: no spaces, no wildcards, no empty tokens.
package names

import (
	"errors"
	"fmt"
	"strings"
)

// MaxRoom is the longest room name, in bytes.
const MaxRoom = 128

// ErrInvalid is matched (errors.Is) by every error of this package.
var ErrInvalid = errors.New("invalid name")

// invalidError carries a message for people and matches ErrInvalid, without
// prefixing the message with the sentinel's text.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

const roomRule = "use 1–128 chars of [A-Za-z0-9_-:@=] in dot-separated tokens"

func roomByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == ':' || c == '@' || c == '='
}

// CheckRoom returns nil if room is a valid room name, else an error for people.
func CheckRoom(room string) error {
	if ValidRoom(room) {
		return nil
	}
	return invalidf("room %s is invalid: %s", quote(room), roomRule)
}

// ValidRoom reports whether room is a valid room name.
func ValidRoom(room string) bool {
	if len(room) == 0 || len(room) > MaxRoom {
		return false
	}
	tokenLen := 0
	for i := 0; i < len(room); i++ {
		c := room[i]
		if c == '.' {
			if tokenLen == 0 {
				return false
			}
			tokenLen = 0
			continue
		}
		if !roomByte(c) {
			return false
		}
		tokenLen++
	}
	return tokenLen > 0
}

// ValidToken reports whether s can stand as a single subject token built from
// the room alphabet (session ids, user ids in rc.user.<user>, rpc methods use
// this, with dots allowed only where the caller splits them).
func ValidToken(s string) bool {
	if len(s) == 0 || len(s) > MaxRoom {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !roomByte(s[i]) {
			return false
		}
	}
	return true
}

// CheckPattern returns nil if p is a valid room pattern: a room name whose
// tokens may also be "*" (one token) or, last, ">" (one or more tokens).
func CheckPattern(p string) error {
	if len(p) == 0 || len(p) > MaxRoom {
		return invalidf("room pattern %s is invalid: %s; \"*\" matches one token, a final \">\" the rest", quote(p), roomRule)
	}
	rest := p
	for {
		tok, tail, more := strings.Cut(rest, ".")
		switch {
		case tok == "*":
		case tok == ">":
			if more {
				return invalidf("room pattern %s is invalid: \">\" must be the last token", quote(p))
			}
		case !ValidToken(tok):
			return invalidf("room pattern %s is invalid: %s; \"*\" matches one token, a final \">\" the rest", quote(p), roomRule)
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

// Match reports whether the valid room name room matches the valid pattern p,
// with NATS wildcard rules. Hot path: called for every join and publish
// against each allow pattern; it does not allocate.
func Match(p, room string) bool {
	for {
		ptok, prest, pmore := strings.Cut(p, ".")
		rtok, rrest, rmore := strings.Cut(room, ".")
		if ptok == ">" {
			return true
		}
		if ptok != "*" && ptok != rtok {
			return false
		}
		if !pmore || !rmore {
			return pmore == rmore
		}
		p, room = prest, rrest
	}
}

// Patterns is a compiled allow list. The zero value allows nothing; a nil
// *Patterns is not valid.
type Patterns struct {
	list []string
	all  bool
}

// allowAll is shared: it holds no state, so every session may point at it.
var allowAll = &Patterns{all: true}

// All returns a Patterns that matches every room.
func All() *Patterns { return allowAll }

// Compile checks every pattern and returns the compiled list. An empty list
// allows nothing.
func Compile(patterns []string) (*Patterns, error) {
	ps := &Patterns{list: make([]string, 0, len(patterns))}
	for _, p := range patterns {
		if err := CheckPattern(p); err != nil {
			return nil, err
		}
		if p == ">" {
			return allowAll, nil
		}
		ps.list = append(ps.list, p)
	}
	return ps, nil
}

// Allows reports whether room matches any pattern.
func (ps *Patterns) Allows(room string) bool {
	if ps.all {
		return true
	}
	for _, p := range ps.list {
		if Match(p, room) {
			return true
		}
	}
	return false
}

// quote shows a name in an error, cut short so hostile input can't flood logs.
func quote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return fmt.Sprintf("%q", s)
}
