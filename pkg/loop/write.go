package loop

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxIovecs is the most frames one writev carries (Linux's IOV_MAX is 1024).
const maxIovecs = 1024

// keepQueueCap is the queue capacity kept after a flush; a bigger backing
// array is dropped so a burst does not stay in an idle connection's memory.
const keepQueueCap = 8

// flushJob writes as much of the queue as the socket takes, many frames per
// writev. The lock is held across the non-blocking syscall: it never waits,
// and holding it keeps the queue and the fd consistent with teardown.
//
// Hot path: one call per connection per batch of broadcasts (bench fanout).
func (c *Conn) flushJob(w *worker) {
	c.mu.Lock()
	c.flushPending = false
	broken := false
	for len(c.queue) > 0 && !c.gone && !c.wantOut {
		w.iovs = w.iovs[:0]
		for i, f := range c.queue {
			if i == maxIovecs {
				break
			}
			b := f.Bytes(c.deflate)
			if i == 0 {
				b = b[c.head:]
			}
			w.iovs = append(w.iovs, b)
		}
		n, err := writev(int(c.fd), w.iovs, &w.vecs)
		if n > 0 {
			c.loop.metrics.BytesOut.Add(float64(n))
			c.advance(n)
		}
		if err == unix.EAGAIN {
			c.wantOut = true
			break
		}
		if err != nil && err != unix.EINTR {
			broken = true
			break
		}
	}
	if cap(c.queue) > keepQueueCap && len(c.queue) == 0 {
		c.queue = nil
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
		size := len(c.queue[k].Bytes(c.deflate)) - c.head
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
