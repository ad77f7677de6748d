package loop

import "sync"

// table maps fds to connections: a slice indexed by fd, as fds are small
// dense integers. Reads far outnumber writes (every epoll event looks up,
// only open and close write), hence the RWMutex.
type table struct {
	mu    sync.RWMutex
	conns []*Conn
	n     int
}

func (t *table) get(fd int) *Conn {
	t.mu.RLock()
	var c *Conn
	if fd >= 0 && fd < len(t.conns) {
		c = t.conns[fd]
	}
	t.mu.RUnlock()
	return c
}

func (t *table) set(fd int, c *Conn) {
	t.mu.Lock()
	if fd >= len(t.conns) {
		n := 2 * len(t.conns)
		if n < fd+1 {
			n = fd + 1024
		}
		grown := make([]*Conn, n)
		copy(grown, t.conns)
		t.conns = grown
	}
	if t.conns[fd] == nil && c != nil {
		t.n++
	} else if t.conns[fd] != nil && c == nil {
		t.n--
	}
	t.conns[fd] = c
	t.mu.Unlock()
}

// each calls fn for every connection, outside the lock, on a copy made in
// chunks so the epoll loop is never blocked for long.
func (t *table) each(fn func(*Conn)) {
	var chunk [256]*Conn
	for start := 0; ; start += len(chunk) {
		t.mu.RLock()
		if start >= len(t.conns) {
			t.mu.RUnlock()
			return
		}
		k := copy(chunk[:], t.conns[start:])
		t.mu.RUnlock()
		for _, c := range chunk[:k] {
			if c != nil {
				fn(c)
			}
		}
	}
}
