package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/e2e/harness"
)

// TestBadInputAnswers sends one kind of bad input per raw connection and
// checks the node's documented answer (DESIGN.md: invalid JSON or an
// unknown type gets error bad_request, never a silent drop; frames over
// the limit close with 1009; protocol violations close). Where it answers
// with an error the connection must stay usable.
func TestBadInputAnswers(t *testing.T) {
	t.Parallel()
	node := harness.StartNode(t, harness.NodeConfig{ID: "strict", Config: `
routes:
  - path: /raw
    auth: public
    allow: ["raw.>"]
`})
	type answer struct {
		errCode string // an `error` message with this code, connection open
		close   []int  // or a close frame with one of these codes
	}
	badRequest := answer{errCode: "bad_request"}
	cases := []struct {
		name   string
		frames [][]byte
		want   answer
	}{
		{"invalid JSON", [][]byte{text(`{"type":`)}, badRequest},
		{"empty message", [][]byte{text(``)}, badRequest},
		{"JSON not an object", [][]byte{text(`[1,2]`)}, badRequest},
		{"unknown type", [][]byte{text(`{"type":"nope","id":7}`)}, badRequest},
		{"no type", [][]byte{text(`{"id":7}`)}, badRequest},
		{"join without room", [][]byte{text(`{"type":"join","id":8}`)}, badRequest},
		{"room with a space", [][]byte{text(`{"type":"join","room":"raw.bad room","id":8}`)}, badRequest},
		{"room not a string", [][]byte{text(`{"type":"join","room":5,"id":8}`)}, badRequest},
		{"publish without room", [][]byte{text(`{"type":"publish","event":"e","data":1,"id":8}`)}, badRequest},
		{"id not a number", [][]byte{text(`{"type":"ping","id":"x"}`)}, badRequest},
		{"join not allowed", [][]byte{text(`{"type":"join","room":"other.x","id":9}`)}, answer{errCode: "forbidden"}},
		{"publish not allowed", [][]byte{text(`{"type":"publish","room":"other.x","event":"e","data":1,"id":9}`)}, answer{errCode: "forbidden"}},
		{"message over 64 KiB", [][]byte{text(`{"type":"publish","room":"raw.x","event":"e","data":"` + strings.Repeat("a", 70<<10) + `"}`)}, answer{close: []int{1009}}},
		{"length header over 64 KiB", [][]byte{lyingHeader(1 << 40)}, answer{close: []int{1009}}},
		{"unmasked frame", [][]byte{frame(ws.OpText, true, 0, []byte(`{"type":"ping"}`), false)}, answer{close: []int{1002}}},
		{"reserved opcode", [][]byte{frame(ws.OpCode(3), true, 0, []byte("x"), true)}, answer{close: []int{1002}}},
		{"continuation first", [][]byte{frame(ws.OpContinuation, true, 0, []byte("x"), true)}, answer{close: []int{1002}}},
		{"new message inside a fragmented one", [][]byte{frame(ws.OpText, false, 0, []byte(`{"ty`), true), frame(ws.OpText, true, 0, []byte(`{}`), true)}, answer{close: []int{1002}}},
		{"ping over 125 bytes", [][]byte{frame(ws.OpPing, true, 0, bytes.Repeat([]byte("p"), 126), true)}, answer{close: []int{1002}}},
		{"fragmented ping", [][]byte{frame(ws.OpPing, false, 0, []byte("p"), true)}, answer{close: []int{1002}}},
		{"compressed bit without deflate", [][]byte{frame(ws.OpText, true, 4, []byte(`{"type":"ping"}`), true)}, answer{close: []int{1002}}},
		// DESIGN.md names no code for these two: any documented refusal.
		{"binary frame", [][]byte{frame(ws.OpBinary, true, 0, []byte(`{"type":"ping"}`), true)}, answer{errCode: "bad_request", close: []int{1002, 1003, 1008}}},
		{"invalid UTF-8", [][]byte{text("{\"type\":\"publish\",\"room\":\"raw.x\",\"event\":\"\xff\",\"data\":1}")}, answer{errCode: "bad_request", close: []int{1007, 1002}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, node.URL("/raw"))
			for _, f := range tc.frames {
				rc.write(f)
			}
			code, closeCode := rc.answer()
			switch {
			case code != "" && code == tc.want.errCode:
				// An error leaves the connection usable.
				rc.write(text(`{"type":"ping","id":4242}`))
				if !rc.waitPong() {
					t.Errorf("no pong after the error %s: the connection should stay open", code)
				}
			case closeCode != 0 && slices.Contains(tc.want.close, closeCode):
			default:
				t.Errorf("node answered error %q / close %d; want %s", code, closeCode, describeAnswer(tc.want.errCode, tc.want.close))
			}
		})
	}

	t.Run("ping control frame", func(t *testing.T) {
		rc := dialRaw(t, node.URL("/raw"))
		rc.write(frame(ws.OpPing, true, 0, []byte("abc"), true))
		for {
			op, p := rc.read()
			if op == ws.OpPong {
				if string(p) != "abc" {
					t.Errorf("pong payload %q, want \"abc\" (RFC 6455 §5.5.3)", p)
				}
				return
			}
			if op == ws.OpClose || op == 0xff {
				t.Fatalf("connection closed instead of a pong")
			}
		}
	})

	t.Run("client close", func(t *testing.T) {
		rc := dialRaw(t, node.URL("/raw"))
		rc.write(frame(ws.OpClose, true, 0, ws.NewCloseFrameBody(1000, "bye"), true))
		if _, code := rc.answer(); code != 1000 {
			t.Errorf("node answered a 1000 close with %d; want it echoed", code)
		}
	})

	if code, _, err := node.Get("/healthz"); code != 200 {
		t.Errorf("/healthz after bad input: %d %v", code, err)
	}
}

