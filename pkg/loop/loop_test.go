package loop

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/roomcast/roomcast/pkg/certs"
	"github.com/roomcast/roomcast/pkg/certs/certstest"
	"github.com/roomcast/roomcast/pkg/frame"
)

// echo sends every message back with the opcode it came with.
type echo struct {
	mu     sync.Mutex
	closed []uint16
}

func (e *echo) OnOpen(*Conn) {}
func (e *echo) OnMessage(c *Conn, op frame.Opcode, data []byte) {
	_ = c.Send(frame.NewPrepared(op, append([]byte(nil), data...)))
}
func (e *echo) OnClose(_ *Conn, code uint16) {
	e.mu.Lock()
	e.closed = append(e.closed, code)
	e.mu.Unlock()
}

func startLoop(t *testing.T, o Options, h Handler) (*Loop, string) {
	t.Helper()
	if o.IsUpgradePath == nil {
		o.IsUpgradePath = func(p string) bool { return strings.HasPrefix(p, "/ws") }
	}
	if o.Upgrade == nil {
		o.Upgrade = func(r *Request) (Handler, *Rejection) {
			if r.Query("deny") != "" {
				return nil, &Rejection{Status: 401, Body: []byte(`{"error":{"code":"unauthorized","message":"no"}}`), Reason: "key"}
			}
			return h, nil
		}
	}
	if o.HTTP == nil {
		o.HTTP = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain "+r.URL.Path) })
	}
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.Shutdown(ctx)
	})
	return l, ln.Addr().String()
}

func dial(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, _, err := ws.Dial(ctx, "ws://"+addr+path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestEcho(t *testing.T) {
	_, addr := startLoop(t, Options{}, &echo{})
	c := dial(t, addr, "/ws")
	for _, msg := range []string{"hello", strings.Repeat("x", 40000), ""} {
		if err := wsutil.WriteClientText(c, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, op, err := wsutil.ReadServerData(c)
		if err != nil || op != ws.OpText || string(got) != msg {
			t.Fatalf("echo of %d bytes: got %d bytes op %v err %v", len(msg), len(got), op, err)
		}
	}
	if err := wsutil.WriteClientBinary(c, []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	got, op, err := wsutil.ReadServerData(c)
	if err != nil || op != ws.OpBinary || len(got) != 3 {
		t.Fatalf("binary echo: %v %v %v", got, op, err)
	}
}

func TestPingPongAndClose(t *testing.T) {
	e := &echo{}
	l, addr := startLoop(t, Options{}, e)
	c := dial(t, addr, "/ws")
	if err := ws.WriteFrame(c, ws.MaskFrame(ws.NewPingFrame([]byte("abc")))); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := readFrame(c)
	if err != nil || f.Header.OpCode != ws.OpPong || string(f.Payload) != "abc" {
		t.Fatalf("pong: %+v %v", f.Header, err)
	}
	// Client-initiated close: the code is echoed and the socket ends.
	if err := ws.WriteFrame(c, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(4000, "bye")))); err != nil {
		t.Fatal(err)
	}
	f, err = readFrame(c)
	if err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("close echo: %+v %v", f.Header, err)
	}
	code, _ := ws.ParseCloseFrameData(f.Payload)
	if code != 4000 {
		t.Fatalf("close echo code %d, want 4000", code)
	}
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after close: %v, want EOF", err)
	}
	waitFor(t, func() bool { return l.Conns() == 0 }, "connection not torn down")
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.closed) != 1 || e.closed[0] != 4000 {
		t.Fatalf("OnClose codes %v, want [4000]", e.closed)
	}
}

func TestProtocolErrorCloses1002(t *testing.T) {
	_, addr := startLoop(t, Options{}, &echo{})
	c := dial(t, addr, "/ws")
	// An unmasked client frame is a protocol error.
	if err := ws.WriteFrame(c, ws.NewTextFrame([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := readFrame(c)
	if err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("want close, got %+v %v", f.Header, err)
	}
	if code, _ := ws.ParseCloseFrameData(f.Payload); code != 1002 {
		t.Fatalf("code %d, want 1002", code)
	}
}

func TestTooLargeCloses1009(t *testing.T) {
	_, addr := startLoop(t, Options{MaxMessage: 1024}, &echo{})
	c := dial(t, addr, "/ws")
	_ = wsutil.WriteClientText(c, make([]byte, 2048))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := readFrame(c)
	if err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("want close, got %+v %v", f.Header, err)
	}
	if code, _ := ws.ParseCloseFrameData(f.Payload); code != 1009 {
		t.Fatalf("code %d, want 1009", code)
	}
}

func TestRejectionIsJSON(t *testing.T) {
	_, addr := startLoop(t, Options{}, &echo{})
	_, _, _, err := ws.Dialer{}.Dial(context.Background(), "ws://"+addr+"/ws?deny=1")
	if err == nil {
		t.Fatal("upgrade succeeded")
	}
	// Read the raw answer to check status, type and body.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, "GET /ws?deny=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/json" || !json.Valid(body) {
		t.Fatalf("got %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// TestRepeatedHeadersJoin: a header sent twice reaches Upgrade as one
// list, so the X-Forwarded-For of chained proxies is read whole.
func TestRepeatedHeadersJoin(t *testing.T) {
	got := make(chan map[string]string, 1)
	_, addr := startLoop(t, Options{Upgrade: func(r *Request) (Handler, *Rejection) {
		got <- r.Header
		return nil, &Rejection{Status: 403, Body: []byte(`{}`)}
	}}, &echo{})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"X-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2, 3.3.3.3\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n")
	h := <-got
	if h["X-Forwarded-For"] != "1.1.1.1, 2.2.2.2, 3.3.3.3" || h["Cookie"] != "a=1; b=2" {
		t.Fatalf("X-Forwarded-For %q, Cookie %q; want the repeats joined", h["X-Forwarded-For"], h["Cookie"])
	}
}

func TestPlainHTTPGoesToHandler(t *testing.T) {
	_, addr := startLoop(t, Options{}, &echo{})
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "plain /healthz" {
		t.Fatalf("got %q", b)
	}
}

// silent never reads: its queue fills and the loop must cut it with 4009.
func TestSlowConsumerCut(t *testing.T) {
	var conns []*Conn
	var mu sync.Mutex
	h := &hookHandler{open: func(c *Conn) { mu.Lock(); conns = append(conns, c); mu.Unlock() }}
	l, addr := startLoop(t, Options{MaxQueueBytes: 64 << 10}, h)
	_ = dial(t, addr, "/ws") // never read
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(conns) == 1 }, "no conn")
	big := frame.NewPrepared(frame.OpText, make([]byte, 16<<10))
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		err = conns[0].Send(big)
	}
	if err != ErrSlowConsumer && err != ErrClosing {
		t.Fatalf("Send never failed: %v", err)
	}
	waitFor(t, func() bool { return h.code() == frame.CloseSlowConsumer }, "OnClose not 4009")
	_ = l
}

