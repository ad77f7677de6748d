package loop

import (
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/roomcast/roomcast/pkg/frame"
)

// stream is the goroutine path for connections whose bytes the epoll loop
// cannot read directly: TLS records must be decrypted by crypto/tls, which
// reads a net.Conn. Each such connection has one reader and one writer
// goroutine (bench/ idle scenario measures what that costs). Everything
// above the bytes — parser, queue, handler, sweep, drain — is shared with
// the epoll path.
type stream struct {
	nc   net.Conn
	wake chan struct{} // capacity 1: "the queue has something"
	done chan struct{}
	once sync.Once
}

// streamWriteTimeout bounds one blocking write: a peer that takes no bytes
// for this long is a slow consumer.
const streamWriteTimeout = 10 * time.Second

func (s *stream) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// streams is the set of stream connections, for the sweep and drain.
type streams struct {
	mu sync.Mutex
	m  map[*Conn]struct{}
}

func (s *streams) add(c *Conn) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[*Conn]struct{}{}
	}
	s.m[c] = struct{}{}
	s.mu.Unlock()
}

func (s *streams) remove(c *Conn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

func (s *streams) each(fn func(*Conn)) {
	s.mu.Lock()
	all := make([]*Conn, 0, len(s.m))
	for c := range s.m {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		fn(c)
	}
}

// adoptStream runs an upgraded TLS connection on its own goroutines.
func (l *Loop) adoptStream(nc *tls.Conn, h Handler, remote netip.AddrPort, deflate bool) {
	_ = nc.SetDeadline(time.Time{})
	c := l.newConn(h, -1, remote, deflate)
	c.stream = &stream{nc: nc, wake: make(chan struct{}, 1), done: make(chan struct{})}
	l.streams.add(c)
	c.open()
	go c.streamWriter()
	if l.draining.Load() {
		c.Close(frame.CloseGoingAway, "node draining: reconnect")
	}
	c.streamReader()
}

// streamReader runs on the handshake goroutine, which becomes the reader.
func (c *Conn) streamReader() {
	defer c.parser.Release()
	buf := make([]byte, 4096)
	for {
		n, err := c.stream.nc.Read(buf)
		if n > 0 {
			c.lastRead.Store(time.Now().UnixNano())
			c.loop.metrics.BytesIn.Add(float64(n))
			if !c.discarding() {
				if err := c.parser.Feed(buf[:n], (*parserHandler)(c)); err != nil {
					c.parseError(err)
				}
				c.midFrame.Store(c.parser.InFrame())
			}
		}
		if err != nil {
			c.notifyClosed(frame.CloseAbnormal)
			c.teardownStream()
			return
		}
	}
}

func (c *Conn) streamWriter() {
	s := c.stream
	var bufs net.Buffers
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		c.mu.Lock()
		c.flushPending = false
		bufs = bufs[:0]
		for i, f := range c.queue {
			b := c.bytes(f)
			if i == 0 {
				b = b[c.head:]
			}
			bufs = append(bufs, b)
		}
		frames := len(c.queue)
		c.mu.Unlock()
		if frames == 0 {
			continue
		}
		_ = s.nc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		toWrite := bufs // WriteTo consumes its receiver
		n, err := toWrite.WriteTo(s.nc)
		c.mu.Lock()
		if n > 0 && !c.gone {
			c.loop.metrics.BytesOut.Add(float64(n))
			c.advance(int(n))
		}
		more := len(c.queue) > 0
		done := !more && c.dropAfter
		c.mu.Unlock()
		if err != nil || done {
			c.teardownStream()
			return
		}
		if more {
			s.wakeWriter()
		}
	}
}

func (c *Conn) teardownStream() {
	if !c.markGone() {
		return
	}
	c.stream.once.Do(func() { close(c.stream.done) })
	c.stream.nc.Close()
	c.loop.streams.remove(c)
	c.forget()
}