func describeAnswer(errCode string, close []int) string {
	var parts []string
	if errCode != "" {
		parts = append(parts, "error "+errCode)
	}
	if len(close) > 0 {
		parts = append(parts, fmt.Sprintf("close %v", close))
	}
	return strings.Join(parts, " or ")
}

func lyingHeader(n int64) []byte {
	var b bytes.Buffer
	_ = ws.WriteHeader(&b, ws.Header{Fin: true, OpCode: ws.OpText, Length: n, Masked: true, Mask: ws.NewMask()})
	b.WriteString("{")
	return b.Bytes()
}

// rawConn is a WebSocket connection without a client library: it writes
// whatever bytes the test gives it and reads server frames one by one.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, url string) *rawConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close() })
	if br == nil {
		br = bufio.NewReader(conn)
	}
	rc := &rawConn{t: t, conn: conn, br: br}
	// Wait for the welcome so the node is past the upgrade.
	for {
		op, p := rc.read()
		if op == 0xff || op == ws.OpClose {
			t.Fatalf("connection ended before welcome")
		}
		if op == ws.OpText && bytes.Contains(p, []byte(`"welcome"`)) {
			return rc
		}
	}
}

func (rc *rawConn) write(b []byte) {
	_ = rc.conn.SetWriteDeadline(time.Now().Add(wait))
	// A write may fail when the node already closed; the answer tells.
	_, _ = rc.conn.Write(b)
}

// read returns the next server frame; op 0xff means the socket ended.
func (rc *rawConn) read() (ws.OpCode, []byte) {
	_ = rc.conn.SetReadDeadline(time.Now().Add(wait))
	h, err := ws.ReadHeader(rc.br)
	if err != nil {
		return 0xff, nil
	}
	if h.Length > 16<<20 {
		rc.t.Fatalf("server frame of %d bytes", h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(rc.br, p); err != nil {
		return 0xff, nil
	}
	if h.Masked {
		rc.t.Errorf("server frame is masked (RFC 6455 §5.1: a server must not mask)")
		ws.Cipher(p, h.Mask, 0)
	}
	return h.OpCode, p
}

// answer reads until the node sends an `error` message (its code), an ack
// (errCode "(ack)"), or a close frame (its code); 1006 if the socket ended
// without one.
func (rc *rawConn) answer() (errCode string, closeCode int) {
	for {
		op, p := rc.read()
		switch op {
		case 0xff:
			return "", 1006
		case ws.OpClose:
			if len(p) < 2 {
				return "", 1005
			}
			return "", int(binary.BigEndian.Uint16(p))
		case ws.OpText:
			for _, line := range bytes.Split(p, []byte("\n")) {
				var m struct{ Type, Code string }
				if json.Unmarshal(line, &m) == nil && m.Type == "error" {
					return m.Code, 0
				}
				if m.Type == "ack" {
					return "(ack)", 0
				}
			}
		}
	}
}

func (rc *rawConn) waitPong() bool {
	for {
		op, p := rc.read()
		if op == 0xff || op == ws.OpClose {
			return false
		}
		if op == ws.OpText && bytes.Contains(p, []byte(`"pong"`)) {
			return true
		}
	}
}