func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	_, addr := startLoop(t, Options{}, &echo{})
	c := dial(t, addr, "/ws") // warm up workers and the http server
	_ = c
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	for i := 0; i < 200; i++ {
		dial(t, addr, "/ws")
	}
	// Handshake goroutines end once the connection moves to epoll.
	var after int
	waitFor(t, func() bool { after = runtime.NumGoroutine(); return after <= before+10 }, "goroutines grew with connections")
}

type hookHandler struct {
	open    func(*Conn)
	onClose func(code uint16)
	mu      sync.Mutex
	codes   []uint16
}

func (h *hookHandler) OnOpen(c *Conn)                        { h.open(c) }
func (h *hookHandler) OnMessage(*Conn, frame.Opcode, []byte) {}
func (h *hookHandler) OnClose(_ *Conn, code uint16) {
	h.mu.Lock()
	h.codes = append(h.codes, code)
	f := h.onClose
	h.mu.Unlock()
	if f != nil {
		f(code)
	}
}
func (h *hookHandler) code() uint16 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.codes) == 0 {
		return 0
	}
	return h.codes[0]
}

func waitFor(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readFrame reads one server frame, refusing payloads over 1 MiB.
func readFrame(r io.Reader) (ws.Frame, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return ws.Frame{}, err
	}
	if h.Length > 1<<20 {
		return ws.Frame{}, io.ErrShortBuffer
	}
	p := make([]byte, h.Length)
	_, err = io.ReadFull(r, p)
	return ws.Frame{Header: h, Payload: p}, err
}

func TestTLSEcho(t *testing.T) {
	dir := t.TempDir()
	cf, kf := certstest.WriteSelfSigned(t, dir, 1)
	r, err := certs.New(cf, kf, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{}
	l, addr := startLoop(t, Options{TLS: r.Config()}, e)
	d := ws.Dialer{TLSConfig: &tls.Config{InsecureSkipVerify: true}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, _, err := d.Dial(ctx, "wss://"+addr+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, msg := range []string{"over tls", strings.Repeat("y", 50000)} {
		if err := wsutil.WriteClientText(c, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		got, err := wsutil.ReadServerText(c)
		if err != nil || string(got) != msg {
			t.Fatalf("tls echo: %d bytes, %v", len(got), err)
		}
	}
	// Plain HTTP over TLS still reaches the HTTP handler.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "plain /healthz" {
		t.Fatalf("https: %q", b)
	}
	if err := ws.WriteFrame(c, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(1000, "")))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return l.Conns() == 0 }, "tls connection not torn down after close")
}

// Drain spreads 1001s over the window and keeps to it however many
// connections there are: closes are scheduled from the start, not by
// sleeping a step each (overshoot would add up).
func TestDrainKeepsToWindow(t *testing.T) {
	var mu sync.Mutex
	var closedAt []time.Time
	h := &hookHandler{open: func(*Conn) {}}
	l, addr := startLoop(t, Options{}, h)
	const n = 300
	for i := 0; i < n; i++ {
		dial(t, addr, "/ws")
	}
	waitFor(t, func() bool { return l.Conns() == n }, "not all connected")
	h.mu.Lock()
	h.onClose = func(uint16) { mu.Lock(); closedAt = append(closedAt, time.Now()); mu.Unlock() }
	h.mu.Unlock()
	start := time.Now()
	window := 600 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Drain(ctx, window); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(closedAt) != n {
		t.Fatalf("%d of %d closed", len(closedAt), n)
	}
	last := closedAt[len(closedAt)-1].Sub(start)
	first := closedAt[0].Sub(start)
	if last > window+300*time.Millisecond || last < window*8/10 || first > 100*time.Millisecond {
		t.Fatalf("closes from %v to %v, want spread over %v", first, last, window)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, code := range h.codes {
		if code != frame.CloseGoingAway {
			t.Fatalf("close code %d, want 1001", code)
		}
	}
}
