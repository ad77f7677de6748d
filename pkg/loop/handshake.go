package loop

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/roomcast/roomcast/pkg/frame"
)

// Request is what the loop learned from an upgrade request. Strings are
// copies: they stay valid after the handshake.
type Request struct {
	Path     string
	RawQuery string
	Host     string
	Origin   string
	// Header holds every request header (canonical names), for the auth hook
	// and its allow-list.
	Header map[string]string
	Remote netip.AddrPort
	TLS    bool
}

// Query returns the first value of the query parameter key.
func (r *Request) Query(key string) string {
	q := r.RawQuery
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k == key {
			return v
		}
	}
	return ""
}

// Rejection refuses an upgrade before the 101 with Status and a JSON Body.
type Rejection struct {
	Status int
	Body   []byte // JSON, sent as application/json
	// Reason labels the refusal in metrics (key, origin, hook, draining, limit, ...).
	Reason string
	// RetryAfter, when non-zero, is sent as Retry-After (seconds).
	RetryAfter int
}

// errRejected tells gobwas/ws to stop; its own response is muted because ours
// carries a JSON body (gobwas writes text/plain).
var errRejected = errors.New("loop: upgrade rejected")

// handshakeRW reads through the peeked reader and writes to the socket,
// except while muted, so gobwas's text/plain rejection never goes out.
type handshakeRW struct {
	r    *bufio.Reader
	w    net.Conn
	mute bool
}

func (h *handshakeRW) Read(p []byte) (int, error) { return h.r.Read(p) }
func (h *handshakeRW) Write(p []byte) (int, error) {
	if h.mute {
		return len(p), nil
	}
	return h.w.Write(p)
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// Serve accepts connections on ln until Shutdown. Each accepted socket gets
// a short-lived goroutine for its handshake, bounded by HandshakeTimeout;
// upgrades move to the epoll loop, other requests go to Options.HTTP.
func (l *Loop) Serve(ln net.Listener) error {
	l.mu.Lock()
	l.listeners = append(l.listeners, ln)
	l.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if l.closed.Load() {
				return ErrClosed
			}
			// Out of fds or a transient accept error: back off like
			// net/http does, 5ms doubling to 1s, instead of spinning.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			l.log.Warn("accept failed; backing off", "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if l.opts.TLS != nil {
			nc = tls.Server(nc, l.opts.TLS)
		}
		go l.handshake(nc)
	}
}

func (l *Loop) handshake(nc net.Conn) {
	_ = nc.SetDeadline(time.Now().Add(l.opts.HandshakeTimeout))
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(nc)
	method, path, ok := peekRequestLine(br)
	if !ok || method != "GET" || !l.opts.IsUpgradePath(path) {
		// Not ours: net/http serves it, reading through br so the peeked
		// bytes are not lost. br now belongs to that connection.
		if !l.httpLn.push(&peekedConn{Conn: nc, r: br}) {
			nc.Close()
		}
		return
	}
	defer func() {
		if br != nil {
			br.Reset(nil)
			readerPool.Put(br)
		}
	}()

	var (
		req      = Request{Header: make(map[string]string, 12)}
		handler  Handler
		reject   *Rejection
		deflate  frame.Negotiator
		rw       = &handshakeRW{r: br, w: nc}
		remote   = addrPort(nc.RemoteAddr())
		useFlate = l.opts.Compression
	)
	req.Remote = remote
	_, req.TLS = nc.(*tls.Conn)
	u := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			p, q, _ := bytes.Cut(uri, []byte("?"))
			req.Path, req.RawQuery = string(p), string(q)
			return nil
		},
		OnHost: func(host []byte) error {
			req.Host = string(host)
			return nil
		},
		OnHeader: func(key, value []byte) error {
			if len(req.Header) >= 64 {
				return ws.RejectConnectionError(ws.RejectionStatus(431), ws.RejectionReason("too many headers"))
			}
			k := canonicalHeader(key)
			if k == "Origin" {
				req.Origin = string(value)
			}
			// A repeated header is one list (RFC 9110 5.3): proxies
			// chained may each send their own X-Forwarded-For.
			if prev, ok := req.Header[k]; ok {
				sep := ", "
				if k == "Cookie" {
					sep = "; "
				}
				req.Header[k] = prev + sep + string(value)
				return nil
			}
			req.Header[k] = string(value)
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			handler, reject = l.opts.Upgrade(&req)
			if reject != nil {
				rw.mute = true
				return nil, errRejected
			}
			return nil, nil
		},
	}
	if useFlate {
		u.Negotiate = deflate.Negotiate
	}
	_, err := u.Upgrade(rw)
	if reject != nil {
		l.metrics.Refused.WithLabelValues(reject.Reason).Inc()
		writeRejection(nc, reject)
		nc.Close()
		return
	}
	if err != nil {
		l.metrics.Refused.WithLabelValues("bad_request").Inc()
		l.log.Debug("upgrade failed", "remote", remote, "err", err)
		nc.Close()
		return
	}
	// Give the handshake reader back first: a client does not send frames
	// before the 101, so it holds nothing, and over TLS this goroutine
	// becomes the connection's reader.
	br.Reset(nil)
	readerPool.Put(br)
	br = nil
	l.start(nc, handler, remote, useFlate && deflate.Accepted())
}

