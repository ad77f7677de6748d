package frame_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/frame/frametest"
)

// trace is a Handler that checks the Parser's promises on every call and logs the
// calls as text, so that two runs can be compared.
type trace struct {
	t     *testing.T
	limit int
	log   []string
}

func (r *trace) OnMessage(op frame.Opcode, d []byte) error {
	if op != frame.OpText && op != frame.OpBinary {
		r.t.Fatalf("OnMessage with opcode %v", op)
	}
	if op == frame.OpText && !utf8.Valid(d) {
		r.t.Fatalf("OnMessage with invalid UTF-8 text %q", d)
	}
	if len(d) > r.limit {
		r.t.Fatalf("OnMessage with %d bytes, limit %d", len(d), r.limit)
	}
	r.log = append(r.log, fmt.Sprintf("%v %x", op, checksumOf(d)))
	return nil
}

func (r *trace) OnPing(p []byte) error {
	if len(p) > 125 {
		r.t.Fatalf("OnPing with %d bytes", len(p))
	}
	r.log = append(r.log, fmt.Sprintf("ping %q", p))
	return nil
}

func (r *trace) OnPong(p []byte) error {
	if len(p) > 125 {
		r.t.Fatalf("OnPong with %d bytes", len(p))
	}
	r.log = append(r.log, fmt.Sprintf("pong %q", p))
	return nil
}

func (r *trace) OnClose(code uint16, reason []byte) error {
	if code != frame.CloseNoStatus && !frame.ValidCloseCode(code) || !utf8.Valid(reason) {
		r.t.Fatalf("OnClose(%d, %q)", code, reason)
	}
	r.log = append(r.log, fmt.Sprintf("close %d %q", code, reason))
	return nil
}

func checksumOf(b []byte) uint64 { return checksum(b) }

// run feeds data in chunks and returns the log, the error and InFrame.
func run(t *testing.T, data []byte, deflate bool, max int, next func() int) string {
	p := frame.Parser{Deflate: deflate, MaxMessage: max}
	limit := max
	if limit == 0 {
		limit = frame.DefaultMaxMessage
	}
	r := &trace{t: t, limit: limit}
	in := append([]byte(nil), data...)
	var err error
	for len(in) > 0 && err == nil {
		n := min(next(), len(in))
		err = p.Feed(in[:n], r)
		in = in[n:]
	}
	var ce *frame.CloseError
	if err != nil && !errors.As(err, &ce) {
		t.Fatalf("Feed returned %T %v, want *CloseError", err, err)
	}
	out := fmt.Sprintf("%q err=%v inFrame=%v", r.log, err, p.InFrame())
	p.Release()
	return out
}

// FuzzParser: no input makes the Parser panic or break its promises, and the result
// does not depend on how the input is split.
func FuzzParser(f *testing.F) {
	for _, c := range frametest.Cases() {
		if len(c.Input) <= 4096 {
			f.Add(c.Input, c.Deflate, uint16(c.MaxMessage))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, deflate bool, max uint16) {
		whole := run(t, data, deflate, int(max), func() int { return len(data) })
		if bytewise := run(t, data, deflate, int(max), func() int { return 1 }); bytewise != whole {
			t.Fatalf("whole and bytewise differ:\n%s\n%s", whole, bytewise)
		}
		r := rand.New(rand.NewPCG(uint64(len(data)), uint64(max)))
		if split := run(t, data, deflate, int(max), func() int { return 1 + r.IntN(16) }); split != whole {
			t.Fatalf("whole and split differ:\n%s\n%s", whole, split)
		}
	})
}
