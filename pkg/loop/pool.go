package loop

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

type jobKind uint8

const (
	jobRead jobKind = iota
	jobFlush
)

type job struct {
	c    *Conn
	kind jobKind
}

// pool runs jobs on at most max goroutines. Workers start on demand and exit
// after idleExit without work, so an idle node holds few goroutines, while a
// handler that blocks (a presence snapshot on first join, say) cannot stall
// every connection. Each worker owns a read buffer and an iovec scratch, so
// neither is held per connection.
type pool struct {
	jobs    chan job
	max     int32
	bufSize int
	running atomic.Int32
	idle    atomic.Int32
	wg      sync.WaitGroup
	loop    *Loop
	quit    chan struct{}
}

const idleExit = 10 * time.Second

func newPool(l *Loop, max, queue, bufSize int) *pool {
	return &pool{jobs: make(chan job, queue), max: int32(max), bufSize: bufSize, loop: l, quit: make(chan struct{})}
}

func (p *pool) submit(j job) {
	if p.idle.Load() == 0 {
		p.spawn()
	}
	select {
	case p.jobs <- j:
	case <-p.quit:
	}
}

func (p *pool) spawn() {
	for {
		n := p.running.Load()
		if n >= p.max {
			return
		}
		if p.running.CompareAndSwap(n, n+1) {
			break
		}
	}
	p.wg.Add(1)
	go p.work()
}

func (p *pool) work() {
	defer p.wg.Done()
	defer p.running.Add(-1)
	w := &worker{buf: make([]byte, p.bufSize)}
	t := time.NewTimer(idleExit)
	defer t.Stop()
	for {
		p.idle.Add(1)
		select {
		case j := <-p.jobs:
			p.idle.Add(-1)
			switch j.kind {
			case jobRead:
				j.c.readJob(w)
			case jobFlush:
				j.c.flushJob(w)
			}
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
			t.Reset(idleExit)
		case <-t.C:
			p.idle.Add(-1)
			// Keep one worker so the first event after a quiet spell
			// does not wait for a goroutine to start.
			if p.running.Load() > 1 {
				return
			}
			t.Reset(idleExit)
		case <-p.quit:
			p.idle.Add(-1)
			return
		}
	}
}

func (p *pool) stop() {
	close(p.quit)
	p.wg.Wait()
}

// worker is one pool goroutine's scratch space.
type worker struct {
	buf  []byte
	iovs [][]byte
	vecs []unix.Iovec
}
