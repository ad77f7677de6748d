package loop

import (
	"errors"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomcast/roomcast/pkg/frame"
)

// ErrClosing is returned by Send once the connection is closing.
var ErrClosing = errors.New("loop: connection is closing")

// ErrSlowConsumer is returned by Send when the frame would overflow the
// connection's outgoing queue; the connection is then closed with 4009.
var ErrSlowConsumer = errors.New("loop: outgoing queue full (slow consumer)")

// Read states: a connection's reads run on at most one worker at a time.
const (
	readIdle uint32 = iota
	readRunning
	readAgain // an event came in while running: run once more
)

// Conn is one upgraded WebSocket connection. Its methods are safe for
// concurrent use. It holds no goroutine and no buffer while idle; the fields
// are ordered so the struct packs small (see bench/ idle scenario).
type Conn struct {
	loop *Loop
	h    Handler

	// mu guards the write side: queue, queued, head and the flags below it.
	mu     sync.Mutex
	queue  []*frame.Prepared // frames not yet fully written, in order
	head   int               // bytes of queue[0] already written
	queued int               // bytes in queue not yet written

	flushPending bool // a flush job is scheduled
	wantOut      bool // a write hit EAGAIN: wait for EPOLLOUT
	closeSent    bool // our close frame is queued: queue nothing else
	dropAfter    bool // tear down once the queue is written (failed connection)
	gone         bool // fd closed: every write is a no-op
	writing      bool // a flush job is in writev without the lock
	closeFD      bool // teardown left closing the fd to that writer
	outSeen      bool // EPOLLOUT came while writing
	sent         bool // a Send since the last sweep (keeps a pooled queue)
	opening      bool // OnOpen is running: OnClose waits for it
	notified     bool // OnClose was called, or is due once OnOpen returns
	closeCode    uint16

	deflate bool // permessage-deflate negotiated
	fd      int32

	rstate atomic.Uint32
	dead   atomic.Bool // tear down at the next read job
	torn   atomic.Bool // the fd is closed (read side's lock-free view of gone)
	// midFrame mirrors parser.InFrame for the sweep, which must not touch
	// the parser while a read job runs.
	midFrame atomic.Bool

	lastRead     atomic.Int64 // unix nanos of the last bytes read
	lastPing     int64        // unix nanos; only the sweep touches it
	closeByNanos atomic.Int64 // after this, tear down even without the peer's close; 0 = none

	parser frame.Parser // only the read job touches it
	remote netip.AddrPort
	// stream is set for connections the epoll loop cannot watch (TLS):
	// they use a reader and a writer goroutine instead (stream.go).
	stream *stream
}

// Remote is the peer address (the TCP peer, not X-Forwarded-For).
func (c *Conn) Remote() netip.AddrPort { return c.remote }

// Compressed reports whether permessage-deflate was negotiated.
func (c *Conn) Compressed() bool { return c.deflate }

// Send queues f to be written. It never blocks: the write happens on a
// worker, batched with whatever else is queued. If the queue would grow past
// the loop's bound, the connection is cut with 4009 and ErrSlowConsumer is
// returned; f may be shared by any number of connections and must not change.
//
// Hot path: called once per member per broadcast (bench fanout).
func (c *Conn) Send(f *frame.Prepared) error {
	return c.enqueue(f, false)
}

func (c *Conn) enqueue(f *frame.Prepared, control bool) error {
	n := len(c.bytes(f))
	c.mu.Lock()
	if c.gone || (c.closeSent && !control) {
		c.mu.Unlock()
		return ErrClosing
	}
	if !control && c.queued+n > c.loop.opts.MaxQueueBytes {
		c.mu.Unlock()
		c.loop.metrics.SlowConsumers.Inc()
		c.loop.log.Warn("slow consumer cut", "remote", c.remote, "code", frame.CloseSlowConsumer, "queued", c.queued)
		c.Close(frame.CloseSlowConsumer, "slow consumer: outgoing queue full")
		return ErrSlowConsumer
	}
	c.growQueue()
	c.queue = append(c.queue, f)
	c.sent = true
	c.queued += n
	schedule := !c.flushPending && !c.wantOut
	if schedule {
		c.flushPending = true
	}
	c.mu.Unlock()
	if schedule {
		c.scheduleFlush()
	}
	return nil
}

// bytes is what goes on the wire for f on this connection: compressed when
// permessage-deflate was negotiated and the payload reaches the node's
// minimum size.
func (c *Conn) bytes(f *frame.Prepared) []byte {
	return f.BytesMin(c.deflate, c.loop.opts.CompressionMinSize)
}

