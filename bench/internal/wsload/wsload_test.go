package wsload

import (
	"bytes"
	"testing"
)

// serverFrame builds an unmasked server text frame.
func serverFrame(payload string) []byte {
	n := len(payload)
	b := []byte{0x81}
	switch {
	case n < 126:
		b = append(b, byte(n))
	case n < 1<<16:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, payload...)
}

func newTestShard() (*shard, *Conn) {
	c := &Client{marker: []byte(`{"t":`), ack: []byte(`"type":"ack"`)}
	s := &shard{c: c}
	return s, &Conn{shard: s}
}

// TestFeedSplit feeds the same stream whole and cut at every byte: the
// counts must not depend on how reads split frames.
func TestFeedSplit(t *testing.T) {
	var stream []byte
	stream = append(stream, serverFrame(`{"type":"welcome"}`)...)
	stream = append(stream, serverFrame(`{"type":"ack","id":1}`)...)
	stream = append(stream, serverFrame(`{"type":"event","data":{"t":123}}`+"\n"+`{"type":"event","data":{"t":124}}`)...)
	stream = append(stream, serverFrame(`{"type":"event","data":{"t":125,"p":"`+string(bytes.Repeat([]byte("x"), 300))+`"}}`)...)
	stream = append(stream, serverFrame(`{"type":"event","data":{"t":126,"p":"`+string(bytes.Repeat([]byte("y"), 70000))+`"}}`)...)
	want := [10]uint64{cDelivered: 4, cAcks: 1, cFrames: 5}

	for cut := 1; cut < len(stream); cut += 97 {
		s, k := newTestShard()
		for rest := stream; len(rest) > 0; {
			n := min(cut, len(rest))
			s.feed(k, rest[:n])
			rest = rest[n:]
		}
		if s.local != want {
			t.Fatalf("reads of %d bytes: counters %v, want %v", cut, s.local, want)
		}
		if len(k.partial) != 0 {
			t.Fatalf("reads of %d bytes: %d bytes left over", cut, len(k.partial))
		}
	}
}

func TestParseInt(t *testing.T) {
	for in, want := range map[string]int64{"123,": 123, "0": 0, "x": 0, "1795621236919000000}": 1795621236919000000} {
		if got := parseInt([]byte(in)); got != want {
			t.Errorf("parseInt(%q) = %d, want %d", in, got, want)
		}
	}
}
