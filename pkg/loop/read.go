package loop

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"

	"github.com/roomcast/roomcast/pkg/frame"
)

// maxReadsPerJob bounds one job's reads so a flooding client cannot hold a
// worker; the job then goes to the back of the queue.
const maxReadsPerJob = 8

// errPeerClosed stops the parser after the peer's close frame.
var errPeerClosed = errors.New("loop: peer sent close")

// readJob reads what is ready and feeds it to the parser, then hands the
// read state back. It is the only place the fd is closed.
func (c *Conn) readJob(w *worker) {
	for {
		c.readOnce(w)
		if c.rstate.CompareAndSwap(readRunning, readIdle) {
			return
		}
		c.rstate.Store(readRunning) // readAgain: something came in meanwhile
	}
}

func (c *Conn) readOnce(w *worker) {
	if c.torn.Load() {
		return
	}
	if c.dead.Load() {
		c.teardown()
		return
	}
	for i := 0; i < maxReadsPerJob; i++ {
		if c.torn.Load() {
			return
		}
		n, err := unix.Read(int(c.fd), w.buf)
		if n > 0 {
			c.lastRead.Store(time.Now().UnixNano())
			c.loop.metrics.BytesIn.Add(float64(n))
			if c.discarding() {
				continue
			}
			if err := c.parser.Feed(w.buf[:n], (*parserHandler)(c)); err != nil {
				c.parseError(err)
			}
			c.midFrame.Store(c.parser.InFrame())
			continue
		}
		switch {
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR:
			continue
		}
		// EOF or a socket error: the peer is gone without a close frame.
		c.notifyClosed(frame.CloseAbnormal)
		c.teardown()
		return
	}
	// Budget spent with input maybe left: edge-triggered epoll will not
	// tell us again, so go round once more after other jobs.
	if c.rstate.CompareAndSwap(readRunning, readAgain) {
		return
	}
}

// discarding reports whether input is ignored: after a failure the parser's
// state is meaningless, and after teardown there is nothing to feed.
func (c *Conn) discarding() bool {
	c.mu.Lock()
	d := c.gone || c.dropAfter
	c.mu.Unlock()
	return d
}

func (c *Conn) parseError(err error) {
	if err == errPeerClosed {
		return
	}
	var ce *frame.CloseError
	if errors.As(err, &ce) {
		c.loop.log.Debug("protocol error", "remote", c.remote, "code", ce.Code, "err", ce.Reason)
		c.fail(ce.Code, ce.Reason)
		return
	}
	c.loop.log.Error("read handler failed", "remote", c.remote, "err", err)
	c.fail(frame.CloseInternal, "internal error")
}

// parserHandler is Conn seen by the frame parser; a named type keeps these
// methods off Conn's public API and converts without allocating.
type parserHandler Conn

func (p *parserHandler) OnMessage(op frame.Opcode, data []byte) error {
	c := (*Conn)(p)
	if c.isClosing() {
		return nil
	}
	c.h.OnMessage(c, op, data)
	return nil
}

func (p *parserHandler) OnPing(payload []byte) error {
	c := (*Conn)(p)
	pong := frame.NewPrepared(frame.OpPong, payload) // NewPrepared copies
	_ = c.enqueue(pong, false)
	return nil
}

func (p *parserHandler) OnPong([]byte) error { return nil }

func (p *parserHandler) OnClose(code uint16, _ []byte) error {
	c := (*Conn)(p)
	c.mu.Lock()
	weClosed := c.closeSent
	c.mu.Unlock()
	if weClosed {
		// The handshake is complete: our close went out, theirs came back.
		c.teardown()
		return errPeerClosed
	}
	// Echo their code, then close once it is written.
	c.startClose(code, "", true)
	return errPeerClosed
}

func (c *Conn) isClosing() bool {
	c.mu.Lock()
	cl := c.closeSent || c.gone
	c.mu.Unlock()
	return cl
}

// teardown closes the socket and forgets the connection. Only the read job
// calls it.
func (c *Conn) teardown() {
	if !c.markGone() {
		return
	}
	fd := int(c.fd)
	l := c.loop
	l.conns.set(fd, nil)
	l.poller.remove(fd)
	c.mu.Lock()
	inWrite := c.writing
	c.closeFD = inWrite
	c.mu.Unlock()
	if !inWrite {
		unix.Close(fd)
	}
	c.parser.Release()
	c.forget()
}

// markGone makes every later write a no-op and drops the queue. It reports
// false if the connection was already gone.
func (c *Conn) markGone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone {
		return false
	}
	c.gone = true
	c.torn.Store(true)
	clear(c.queue)
	c.queue = c.queue[:0]
	c.shrinkQueue()
	c.queued = 0
	return true
}

// forget is the end of every connection, epoll or stream, after its socket
// is closed.
func (c *Conn) forget() {
	c.loop.metrics.Connections.Dec()
	c.notifyClosed(frame.CloseAbnormal)
	c.loop.active.Add(-1)
}
