package frame

import (
	"fmt"
	"testing"
)

func TestUnmask(t *testing.T) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	k := uint32(key[0]) | uint32(key[1])<<8 | uint32(key[2])<<16 | uint32(key[3])<<24
	for n := range 100 {
		for split := 0; split <= n; split++ {
			p := make([]byte, n)
			want := make([]byte, n)
			for i := range p {
				p[i] = byte(i * 7)
				want[i] = p[i] ^ key[i%4]
			}
			unmask(p[:split], k)
			unmask(p[split:], rotateKey(k, split))
			if string(p) != string(want) {
				t.Fatalf("n=%d split=%d: got % x, want % x", n, split, p, want)
			}
		}
	}
}

// unmaskBytewise is the obvious loop, to show what the 8-byte version buys.
func unmaskBytewise(p []byte, key [4]byte) {
	for i := range p {
		p[i] ^= key[i&3]
	}
}

func BenchmarkUnmask(b *testing.B) {
	for _, n := range []int{16, 125, 1024, 16384} {
		p := make([]byte, n)
		b.Run(fmt.Sprintf("uint64/%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				unmask(p, 0x3d21fa37)
			}
		})
		b.Run(fmt.Sprintf("bytewise/%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				unmaskBytewise(p, [4]byte{0x37, 0xfa, 0x21, 0x3d})
			}
		})
	}
}
