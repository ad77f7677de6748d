package loop

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/frame/frametest"
)

// TestConformance runs every frametest case over a real TCP socket against
// the real loop with an echo handler, twice: the input written whole, and
// one byte per write. It checks what the server sends back, frame by frame,
// and that the socket ends when it should.
func TestConformance(t *testing.T) {
	servers := map[int]string{}
	addrFor := func(max int) string {
		if a, ok := servers[max]; ok {
			return a
		}
		_, a := startLoop(t, Options{MaxMessage: max, Compression: true, MaxQueueBytes: 4 << 20}, &echo{})
		servers[max] = a
		return a
	}
	for _, mode := range []string{"whole", "bytewise"} {
		for _, tc := range frametest.Cases() {
			t.Run(mode+"/"+tc.Name, func(t *testing.T) {
				if mode == "bytewise" && len(tc.Input) > 20000 {
					t.Skip("input too big to write a byte at a time quickly; covered whole and by the parser's own bytewise run")
				}
				addr := addrFor(tc.MaxMessage)
				t.Parallel()
				runCase(t, addr, tc, mode == "bytewise")
			})
		}
	}
}

func runCase(t *testing.T, addr string, tc frametest.Case, bytewise bool) {
	nc, br := rawUpgrade(t, addr, tc.Deflate)
	defer nc.Close()
	if bytewise {
		for i := range tc.Input {
			if _, err := nc.Write(tc.Input[i : i+1]); err != nil {
				break // the server may fail the connection before the end
			}
		}
	} else {
		_, _ = nc.Write(tc.Input)
	}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i, want := range tc.Echo {
		op, payload, err := readServerFrame(br)
		if err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
		if op != want.Op || !bytes.Equal(payload, want.Data) {
			t.Fatalf("echo %d: got %v %q, want %v %q", i, op, trim(payload), want.Op, trim(want.Data))
		}
	}
	switch {
	case tc.Close != 0:
		op, payload, err := readServerFrame(br)
		if err != nil || op != frame.OpClose {
			t.Fatalf("want close %d, got %v %q %v", tc.Close, op, trim(payload), err)
		}
		code := frame.CloseNoStatus
		if len(payload) >= 2 {
			code = binary.BigEndian.Uint16(payload)
		}
		if code != tc.Close {
			t.Fatalf("close code %d, want %d", code, tc.Close)
		}
		if tc.Fail {
			// The server fails the connection: it closes the socket
			// without waiting for our close frame.
			expectEOF(t, br)
		} else {
			expectEOF(t, br)
		}
	case tc.Partial:
		_ = nc.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
		if op, p, err := readServerFrame(br); err == nil {
			t.Fatalf("partial input: server sent %v %q", op, trim(p))
		}
	default:
		// Still in sync: a close handshake completes cleanly.
		_, _ = nc.Write(frametest.CloseFrame(1000, ""))
		op, payload, err := readServerFrame(br)
		if err != nil || op != frame.OpClose || binary.BigEndian.Uint16(payload) != 1000 {
			t.Fatalf("final close: %v %q %v", op, trim(payload), err)
		}
		expectEOF(t, br)
	}
}

func rawUpgrade(t *testing.T, addr string, deflate bool) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.(*net.TCPConn).SetNoDelay(true)
	var req strings.Builder
	req.WriteString("GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	req.WriteString("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	if deflate {
		req.WriteString("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; client_max_window_bits\r\n")
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(nc, req.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	if deflate != strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("deflate offered=%v, answer %q", deflate, ext)
	}
	if deflate && !strings.Contains(ext, "server_no_context_takeover") {
		t.Fatalf("answer lacks server_no_context_takeover: %q", ext)
	}
	return nc, br
}

// readServerFrame reads one unmasked server frame, inflating a compressed one.
func readServerFrame(r *bufio.Reader) (frame.Opcode, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("server frame is masked")
	}
	if h[0]&0x80 == 0 {
		return 0, nil, fmt.Errorf("server frame is fragmented")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 64<<20 {
		return 0, nil, fmt.Errorf("server frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	op := frame.Opcode(h[0] & 0x0f)
	if h[0]&0x40 != 0 {
		zr := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
		out, err := io.ReadAll(zr)
		if err != nil {
			return 0, nil, fmt.Errorf("inflate: %w", err)
		}
		p = out
	}
	return op, p, nil
}

func expectEOF(t *testing.T, r *bufio.Reader) {
	t.Helper()
	if op, p, err := readServerFrame(r); err == nil {
		t.Fatalf("want the socket closed, got %v %q", op, trim(p))
	}
}

func trim(b []byte) []byte {
	if len(b) > 40 {
		return append(append([]byte(nil), b[:40]...), "…"...)
	}
	return b
}

// --compression-min-size reaches the wire: a 207-byte message is sent
// compressed with a 128-byte minimum and plain with the default 256.
func TestCompressionMinSize(t *testing.T) {
	msg := strings.Repeat("roomcast ", 23) // 207 bytes, compressible
	for _, tc := range []struct {
		min        int
		compressed bool
	}{{128, true}, {0, false}} {
		_, addr := startLoop(t, Options{Compression: true, CompressionMinSize: tc.min}, &echo{})
		nc, br := rawUpgrade(t, addr, true)
		_, _ = nc.Write(frametest.Client(frame.OpText, true, []byte(msg)))
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		first, err := br.Peek(1)
		if err != nil {
			t.Fatal(err)
		}
		if got := first[0]&0x40 != 0; got != tc.compressed {
			t.Fatalf("min %d: RSV1 %v, want %v", tc.min, got, tc.compressed)
		}
		op, p, err := readServerFrame(br)
		if err != nil || op != frame.OpText || string(p) != msg {
			t.Fatalf("min %d: %v %q %v", tc.min, op, p, err)
		}
		nc.Close()
	}
}
