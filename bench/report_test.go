package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestFailedGates(t *testing.T) {
	r := newResult("idle", Env{}, "smoke")
	r.target("a", "≤ 4 KiB", "1 KiB", true, true)
	r.target("b", "≥ 1 M/s", "70 k/s", false, false) // reported, not gated
	r.target("c", "< 0.01", "2.0", false, true)
	got := r.failedGates()
	if len(got) != 1 || !strings.HasPrefix(got[0], "c:") {
		t.Fatalf("failedGates = %q, want only c", got)
	}
}

func TestMarkdownAligned(t *testing.T) {
	var b bytes.Buffer
	writeMarkdown(&b, []string{"N", "RSS/conn"}, [][]string{{"15000", "1.32 KiB"}, {"5", "µs"}})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines:\n%s", len(lines), b.String())
	}
	w := len([]rune(lines[0]))
	for _, l := range lines {
		if len([]rune(l)) != w {
			t.Fatalf("ragged table:\n%s", b.String())
		}
	}
}