// start runs an upgraded connection: on the epoll loop, or, for TLS,
// which the loop cannot read, on this goroutine and a writer (stream.go).
func (l *Loop) start(nc net.Conn, h Handler, remote netip.AddrPort, deflate bool) {
	if tc, ok := nc.(*tls.Conn); ok {
		l.adoptStream(tc, h, remote, deflate)
		return
	}
	if err := l.adopt(nc, h, remote, deflate); err != nil {
		l.log.Error("cannot adopt upgraded connection", "remote", remote, "err", err)
	}
}

// newConn makes a connection's state and counts it open.
func (l *Loop) newConn(h Handler, fd int, remote netip.AddrPort, deflate bool) *Conn {
	c := &Conn{loop: l, h: h, fd: int32(fd), remote: remote, deflate: deflate}
	c.parser.MaxMessage = l.opts.MaxMessage
	c.parser.Deflate = deflate
	now := time.Now().UnixNano()
	c.lastRead.Store(now)
	c.lastPing = now
	l.active.Add(1)
	l.metrics.Connections.Inc()
	l.metrics.Accepted.Inc()
	return c
}

// adopt moves an upgraded connection from Go's netpoller to ours: the fd is
// duplicated and the net.Conn closed, so the runtime forgets it and no
// goroutine or buffer of net's stays behind.
func (l *Loop) adopt(nc net.Conn, h Handler, remote netip.AddrPort, deflate bool) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		nc.Close()
		return errors.New("loop: connection has no file descriptor (TLS connections take another path)")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		nc.Close()
		return err
	}
	fd := -1
	var dupErr error
	_ = raw.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	})
	nc.Close()
	if dupErr != nil {
		return dupErr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return err
	}
	c := l.newConn(h, fd, remote, deflate)
	// The adopting goroutine owns the read side until OnOpen returns: a
	// teardown or event that comes in meanwhile (a welcome write failing,
	// say) only marks readAgain, so no handler call overlaps OnOpen.
	c.rstate.Store(readRunning)
	l.conns.set(fd, c)
	c.open()
	addErr := l.poller.add(fd)
	if addErr != nil {
		c.fail(1011, "internal error")
		c.dead.Store(true)
	}
	if l.draining.Load() {
		// Drain began during the handshake: say 1001 at once.
		c.Close(1001, "node draining: reconnect")
	}
	// Hand the read side over; run a read job if anything came in.
	if !c.rstate.CompareAndSwap(readRunning, readIdle) {
		c.rstate.Store(readRunning)
		l.pool.submit(job{c: c, kind: jobRead})
	}
	return addErr
}

func writeRejection(nc net.Conn, r *Rejection) {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 ")
	b.WriteString(strconv.Itoa(r.Status))
	b.WriteByte(' ')
	b.WriteString(statusText(r.Status))
	b.WriteString("\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: ")
	b.WriteString(strconv.Itoa(len(r.Body)))
	if r.RetryAfter > 0 {
		b.WriteString("\r\nRetry-After: ")
		b.WriteString(strconv.Itoa(r.RetryAfter))
	}
	b.WriteString("\r\n\r\n")
	b.Write(r.Body)
	_, _ = nc.Write(b.Bytes())
}

func statusText(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 429:
		return "Too Many Requests"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	}
	return "Error"
}

// peekRequestLine returns the method and path of the request line without
// consuming it.
func peekRequestLine(br *bufio.Reader) (method, path string, ok bool) {
	for n := 1; n <= br.Size(); {
		_, err := br.Peek(n)
		b, _ := br.Peek(br.Buffered())
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line := b[:i]
			m, rest, ok1 := bytes.Cut(line, []byte(" "))
			uri, _, ok2 := bytes.Cut(rest, []byte(" "))
			if !ok1 || !ok2 {
				return "", "", false
			}
			p, _, _ := bytes.Cut(uri, []byte("?"))
			return string(m), string(p), true
		}
		if err != nil {
			return "", "", false
		}
		// Ask for what is buffered plus one byte: never block for bytes
		// the client has not sent.
		n = br.Buffered() + 1
	}
	return "", "", false
}

func canonicalHeader(k []byte) string {
	upper := true
	out := make([]byte, len(k))
	for i, c := range k {
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		out[i] = c
		upper = c == '-'
	}
	return string(out)
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// peekedConn is a net.Conn whose first bytes were already read into r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// chanListener hands connections the loop does not upgrade to net/http.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (c *chanListener) push(nc net.Conn) bool {
	select {
	case c.conns <- nc:
		return true
	case <-c.done:
		return false
	}
}

func (c *chanListener) Accept() (net.Conn, error) {
	select {
	case nc := <-c.conns:
		return nc, nil
	case <-c.done:
		return nil, net.ErrClosed
	}
}

func (c *chanListener) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

func (c *chanListener) Addr() net.Addr { return c.addr }

var _ io.ReadWriter = (*handshakeRW)(nil)
