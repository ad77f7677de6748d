package hist

import (
	"testing"
	"time"
)

func TestIndexLowerRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 31, 32, 33, 63, 64, 100, 1000, 12345, 1 << 20, 987654321, 1 << 39} {
		i := index(v)
		lo := lower(i)
		if lo > v {
			t.Fatalf("value %d: bucket %d starts at %d, above the value", v, i, lo)
		}
		if next := lower(i + 1); next <= v {
			t.Fatalf("value %d: next bucket %d starts at %d, not above the value", v, i+1, next)
		}
		if v >= 32 && float64(v-lo)/float64(v) > 0.032 {
			t.Fatalf("value %d: bucket lower bound %d is more than 3.2 %% off", v, lo)
		}
	}
}

func TestSummarize(t *testing.T) {
	var h H
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	s := h.Summarize()
	if s.N != 1000 {
		t.Fatalf("n = %d", s.N)
	}
	within := func(name string, got, want time.Duration) {
		if got > want || float64(want-got)/float64(want) > 0.035 {
			t.Errorf("%s = %v, want about %v", name, got, want)
		}
	}
	within("p50", s.P50, 500*time.Microsecond)
	within("p99", s.P99, 990*time.Microsecond)
	within("max", s.Max, 1000*time.Microsecond)

	var m H
	m.Merge(h.Snapshot())
	if m.Summarize() != s {
		t.Fatalf("merge changed the summary: %+v vs %+v", m.Summarize(), s)
	}
}
