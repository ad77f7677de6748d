package frame_test

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/frame/frametest"
)

// event returns n bytes of roomcast-like JSON broadcast lines.
func event(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"type":"event","room":"chat.lobby","event":"message","data":{"text":"hello %d"},"from":"s%04d","seq":%d}`+"\n", i*7, i%97, i)
	}
	return b.Bytes()[:n]
}

// splitFrame parses an unmasked server frame with a header of up to 10 bytes.
func splitFrame(t *testing.T, f []byte) (b0 byte, payload []byte) {
	t.Helper()
	n, h := int(f[1]&0x7F), 2
	switch n {
	case 126:
		n, h = int(f[2])<<8|int(f[3]), 4
	case 127:
		n, h = 0, 10
		for _, c := range f[2:10] {
			n = n<<8 | int(c)
		}
	}
	if f[1]&0x80 != 0 || len(f) != h+n {
		t.Fatalf("bad server frame: mask bit %v, %d bytes for header %d + payload %d", f[1]&0x80 != 0, len(f), h, n)
	}
	return f[0], f[h:]
}

// stdInflate inflates a permessage-deflate payload with compress/flate, an
// implementation independent of the one Prepared uses.
func stdInflate(t *testing.T, p []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

func TestPreparedPlain(t *testing.T) {
	payload := event(1000)
	f := frame.NewPrepared(frame.OpText, payload)
	want := frame.AppendFrame(nil, frame.OpText, payload)
	if !bytes.Equal(f.Bytes(false), want) || !bytes.Equal(f.Payload(), payload) || f.Op() != frame.OpText {
		t.Fatal("plain frame differs from AppendFrame")
	}
	payload[0] = 'X' // NewPrepared copied it
	if f.Payload()[0] == 'X' {
		t.Fatal("Prepared shares the caller's payload")
	}
}

func TestPreparedInPlace(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		payload := event(n)
		buf := append(make([]byte, frame.MaxHeaderSize, frame.MaxHeaderSize+n), payload...)
		f := frame.NewPreparedInPlace(frame.OpBinary, buf, frame.Compression{})
		if want := frame.AppendFrame(nil, frame.OpBinary, payload); !bytes.Equal(f.Bytes(false), want) {
			t.Fatalf("%d bytes: frame differs from AppendFrame", n)
		}
		if n > 0 && &f.Payload()[0] != &buf[frame.MaxHeaderSize] {
			t.Fatalf("%d bytes: payload was copied", n)
		}
	}
}

func TestPreparedCompressed(t *testing.T) {
	for _, size := range []int{256, 1000, 70000} {
		payload := event(size)
		f := frame.NewPrepared(frame.OpText, payload)
		c := f.Bytes(true)
		b0, z := splitFrame(t, c)
		if b0 != 0xC1 {
			t.Fatalf("%d bytes: first byte %#x, want FIN+RSV1+text", size, b0)
		}
		if len(c) >= len(f.Bytes(false)) {
			t.Errorf("%d bytes: compressed frame %d bytes, plain %d", size, len(c), len(f.Bytes(false)))
		}
		if got := stdInflate(t, z); !bytes.Equal(got, payload) {
			t.Fatalf("%d bytes: inflated payload differs", size)
		}
		if &f.Bytes(true)[0] != &c[0] {
			t.Error("compressed twice")
		}
		// Our own Parser reads it back, as a client frame.
		var r recorder
		p := frame.Parser{Deflate: true, MaxMessage: 1 << 20}
		if err := p.Feed(frametest.Client(frame.OpText, true, z, frametest.RSV1()), &r); err != nil || len(r.echo) != 1 || !bytes.Equal(r.echo[0].Data, payload) {
			t.Fatalf("%d bytes: parser round trip: %v", size, err)
		}
	}
}

func TestPreparedNotCompressed(t *testing.T) {
	random := make([]byte, 4000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	for _, tc := range []struct {
		name string
		f    *frame.Prepared
	}{
		{"under MinSize", frame.NewPrepared(frame.OpText, event(255))},
		{"under a custom MinSize", frame.NewPreparedWith(frame.OpText, event(1000), frame.Compression{MinSize: 1001})},
		{"incompressible", frame.NewPrepared(frame.OpBinary, random)},
		{"control frame", frame.NewPreparedWith(frame.OpPing, event(100), frame.Compression{MinSize: -1})},
	} {
		if !bytes.Equal(tc.f.Bytes(true), tc.f.Bytes(false)) {
			t.Errorf("%s: compressed", tc.name)
		}
	}
	tiny := frame.NewPreparedWith(frame.OpText, []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), frame.Compression{MinSize: -1, Level: 9})
	if b0, _ := splitFrame(t, tiny.Bytes(true)); b0 != 0xC1 {
		t.Errorf("MinSize -1: not compressed")
	}
}

// Every member gets the same bytes, compressed once, whoever asks first.
func TestPreparedConcurrent(t *testing.T) {
	f := frame.NewPrepared(frame.OpText, event(5000))
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Go(func() { got[i] = f.Bytes(i%2 == 0) })
	}
	wg.Wait()
	for i := range got {
		if &got[i][0] != &got[i%2][0] {
			t.Fatalf("member %d got a different slice", i)
		}
	}
}
