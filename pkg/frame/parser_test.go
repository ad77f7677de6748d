package frame_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/frame/frametest"
)

// recorder is a Handler that logs every call, copying the slices it gets.
type recorder struct {
	echo   []frametest.Message
	pongs  [][]byte
	closed bool
	code   uint16
	reason []byte
}

func (r *recorder) OnMessage(op frame.Opcode, data []byte) error {
	r.echo = append(r.echo, frametest.Message{Op: op, Data: bytes.Clone(data)})
	return nil
}

func (r *recorder) OnPing(p []byte) error {
	r.echo = append(r.echo, frametest.Pong(bytes.Clone(p)))
	return nil
}

func (r *recorder) OnPong(p []byte) error {
	r.pongs = append(r.pongs, bytes.Clone(p))
	return nil
}

func (r *recorder) OnClose(code uint16, reason []byte) error {
	r.closed, r.code, r.reason = true, code, bytes.Clone(reason)
	return nil
}

// result is what a run of a case produced.
type result struct {
	rec     recorder
	err     error
	inFrame bool
}

// feed runs input through a fresh Parser in chunks of the sizes next returns.
func feed(c frametest.Case, next func() int) result {
	p := frame.Parser{MaxMessage: c.MaxMessage, Deflate: c.Deflate}
	var res result
	in := bytes.Clone(c.Input)
	for len(in) > 0 {
		n := min(next(), len(in))
		// A fresh copy of each chunk: the Parser must not keep a reference to it.
		chunk := bytes.Clone(in[:n])
		in = in[n:]
		if err := p.Feed(chunk, &res.rec); err != nil {
			res.err = err
			break
		}
		clear(chunk)
	}
	res.inFrame = p.InFrame()
	p.Release()
	return res
}

// check compares a run with the case's expectations.
func check(t *testing.T, c frametest.Case, res result) {
	t.Helper()
	if got, want := fmtMessages(res.rec.echo), fmtMessages(c.Echo); got != want {
		t.Errorf("echo:\n got %s\nwant %s", got, want)
	}
	if got, want := fmtBytes(res.rec.pongs), fmtBytes(c.Pongs); got != want {
		t.Errorf("pongs: got %s, want %s", got, want)
	}
	var ce *frame.CloseError
	switch {
	case c.Fail:
		if !errors.As(res.err, &ce) || ce.Code != c.Close {
			t.Errorf("error: got %v, want close %d", res.err, c.Close)
		}
		if res.rec.closed {
			t.Errorf("OnClose(%d) called, want the server to fail the connection", res.rec.code)
		}
	case c.Close != 0:
		if res.err != nil || !res.rec.closed || res.rec.code != c.Close {
			t.Errorf("got err %v, OnClose called %v with %d; want OnClose(%d)", res.err, res.rec.closed, res.rec.code, c.Close)
		}
	default:
		if res.err != nil || res.rec.closed {
			t.Errorf("got err %v, closed %v; want neither", res.err, res.rec.closed)
		}
	}
	if res.err == nil && res.inFrame != c.Partial {
		t.Errorf("InFrame() = %v, want %v", res.inFrame, c.Partial)
	}
}

func fmtMessages(ms []frametest.Message) string {
	var b strings.Builder
	for _, m := range ms {
		d := m.Data
		if len(d) > 40 {
			fmt.Fprintf(&b, "%v[%d bytes %q…] ", m.Op, len(d), d[:40])
			// Long payloads compare by content, not by the prefix printed.
			fmt.Fprintf(&b, "sum=%x ", checksum(d))
			continue
		}
		fmt.Fprintf(&b, "%v%q ", m.Op, d)
	}
	return b.String()
}

func fmtBytes(bs [][]byte) string {
	var ms []frametest.Message
	for _, b := range bs {
		ms = append(ms, frametest.Message{Op: frame.OpPong, Data: b})
	}
	return fmtMessages(ms)
}

func checksum(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

func TestCases(t *testing.T) {
	cases := frametest.Cases()
	if len(cases) < 60 {
		t.Fatalf("%d cases, want at least 60", len(cases))
	}
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.Name] {
			t.Fatalf("duplicate case name %q", c.Name)
		}
		names[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			t.Run("whole", func(t *testing.T) {
				check(t, c, feed(c, func() int { return len(c.Input) }))
			})
			t.Run("bytewise", func(t *testing.T) {
				check(t, c, feed(c, func() int { return 1 }))
			})
			t.Run("random splits", func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(len(c.Input)), 7))
				check(t, c, feed(c, func() int { return 1 + r.IntN(20) }))
			})
		})
	}
	t.Logf("%d cases", len(cases))
}

