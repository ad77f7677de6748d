package frame_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/frame/frametest"
)

// benchFeed feeds in (copied fresh each time: Feed unmasks in place) in reads of
// chunk bytes.
func benchFeed(b *testing.B, in []byte, chunk int, deflate bool) {
	buf := make([]byte, len(in))
	p := frame.Parser{Deflate: deflate}
	var h nopHandler
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		copy(buf, in)
		for rest := buf; len(rest) > 0; {
			n := min(chunk, len(rest))
			if err := p.Feed(rest[:n], h); err != nil {
				b.Fatal(err)
			}
			rest = rest[n:]
		}
	}
}

// BenchmarkFeedText is the hot path: a complete single-frame masked text message in
// the read buffer (unmask in place, UTF-8 check, OnMessage with a subslice).
func BenchmarkFeedText(b *testing.B) {
	for _, n := range []int{16, 128, 1024, 16384} {
		in := frametest.Client(frame.OpText, true, event(n))
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchFeed(b, in, len(in), false) })
	}
}

func BenchmarkFeedBinary(b *testing.B) {
	in := frametest.Client(frame.OpBinary, true, event(1024))
	benchFeed(b, in, len(in), false)
}

// BenchmarkFeedBatch is several small messages per read, as a busy client sends them.
func BenchmarkFeedBatch(b *testing.B) {
	var in []byte
	for range 16 {
		in = append(in, frametest.Client(frame.OpText, true, event(100))...)
	}
	benchFeed(b, in, len(in), false)
}

// BenchmarkFeedSplit is a 16 KiB message arriving in 1500-byte reads: the assembly
// buffer path.
func BenchmarkFeedSplit(b *testing.B) {
	in := frametest.Client(frame.OpText, true, event(16384))
	benchFeed(b, in, 1500, false)
}

func BenchmarkFeedFragmented(b *testing.B) {
	m := event(1024)
	in := frametest.Join(frametest.Client(frame.OpText, false, m[:256]),
		frametest.Client(frame.OpContinuation, false, m[256:512]),
		frametest.Client(frame.OpContinuation, false, m[512:768]),
		frametest.Client(frame.OpContinuation, true, m[768:]))
	benchFeed(b, in, len(in), false)
}

// BenchmarkFeedDeflate is a compressed text message (pooled inflater, pooled output
// buffer).
func BenchmarkFeedDeflate(b *testing.B) {
	for _, n := range []int{1024, 16384} {
		in := frametest.Client(frame.OpText, true, frametest.Deflate(event(n)), frametest.RSV1())
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchFeed(b, in, len(in), true) })
	}
}

// BenchmarkPreparedBytes is the fan-out side: per member, Bytes is a field read; the
// compression cost is paid once per broadcast (New+Deflate).
func BenchmarkPreparedBytes(b *testing.B) {
	for _, n := range []int{1024, 16384} {
		payload := event(n)
		b.Run(fmt.Sprintf("Plain/%d", n), func(b *testing.B) {
			f := frame.NewPrepared(frame.OpText, payload)
			b.ReportAllocs()
			for b.Loop() {
				_ = f.Bytes(false)
			}
		})
		b.Run(fmt.Sprintf("DeflateCached/%d", n), func(b *testing.B) {
			f := frame.NewPrepared(frame.OpText, payload)
			f.Bytes(true)
			b.ReportAllocs()
			for b.Loop() {
				_ = f.Bytes(true)
			}
		})
		b.Run(fmt.Sprintf("NewPlain/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				_ = frame.NewPrepared(frame.OpText, payload).Bytes(false)
			}
		})
		b.Run(fmt.Sprintf("NewDeflate/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			var size int
			for b.Loop() {
				size = len(frame.NewPrepared(frame.OpText, payload).Bytes(true))
			}
			b.ReportMetric(float64(size)/float64(len(frame.AppendFrame(nil, frame.OpText, payload))), "wire-ratio")
		})
	}
}

// BenchmarkAppendClose is a close frame into a reused buffer.
func BenchmarkAppendClose(b *testing.B) {
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = frame.AppendClose(buf[:0], frame.CloseSlowConsumer, "slow consumer")
	}
	_ = bytes.Clone(buf)
}
