package frame

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// validPrefix reports whether p can be completed into valid UTF-8: the reference the
// incremental validator's fail-fast answer is checked against. A sequence cut short
// needs at most 3 more bytes, and the boundary values below hit every range a
// continuation byte may be restricted to (80–8F, 80–9F, 90–BF, A0–BF, 80–BF).
func validPrefix(p []byte) bool {
	if utf8.Valid(p) {
		return true
	}
	conts := []byte{0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF}
	var try func(q []byte, depth int) bool
	try = func(q []byte, depth int) bool {
		if utf8.Valid(q) {
			return true
		}
		if depth == 3 {
			return false
		}
		for _, c := range conts {
			if try(append(q[:len(q):len(q)], c), depth+1) {
				return true
			}
		}
		return false
	}
	return try(p, 0)
}

// checkUTF8 feeds data in random chunks, then one byte at a time, and compares the
// validator with utf8.Valid (whole messages) and validPrefix (every prefix).
func checkUTF8(t *testing.T, data []byte, seed uint64) {
	r := rand.New(rand.NewPCG(seed, uint64(len(data))))
	var s utf8State
	ok := true
	for rest := data; len(rest) > 0 && ok; {
		n := 1 + r.IntN(len(rest))
		ok = s.feed(rest[:n])
		rest = rest[n:]
	}
	if got, want := ok && s.done(), utf8.Valid(data); got != want {
		t.Fatalf("chunked %q: valid %v, utf8.Valid %v", data, got, want)
	}

	if len(data) > 64 {
		data = data[:64] // checking every prefix is quadratic
	}
	s = utf8Accept
	for i := range data {
		got := s.feed(data[i : i+1])
		if want := validPrefix(data[:i+1]); got != want {
			t.Fatalf("prefix %q: feed says %v, can be completed: %v", data[:i+1], got, want)
		}
		if !got {
			if s.feed([]byte("a")) {
				t.Fatalf("prefix %q: accepted more input after rejecting", data[:i+1])
			}
			break
		}
	}
}

func TestUTF8(t *testing.T) {
	for _, s := range []string{
		"", "a", "κόσμε", "\u0080", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uffff", "\U00010000", "\U0010ffff",
		"\xff", "\x80", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf",
		"\xf0\x80\x80\xaf", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80",
		"ab\xe2\x82", "\xe2\x82\xac", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64",
		"0123456789abcdef0123456789abcdef\xf0\x9f\x98\x80 long enough for the fast path",
	} {
		for seed := range uint64(20) {
			checkUTF8(t, []byte(s), seed)
		}
	}
}

// Every split of every string in a small exhaustive set: all 1- and 2-byte inputs
// from interesting bytes, then the same with a valid prefix.
func TestUTF8Exhaustive(t *testing.T) {
	interesting := []byte{0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
		0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF}
	for _, a := range interesting {
		for _, b := range interesting {
			for _, c := range interesting {
				checkUTF8(t, []byte{a, b, c}, uint64(a)^uint64(b)<<8)
			}
		}
	}
}

func FuzzUTF8(f *testing.F) {
	for _, s := range []string{"κόσμε", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ab\xe2\x82", "\U0010ffff\U00010000"} {
		f.Add([]byte(s), uint64(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		checkUTF8(t, data, seed)
	})
}
