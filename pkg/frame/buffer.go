package frame

import "sync"

// Byte buffers for messages in progress, pooled by size class so that an idle
// connection holds none and a busy one reuses them. Classes grow by 4x from 128 B
// (a control frame) to 8 MiB; larger requests are plain allocations left to the GC,
// because keeping 16+ MiB buffers around for rare huge messages costs more than it
// saves.
//
// The pools are package-level caches with no observable behaviour (like net/http's
// bufio pools): they hold no configuration and no per-connection state.
const (
	minBufClass = 128
	numBufClass = 9 // 128 B << 2*8 = 8 MiB
)

var bufPools [numBufClass]sync.Pool

// bufClass returns the index of the smallest class holding n bytes, or -1.
func bufClass(n int) int {
	size := minBufClass
	for i := range numBufClass {
		if n <= size {
			return i
		}
		size <<= 2
	}
	return -1
}

// getBuf returns an empty buffer with capacity of at least n. Return it with putBuf.
func getBuf(n int) *[]byte {
	i := bufClass(n)
	if i < 0 {
		b := make([]byte, 0, n)
		return &b
	}
	if v := bufPools[i].Get(); v != nil {
		b := v.(*[]byte)
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, minBufClass<<(2*i))
	return &b
}

// putBuf returns b to its pool. Buffers of no class (too large) are dropped.
func putBuf(b *[]byte) {
	if b == nil {
		return
	}
	c := cap(*b)
	if i := bufClass(c); i >= 0 && minBufClass<<(2*i) == c {
		bufPools[i].Put(b)
	}
}

// appendBuf appends p to *b, moving to a larger pooled buffer when b is full. The
// capacity at least doubles, so a message fed one byte at a time costs O(log n)
// copies; it never exceeds what is needed by more than one class.
func appendBuf(b *[]byte, p []byte) *[]byte {
	if b == nil {
		b = getBuf(len(p))
	}
	if need := len(*b) + len(p); need > cap(*b) {
		nb := getBuf(max(need, 2*cap(*b)))
		*nb = append(*nb, *b...)
		putBuf(b)
		b = nb
	}
	*b = append(*b, p...)
	return b
}
