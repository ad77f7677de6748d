package loop

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/roomcast/roomcast/pkg/frame"
)

// maxIovecs is the most frames one writev carries (Linux's IOV_MAX is 1024).
const maxIovecs = 1024

// keepQueueCap is the queue capacity an idle connection keeps. A queue that
// grows past it borrows a pooledQueueCap array from queuePool and keeps it
// while the connection is busy; the sweep gives it back after a second with
// no Send. So bursts neither regrow a queue by doubling nor churn the pool
// (its arrays would be dropped at every GC), and an idle connection holds
// no big array.
const (
	keepQueueCap   = 8
	pooledQueueCap = 256
)

var queuePool = sync.Pool{New: func() any {
	q := make([]*frame.Prepared, 0, pooledQueueCap)
	return &q
}}

// growQueue moves a full small queue into a pooled array. Lock held.
func (c *Conn) growQueue() {
	if len(c.queue) < cap(c.queue) || cap(c.queue) < keepQueueCap || cap(c.queue) >= pooledQueueCap {
		return
	}
	q := queuePool.Get().(*[]*frame.Prepared)
	*q = append((*q)[:0], c.queue...)
	clear(c.queue)
	c.queue = *q
}

// shrinkQueue gives an emptied big array back. Lock held.
func (c *Conn) shrinkQueue() {
	if len(c.queue) != 0 || cap(c.queue) <= keepQueueCap {
		return
	}
	if cap(c.queue) == pooledQueueCap {
		q := c.queue[:0]
		queuePool.Put(&q)
	}
	c.queue = nil
}

// flushJob writes as much of the queue as the socket takes, many frames per
// writev. The syscall runs without c.mu, so the fan-out never waits for a
// write to queue the next frame: it appends, and this job picks the frame up
// on its next round (flushPending stays set until the queue is empty or the
// socket is full). c.writing keeps teardown from closing the fd under the
// write; the writer closes it afterwards instead.
//
// Hot path: one call per connection per batch of broadcasts (bench fanout).
func (c *Conn) flushJob(w *worker) {
	c.mu.Lock()
	broken := false
	for len(c.queue) > 0 && !c.gone && !c.wantOut {
		w.iovs = w.iovs[:0]
		for i, f := range c.queue {
			if i == maxIovecs {
				break
			}
			b := c.bytes(f)
			if i == 0 {
				b = b[c.head:]
			}
			w.iovs = append(w.iovs, b)
		}
		c.writing = true
		c.outSeen = false
		c.mu.Unlock()
		n, err := writev(int(c.fd), w.iovs, &w.vecs)
		c.mu.Lock()
		c.writing = false
		if c.closeFD {
			// Teardown came during the write and left the close to us.
			c.closeFD = false
			unix.Close(int(c.fd))
		}
		if c.gone {
			break
		}
		if n > 0 {
			c.loop.metrics.BytesOut.Add(float64(n))
			c.advance(n)
		}
		if err == unix.EAGAIN {
			if c.outSeen {
				// EPOLLOUT came while we wrote: the socket has room again.
				continue
			}
			c.wantOut = true
			break
		}
		if err != nil && err != unix.EINTR {
			broken = true
			break
		}
	}
	c.flushPending = false
	if cap(c.queue) > pooledQueueCap {
		c.shrinkQueue() // grown by append past the pooled size: drop it now
	}
	done := len(c.queue) == 0 && c.dropAfter && !c.gone
	c.mu.Unlock()
	if broken || done {
		c.requestTeardown()
	}
}

// advance drops n written bytes from the front of the queue. Lock held.
func (c *Conn) advance(n int) {
	c.queued -= n
	k := 0
	for k < len(c.queue) {
		size := len(c.bytes(c.queue[k])) - c.head
		if n < size {
			c.head += n
			break
		}
		n -= size
		c.head = 0
		k++
	}
	if k > 0 {
		m := copy(c.queue, c.queue[k:])
		clear(c.queue[m:])
		c.queue = c.queue[:m]
	}
}

// writev writes bufs with one syscall, reusing the caller's iovec scratch
// (unix.Writev allocates its iovecs on every call).
func writev(fd int, bufs [][]byte, scratch *[]unix.Iovec) (int, error) {
	if len(bufs) == 1 {
		return unix.Write(fd, bufs[0])
	}
	vecs := (*scratch)[:0]
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		v := unix.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		vecs = append(vecs, v)
	}
	*scratch = vecs
	if len(vecs) == 0 {
		return 0, nil
	}
	r, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&vecs[0])), uintptr(len(vecs)))
	if e != 0 {
		return int(r), e
	}
	return int(r), nil
}
