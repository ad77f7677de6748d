package names

import (
	"errors"
	"strings"
	"testing"
)

func TestValidRoom(t *testing.T) {
	cases := []struct {
		room string
		ok   bool
	}{
		{"lobby", true},
		{"chat.general", true},
		{"a:b@c=d_e-f.G9", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{"a b", false},
		{"a..b", false},
		{".a", false},
		{"a.", false},
		{"a.*", false},
		{"a.>", false},
		{"ü", false},
		{"a\x00b", false},
		{"a/b", false},
	}
	for _, c := range cases {
		if got := ValidRoom(c.room); got != c.ok {
			t.Errorf("ValidRoom(%q) = %v, want %v", c.room, got, c.ok)
		}
		if err := CheckRoom(c.room); (err == nil) != c.ok {
			t.Errorf("CheckRoom(%q) = %v", c.room, err)
		}
	}
}

func TestPatterns(t *testing.T) {
	cases := []struct {
		pattern, room string
		match         bool
	}{
		{"lobby", "lobby", true},
		{"lobby", "lobby.x", false},
		{"chat.*", "chat.a", true},
		{"chat.*", "chat", false},
		{"chat.*", "chat.a.b", false},
		{"chat.>", "chat.a.b", true},
		{"chat.>", "chat", false},
		{">", "anything.at.all", true},
		{"*.x", "a.x", true},
		{"*.x", "a.y", false},
		{"user:1.*", "user:1.inbox", true},
	}
	for _, c := range cases {
		if err := CheckPattern(c.pattern); err != nil {
			t.Fatalf("CheckPattern(%q): %v", c.pattern, err)
		}
		if got := Match(c.pattern, c.room); got != c.match {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.room, got, c.match)
		}
	}
	for _, bad := range []string{"", "a..b", ">.a", "a b", "a.>.b", "**"} {
		if CheckPattern(bad) == nil {
			t.Errorf("CheckPattern(%q) accepted", bad)
		}
	}
	ps, err := Compile([]string{"chat.*", "dm.>"})
	if err != nil {
		t.Fatal(err)
	}
	if !ps.Allows("chat.a") || !ps.Allows("dm.x.y") || ps.Allows("admin") {
		t.Error("Compile/Allows mismatch")
	}
	none, _ := Compile(nil)
	if none.Allows("lobby") {
		t.Error("empty list allowed a room")
	}
	if !All().Allows("x") {
		t.Error("All denied")
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { Match("chat.*.x", "chat.a.x") })
	if allocs != 0 {
		t.Fatalf("Match allocates %v times", allocs)
	}
}

func FuzzRoom(f *testing.F) {
	for _, s := range []string{"lobby", "a.b", "a..b", "", "a b", "chat.>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidRoom(s) {
			if CheckPattern(s) != nil {
				t.Fatalf("valid room %q is not a valid pattern", s)
			}
			if !Match(s, s) {
				t.Fatalf("room %q does not match itself", s)
			}
			if len(s) == 0 || len(s) > MaxRoom {
				t.Fatalf("length rule broken for %q", s)
			}
		}
	})
}

func TestErrorsMatchErrInvalid(t *testing.T) {
	err := CheckRoom("a b")
	if !errors.Is(err, ErrInvalid) || strings.HasPrefix(err.Error(), "invalid name") {
		t.Fatalf("got %v", err)
	}
	if err := CheckPattern(">.a"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v", err)
	}
}
