// Package hist is a fixed-size latency histogram for the benchmarks: log-linear
// buckets (32 per power of two, so any recorded value is within 3 % of its
// bucket's lower bound), no allocation per sample, and mergeable across
// goroutines and processes (the bucket array is plain JSON).
package hist

import (
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	subBits = 5 // 32 sub-buckets per power of two: ≤ 3.1 % relative error
	sub     = 1 << subBits
	// maxExp covers values up to 2^40 ns ≈ 18 minutes; longer ones are clamped.
	maxExp  = 40
	buckets = (maxExp + 1) * sub
)

// H counts durations in nanoseconds. Record is safe for concurrent use, but
// it is cheapest with one H per goroutine, merged at the end.
type H struct {
	counts [buckets]atomic.Uint64
}

// index maps a value to its bucket: values below 32 are exact, above that
// the exponent picks a row and the next 5 bits a column.
func index(v uint64) int {
	if v < sub {
		return int(v)
	}
	exp := bits.Len64(v) - 1 // ≥ subBits
	if exp > maxExp {
		return buckets - 1
	}
	shift := exp - subBits
	return (exp-subBits+1)*sub + int(v>>shift) - sub
}

// lower is the smallest value of bucket i.
func lower(i int) uint64 {
	if i < sub {
		return uint64(i)
	}
	row := i/sub - 1 + subBits
	col := uint64(i % sub)
	return (sub + col) << (row - subBits)
}

// Record adds one sample; negative durations (clock steps) count as 0.
func (h *H) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[index(uint64(d))].Add(1)
}

// Snapshot is a histogram's state as sparse (bucket, count) pairs, the form
// that travels between processes.
type Snapshot struct {
	Buckets []int    `json:"b,omitempty"`
	Counts  []uint64 `json:"c,omitempty"`
}

// Snapshot returns the non-empty buckets.
func (h *H) Snapshot() Snapshot {
	var s Snapshot
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			s.Buckets = append(s.Buckets, i)
			s.Counts = append(s.Counts, c)
		}
	}
	return s
}

// Reset zeroes every bucket. Not atomic with concurrent Records: call it
// between measurement phases.
func (h *H) Reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
}

// Merge adds s into h.
func (h *H) Merge(s Snapshot) {
	for k, i := range s.Buckets {
		if i >= 0 && i < buckets {
			h.counts[i].Add(s.Counts[k])
		}
	}
}

// Summary is what the result tables print.
type Summary struct {
	N   uint64        `json:"n"`
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// Summarize returns the count and the 50th, 90th and 99th percentiles and
// the maximum, each as the lower bound of its bucket.
func (h *H) Summarize() Summary {
	var s Summary
	for i := range h.counts {
		s.N += h.counts[i].Load()
	}
	if s.N == 0 {
		return s
	}
	targets := []struct {
		q   float64
		dst *time.Duration
	}{{0.50, &s.P50}, {0.90, &s.P90}, {0.99, &s.P99}}
	var seen uint64
	t := 0
	for i := range h.counts {
		c := h.counts[i].Load()
		if c == 0 {
			continue
		}
		seen += c
		for t < len(targets) && float64(seen) >= targets[t].q*float64(s.N) {
			*targets[t].dst = time.Duration(lower(i))
			t++
		}
		s.Max = time.Duration(lower(i))
	}
	return s
}
