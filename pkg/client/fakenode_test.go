package client_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// fakeNode is a scripted WebSocket server built on gobwas/ws: it accepts
// connections and lets the test write exact frames and read what the
// client sent. It tests the client's parsing only; the real node is tested
// in e2e/.
type fakeNode struct {
	t     *testing.T
	ln    net.Listener
	url   string
	peers chan *peer

	// deflate, when non-nil, are the permessage-deflate parameters the
	// server accepts (nil: compression is declined).
	deflate *wsflate.Parameters
	// refuse, when set, is written as the raw HTTP response instead of
	// upgrading.
	refuse string
}

func newFakeNode(t *testing.T, setup func(*fakeNode)) *fakeNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNode{t: t, ln: ln, url: "ws://" + ln.Addr().String(), peers: make(chan *peer, 16)}
	if setup != nil {
		setup(n)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.serve(conn)
			}()
		}
	}()
	return n
}

func (n *fakeNode) serve(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	if n.refuse != "" {
		// Read the request head, then refuse like the node does for a
		// bad key: plain HTTP, before any upgrade.
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		_, _ = io.WriteString(conn, n.refuse)
		conn.Close()
		return
	}
	p := &peer{t: n.t, conn: conn, br: br}
	var ext wsflate.Extension
	u := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			p.uri = string(uri)
			return nil
		},
		OnHeader: func(key, value []byte) error {
			if strings.EqualFold(string(key), "Origin") {
				p.origin = string(value)
			}
			return nil
		},
	}
	if n.deflate != nil {
		ext.Parameters = *n.deflate
		u.Negotiate = ext.Negotiate
	}
	if _, err := u.Upgrade(readWriter{br, conn}); err != nil {
		n.t.Errorf("fake node: upgrade: %v", err)
		conn.Close()
		return
	}
	if params, ok := ext.Accepted(); ok {
		p.deflate = true
		if !n.deflate.ServerNoContextTakeover {
			// Keep one compressor across messages: context takeover.
			p.zw, _ = flate.NewWriter(&p.zbuf, flate.BestSpeed)
		}
		_ = params
	}
	_ = conn.SetDeadline(time.Time{})
	n.peers <- p
}

type readWriter struct {
	io.Reader
	io.Writer
}

// accept returns the next upgraded connection.
func (n *fakeNode) accept() *peer {
	n.t.Helper()
	select {
	case p := <-n.peers:
		return p
	case <-time.After(5 * time.Second):
		n.t.Fatal("fake node: no connection within 5s")
		return nil
	}
}

// peer is the server end of one client connection.
type peer struct {
	t       *testing.T
	conn    net.Conn
	br      *bufio.Reader
	uri     string
	origin  string
	deflate bool
	zw      *flate.Writer // non-nil: context takeover
	zbuf    bytes.Buffer
	mu      sync.Mutex
}

// send writes msgs as one text frame, separated by "\n" as the node batches.
func (p *peer) send(msgs ...string) {
	p.t.Helper()
	p.sendFrame(ws.OpText, true, []byte(strings.Join(msgs, "\n")))
}

func (p *peer) sendFrame(op ws.OpCode, fin bool, payload []byte) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	h := ws.Header{Fin: fin, OpCode: op, Length: int64(len(payload))}
	if p.deflate && op == ws.OpText && fin {
		payload = p.compress(payload)
		h.Length = int64(len(payload))
		h.Rsv = ws.Rsv(true, false, false)
	}
	if err := ws.WriteHeader(p.conn, h); err != nil {
		p.t.Errorf("fake node: write: %v", err)
		return
	}
	if _, err := p.conn.Write(payload); err != nil {
		p.t.Errorf("fake node: write: %v", err)
	}
}

func (p *peer) compress(b []byte) []byte {
	if p.zw == nil {
		f, err := wsflate.CompressFrame(ws.NewTextFrame(b))
		if err != nil {
			p.t.Fatal(err)
		}
		return f.Payload
	}
	p.zbuf.Reset()
	_, _ = p.zw.Write(b)
	_ = p.zw.Flush()
	out := bytes.Clone(p.zbuf.Bytes())
	return bytes.TrimSuffix(out, []byte{0, 0, 0xff, 0xff})
}

// frame reads the next frame from the client, unmasked and decompressed.
func (p *peer) frame() (ws.Header, []byte) {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := ws.ReadHeader(p.br)
	if err != nil {
		p.t.Fatalf("fake node: read: %v", err)
	}
	if h.Length > 1<<20 {
		p.t.Fatalf("fake node: %d-byte frame", h.Length)
	}
	f := ws.Frame{Header: h, Payload: make([]byte, h.Length)}
	if _, err := io.ReadFull(p.br, f.Payload); err != nil {
		p.t.Fatalf("fake node: read: %v", err)
	}
	if !f.Header.Masked {
		p.t.Fatalf("fake node: client frame not masked")
	}
	f = ws.UnmaskFrameInPlace(f)
	if f.Header.Rsv1() {
		if !p.deflate {
			p.t.Fatalf("fake node: compressed frame without negotiation")
		}
		if f, err = wsflate.DecompressFrame(f); err != nil {
			p.t.Fatalf("fake node: inflate: %v", err)
		}
	}
	return f.Header, f.Payload
}

// msg reads the next JSON message, skipping pings and pongs.
func (p *peer) msg() map[string]any {
	p.t.Helper()
	for {
		h, b := p.frame()
		switch h.OpCode {
		case ws.OpPing, ws.OpPong:
			continue
		case ws.OpText:
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				p.t.Fatalf("fake node: client sent invalid JSON %q: %v", b, err)
			}
			return m
		default:
			p.t.Fatalf("fake node: unexpected opcode %v", h.OpCode)
		}
	}
}

// expect reads the next message and checks its type.
func (p *peer) expect(typ string) map[string]any {
	p.t.Helper()
	m := p.msg()
	if m["type"] != typ {
		p.t.Fatalf("fake node: got %v, want type %q", m, typ)
	}
	return m
}

// welcome sends the default welcome.
func (p *peer) welcome() {
	p.t.Helper()
	p.send(`{"type":"welcome","session":"s1","node":"n1","user":"ann","meta":{"color":"red"},"rooms":["lobby"],"ping_interval":25}`)
}

func (p *peer) closeWith(code int, reason string) {
	p.t.Helper()
	p.sendFrame(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusCode(code), reason))
}

func idOf(m map[string]any) string {
	return fmt.Sprint(m["id"])
}

// async runs f on a goroutine so the test can script the server meanwhile.
func async[T any](f func() (T, error)) <-chan result[T] {
	ch := make(chan result[T], 1)
	go func() {
		v, err := f()
		ch <- result[T]{v, err}
	}()
	return ch
}

type result[T any] struct {
	v   T
	err error
}

func wait[T any](t *testing.T, ch <-chan result[T]) (T, error) {
	t.Helper()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(5 * time.Second):
		t.Fatal("call did not return within 5s")
		var zero T
		return zero, nil
	}
}
