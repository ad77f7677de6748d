package harness

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DialFunc dials like net.Dialer.DialContext; Net.Dial is one.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Proxy is a TCP load balancer on loopback, in the test process's own
// namespace: each accepted connection goes to the next backend, round-robin,
// dialed with its DialFunc (e.g. into a Net), and bytes are copied both
// ways until both sides are done. A backend that refuses or times out is
// skipped for that connection, as a real balancer's health checks would.
// With one backend it is a plain port forward.
type Proxy struct {
	// Addr is the loopback host:port it listens on.
	Addr string

	ln       net.Listener
	dial     DialFunc
	backends []string
	next     atomic.Uint64
	wg       sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // both ends of every live pair
	closed bool
}

// proxyDialTimeout bounds one backend dial; a blocked (partitioned)
// backend costs an accepted connection at most this before the next one is
// tried.
const proxyDialTimeout = 3 * time.Second

// NewProxy starts a Proxy to backends (host:port), closed when the test
// ends.
func NewProxy(t testing.TB, dial DialFunc, backends ...string) *Proxy {
	t.Helper()
	if len(backends) == 0 {
		t.Fatal("harness: proxy without backends")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: proxy: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), ln: ln, dial: dial, backends: backends, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed; loopback accepts fail for no other reason here
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

// handle connects c to the next backend that answers.
func (p *Proxy) handle(c net.Conn) {
	defer p.wg.Done()
	first := p.next.Add(1) - 1
	var b net.Conn
	for i := range uint64(len(p.backends)) {
		addr := p.backends[(first+i)%uint64(len(p.backends))]
		ctx, cancel := context.WithTimeout(context.Background(), proxyDialTimeout)
		conn, err := p.dial(ctx, "tcp", addr)
		cancel()
		if err == nil {
			b = conn
			break
		}
	}
	if b == nil || !p.track(c, b) {
		c.Close()
		if b != nil {
			b.Close()
		}
		return
	}
	defer p.untrack(c, b)
	done := make(chan struct{})
	go func() { defer close(done); pipe(b, c) }()
	pipe(c, b)
	<-done
}

// pipe copies src to dst; at src's EOF it half-closes dst so the FIN
// travels on (a WebSocket close handshake ends with one), and on an error
// (a reset) it closes both so the other side sees it too.
func pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
			return
		}
	}
	dst.Close()
	src.Close()
}

func (p *Proxy) track(a, b net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[a], p.conns[b] = struct{}{}, struct{}{}
	return true
}

func (p *Proxy) untrack(a, b net.Conn) {
	a.Close()
	b.Close()
	p.mu.Lock()
	delete(p.conns, a)
	delete(p.conns, b)
	p.mu.Unlock()
}

// Close stops listening, cuts every proxied connection and waits for the
// copying goroutines to end.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}