// A complete single-frame text message inside the read buffer must not allocate.
func TestFeedHotPathDoesNotAllocate(t *testing.T) {
	for _, size := range []int{0, 5, 125, 1000, 20000} {
		in := frametest.Client(frame.OpText, true, bytes.Repeat([]byte("é"), size/2))
		buf := make([]byte, len(in))
		var p frame.Parser
		var h nopHandler
		allocs := testing.AllocsPerRun(100, func() {
			copy(buf, in)
			if err := p.Feed(buf, h); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%d-byte message: %v allocations per Feed, want 0", size, allocs)
		}
	}
}

type nopHandler struct{}

func (nopHandler) OnMessage(frame.Opcode, []byte) error { return nil }
func (nopHandler) OnPing([]byte) error                  { return nil }
func (nopHandler) OnPong([]byte) error                  { return nil }
func (nopHandler) OnClose(uint16, []byte) error         { return nil }

func TestParserAtRestIsSmall(t *testing.T) {
	if n := unsafe.Sizeof(frame.Parser{}); n > 64 {
		t.Errorf("Parser is %d bytes, budget 64", n)
	}
}

// The message slice must point into the caller's buffer on the hot path.
func TestFeedDeliversSubslice(t *testing.T) {
	in := frametest.Client(frame.OpText, true, []byte("zero copy"))
	var got []byte
	var p frame.Parser
	err := p.Feed(in, handlerFunc(func(op frame.Opcode, data []byte) error {
		got = data
		return nil
	}))
	if err != nil || string(got) != "zero copy" {
		t.Fatalf("got %q, %v", got, err)
	}
	if &got[0] != &in[len(in)-len(got)] {
		t.Error("message was copied instead of unmasked in place")
	}
}

type handlerFunc func(frame.Opcode, []byte) error

func (f handlerFunc) OnMessage(op frame.Opcode, d []byte) error { return f(op, d) }
func (handlerFunc) OnPing([]byte) error                         { return nil }
func (handlerFunc) OnPong([]byte) error                         { return nil }
func (handlerFunc) OnClose(uint16, []byte) error                { return nil }

// A handler's error stops Feed at once and is returned as is.
func TestHandlerErrorStopsFeed(t *testing.T) {
	stop := errors.New("queue full")
	in := frametest.Join(frametest.Client(frame.OpText, true, []byte("a")), frametest.Client(frame.OpText, true, []byte("b")))
	calls := 0
	var p frame.Parser
	err := p.Feed(in, handlerFunc(func(frame.Opcode, []byte) error { calls++; return stop }))
	if err != stop || calls != 1 {
		t.Fatalf("got %v after %d calls, want %v after 1", err, calls, stop)
	}
	if err := p.Feed(frametest.Client(frame.OpText, true, []byte("c")), handlerFunc(func(frame.Opcode, []byte) error { calls++; return nil })); err != nil || calls != 1 {
		t.Fatalf("Feed after an error: %v, %d calls; want input ignored", err, calls)
	}
}

// Release resets a Parser mid-message so that it can serve a new connection.
func TestReleaseResets(t *testing.T) {
	p := frame.Parser{MaxMessage: 100, Deflate: true}
	var r recorder
	if err := p.Feed(frametest.Client(frame.OpText, false, []byte("half")), &r); err != nil || !p.InFrame() {
		t.Fatalf("err %v, InFrame %v", err, p.InFrame())
	}
	p.Release()
	if p.InFrame() || p.MaxMessage != 100 || !p.Deflate {
		t.Fatalf("after Release: InFrame %v, MaxMessage %d, Deflate %v", p.InFrame(), p.MaxMessage, p.Deflate)
	}
	if err := p.Feed(frametest.Client(frame.OpText, true, []byte("new")), &r); err != nil || len(r.echo) != 1 || string(r.echo[0].Data) != "new" {
		t.Fatalf("after Release: %v, %v", err, r.echo)
	}
}

func TestCloseErrorText(t *testing.T) {
	e := &frame.CloseError{Code: 1009, Reason: "message too large"}
	if got := e.Error(); got != "websocket: close 1009: message too large" {
		t.Errorf("Error() = %q", got)
	}
}
