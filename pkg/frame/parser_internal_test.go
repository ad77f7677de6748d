package frame

import (
	"testing"
	"unsafe"
)

// maskFrame builds a masked client frame (payload ≤ 125 bytes) without frametest,
// which cannot be imported here.
func maskFrame(b0 byte, payload []byte) []byte {
	key := [4]byte{1, 2, 3, 4}
	out := append([]byte{b0, 0x80 | byte(len(payload))}, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i&3])
	}
	return out
}

type nop struct{}

func (nop) OnMessage(Opcode, []byte) error { return nil }
func (nop) OnPing([]byte) error            { return nil }
func (nop) OnPong([]byte) error            { return nil }
func (nop) OnClose(uint16, []byte) error   { return nil }

// After each message, whatever path it took, the Parser holds no buffer.
func TestNoBuffersAtRest(t *testing.T) {
	fragmented := append(maskFrame(0x01, []byte("Hel")), maskFrame(0x80, []byte("lo"))...)
	ping := maskFrame(0x89, []byte("ping"))
	compressed := maskFrame(0xC1, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})
	for _, in := range [][]byte{fragmented, ping, compressed} {
		for _, chunk := range []int{1, 3, len(in)} {
			p := Parser{Deflate: true}
			buf := append([]byte(nil), in...)
			for len(buf) > 0 {
				n := min(chunk, len(buf))
				if err := p.Feed(buf[:n], nop{}); err != nil {
					t.Fatal(err)
				}
				buf = buf[n:]
			}
			if p.msg != nil || p.ctl != nil || p.InFrame() {
				t.Errorf("% x in %d-byte reads: buffers held at rest (msg %v, ctl %v, InFrame %v)", in, chunk, p.msg != nil, p.ctl != nil, p.InFrame())
			}
		}
	}
	if n := unsafe.Sizeof(Parser{}); n != 48 {
		t.Errorf("Parser is %d bytes; the docs say 48", n)
	}
}

// A huge MaxMessage must not overflow the limit arithmetic.
func TestHugeMaxMessage(t *testing.T) {
	p := Parser{MaxMessage: int(^uint(0) >> 1), Deflate: true}
	var got []byte
	h := recordFirst{&got}
	if err := p.Feed(maskFrame(0xC1, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), h); err != nil || string(got) != "Hello" {
		t.Fatalf("got %q, %v", got, err)
	}
}

type recordFirst struct{ p *[]byte }

func (r recordFirst) OnMessage(_ Opcode, d []byte) error {
	*r.p = append([]byte(nil), d...)
	return nil
}
func (recordFirst) OnPing([]byte) error          { return nil }
func (recordFirst) OnPong([]byte) error          { return nil }
func (recordFirst) OnClose(uint16, []byte) error { return nil }

// A message larger than the biggest pooled buffer class (8 MiB), as conformance
// suites send (Autobahn 9.x goes to 16 MiB), arriving in 64 KiB reads.
func TestHugeMessageInReads(t *testing.T) {
	const n = 10 << 20
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = byte(i % 251)
	}
	in := []byte{0x82, 0x80 | 127, 0, 0, 0, 0, 0, n >> 16 & 0xff, n >> 8 & 0xff, n & 0xff, 0, 0, 0, 0} // zero key
	in = append(in, payload...)
	p := Parser{MaxMessage: 16 << 20}
	var got []byte
	for rest := in; len(rest) > 0; {
		k := min(64<<10, len(rest))
		if err := p.Feed(rest[:k], recordFirst{&got}); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	if len(got) != n || string(got) != string(payload) {
		t.Fatalf("got %d bytes, want %d", len(got), n)
	}
	if p.msg != nil {
		t.Fatal("buffer held after the message")
	}
}