func (c *Conn) scheduleFlush() {
	if c.stream != nil {
		c.stream.wakeWriter()
		return
	}
	c.loop.pool.submit(job{c: c, kind: jobFlush})
}

// Close starts the closing handshake: the close frame is queued after what
// is already queued, nothing else is sent, the Handler hears OnClose now, and
// the socket is closed when the peer answers or after the close timeout.
// Idempotent; the first code wins.
func (c *Conn) Close(code uint16, reason string) {
	c.startClose(code, reason, false)
}

// fail closes after a protocol error: the close frame is written, then the
// socket is closed without waiting for the peer (RFC 6455 §7.1.7).
func (c *Conn) fail(code uint16, reason string) {
	c.startClose(code, reason, true)
}

func (c *Conn) startClose(code uint16, reason string, drop bool) {
	c.mu.Lock()
	if c.closeSent || c.gone {
		if drop && !c.gone {
			c.dropAfter = true
		}
		c.mu.Unlock()
		return
	}
	c.closeSent = true
	c.dropAfter = drop
	c.mu.Unlock()
	c.closeByNanos.Store(time.Now().Add(c.loop.opts.CloseTimeout).UnixNano())
	_ = c.enqueue(closeFrame(code, reason), true)
	c.notifyClosed(code)
}

// notifyClosed calls Handler.OnClose exactly once, and never while OnOpen
// runs: a close that starts during OnOpen (a failed welcome write, a fan-out
// cutting a slow consumer) is delivered by opened.
func (c *Conn) notifyClosed(code uint16) {
	c.mu.Lock()
	if c.notified {
		c.mu.Unlock()
		return
	}
	c.notified = true
	c.closeCode = code
	opening := c.opening
	c.mu.Unlock()
	if !opening {
		c.deliverClose(code)
	}
}

func (c *Conn) deliverClose(code uint16) {
	c.loop.metrics.Closed.WithLabelValues(strconv.Itoa(int(code))).Inc()
	c.h.OnClose(c, code)
}

// open runs OnOpen, then delivers a close that came in meanwhile.
func (c *Conn) open() {
	c.mu.Lock()
	c.opening = true
	c.mu.Unlock()
	c.h.OnOpen(c)
	c.mu.Lock()
	c.opening = false
	pending, code := c.notified, c.closeCode
	c.mu.Unlock()
	if pending {
		c.deliverClose(code)
	}
}

// closeFrame returns the close frame for code; the frequent codes are built
// once per process.
func closeFrame(code uint16, reason string) *frame.Prepared {
	if reason == "" {
		if f, ok := builtClose[code]; ok {
			return f
		}
	}
	var p []byte
	if code != frame.CloseNoStatus {
		p = frame.AppendClose(nil, code, reason)
		// AppendClose builds a whole frame; keep only its payload.
		p = p[2:]
	}
	return frame.NewPrepared(frame.OpClose, p)
}

var builtClose = func() map[uint16]*frame.Prepared {
	m := map[uint16]*frame.Prepared{frame.CloseNoStatus: frame.NewPrepared(frame.OpClose, nil)}
	for _, code := range []uint16{frame.CloseNormal, frame.CloseGoingAway, frame.CloseProtocolError,
		frame.CloseInvalidPayload, frame.ClosePolicy, frame.CloseTooLarge, frame.CloseInternal,
		frame.CloseSlowConsumer, frame.CloseRateLimited} {
		m[code] = frame.NewPrepared(frame.OpClose, frame.AppendClose(nil, code, "")[2:])
	}
	return m
}()

// requestTeardown asks the connection's read job to close the socket, so the
// fd is only ever closed where no read can be running on it.
func (c *Conn) requestTeardown() {
	if c.stream != nil {
		c.teardownStream()
		return
	}
	c.dead.Store(true)
	c.triggerRead()
}

// triggerRead schedules a read job unless one is running, in which case the
// running job is told to go round once more.
func (c *Conn) triggerRead() {
	for {
		switch c.rstate.Load() {
		case readIdle:
			if c.rstate.CompareAndSwap(readIdle, readRunning) {
				c.loop.pool.submit(job{c: c, kind: jobRead})
				return
			}
		case readRunning:
			if c.rstate.CompareAndSwap(readRunning, readAgain) {
				return
			}
		default:
			return
		}
	}
}

// writable is called on EPOLLOUT: resume a flush that hit EAGAIN, or tell
// a write in flight that the socket has room again.
func (c *Conn) writable() {
	c.mu.Lock()
	resume := c.wantOut && !c.flushPending
	if resume {
		c.wantOut = false
		c.flushPending = true
	} else {
		c.outSeen = true
	}
	c.mu.Unlock()
	if resume {
		c.scheduleFlush()
	}
}
