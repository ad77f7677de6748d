package frame

import "unicode/utf8"

// utf8State is an incremental UTF-8 validator: the state of a DFA over bytes, after
// RFC 3629 §4 (no overlongs, no surrogates, nothing above U+10FFFF). It fits one byte
// so that a Parser at rest stays small, and it rejects a sequence at the first byte
// that makes it invalid, which lets a text message fail with 1007 before the rest of
// it arrives (RFC 6455 §8.1; Autobahn 6.4.x).
//
// The zero value is the start state.
type utf8State uint8

// DFA states. "need" states count the continuation bytes still expected; the E0, ED,
// F0 and F4 states carry the narrower range allowed for the next byte.
const (
	utf8Accept utf8State = iota // at a character boundary
	utf8Need1                   // one more byte in 80..BF
	utf8Need2                   // two more, next in 80..BF
	utf8NeedE0                  // after E0: next in A0..BF (no overlong), then one more
	utf8NeedED                  // after ED: next in 80..9F (no surrogate), then one more
	utf8Need3                   // three more, next in 80..BF
	utf8NeedF0                  // after F0: next in 90..BF (no overlong), then two more
	utf8NeedF4                  // after F4: next in 80..8F (≤ U+10FFFF), then two more
	utf8Reject                  // invalid; absorbing
)

// step advances the DFA by one byte.
func (s utf8State) step(c byte) utf8State {
	switch s {
	case utf8Accept:
		switch {
		case c < 0x80:
			return utf8Accept
		case c < 0xC2: // stray continuation byte, or overlong C0/C1 lead
			return utf8Reject
		case c < 0xE0:
			return utf8Need1
		case c == 0xE0:
			return utf8NeedE0
		case c == 0xED:
			return utf8NeedED
		case c < 0xF0:
			return utf8Need2
		case c == 0xF0:
			return utf8NeedF0
		case c < 0xF4:
			return utf8Need3
		case c == 0xF4:
			return utf8NeedF4
		}
		return utf8Reject
	case utf8Need1:
		if c >= 0x80 && c <= 0xBF {
			return utf8Accept
		}
	case utf8Need2:
		if c >= 0x80 && c <= 0xBF {
			return utf8Need1
		}
	case utf8NeedE0:
		if c >= 0xA0 && c <= 0xBF {
			return utf8Need1
		}
	case utf8NeedED:
		if c >= 0x80 && c <= 0x9F {
			return utf8Need1
		}
	case utf8Need3:
		if c >= 0x80 && c <= 0xBF {
			return utf8Need2
		}
	case utf8NeedF0:
		if c >= 0x90 && c <= 0xBF {
			return utf8Need2
		}
	case utf8NeedF4:
		if c >= 0x80 && c <= 0x8F {
			return utf8Need2
		}
	}
	return utf8Reject
}

// feed validates the next bytes of a text message. It returns false as soon as p
// makes the message invalid whatever follows; true means p may still be completed
// into valid UTF-8. Call done at the end of the message.
//
// Hot path: most chunks are whole and ASCII-heavy, so the middle of p goes through
// utf8.Valid (8 bytes at a time on ASCII); only the unfinished sequence at either end
// walks the DFA byte by byte.
func (s *utf8State) feed(p []byte) bool {
	st := *s
	// Finish a sequence left open by the previous chunk.
	for st != utf8Accept && len(p) > 0 {
		st = st.step(p[0])
		p = p[1:]
		if st == utf8Reject {
			*s = st
			return false
		}
	}
	if len(p) == 0 {
		*s = st
		return true
	}
	// Find a sequence cut by the end of p: a lead byte in the last 3 bytes whose
	// sequence is longer than what remains.
	cut := len(p)
	for j := len(p) - 1; j >= 0 && j >= len(p)-3; j-- {
		c := p[j]
		if c < 0x80 {
			break
		}
		if c >= 0xC0 {
			if j+seqLen(c) > len(p) {
				cut = j
			}
			break
		}
	}
	if !utf8.Valid(p[:cut]) {
		*s = utf8Reject
		return false
	}
	for _, c := range p[cut:] {
		st = st.step(c)
		if st == utf8Reject {
			break
		}
	}
	*s = st
	return st != utf8Reject
}

// done reports whether the message ended at a character boundary.
func (s utf8State) done() bool { return s == utf8Accept }

// seqLen is the length of the sequence a lead byte announces (≥ 0xC0). Invalid leads
// get a length too; the DFA rejects them.
func seqLen(c byte) int {
	switch {
	case c < 0xE0:
		return 2
	case c < 0xF0:
		return 3
	}
	return 4
}
