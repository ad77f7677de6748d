// Package wsload is the benchmarks' WebSocket load client: tens of thousands
// of connections from one process with no goroutine per connection.
//
// Connections are dialed by a bounded set of goroutines with plain blocking
// syscalls, then handed to a few reader shards; each shard owns an epoll
// instance and its connections, and reads them in bulk (one read of up to
// 256 KiB per readiness), so the client costs far fewer syscalls per
// delivered message than the server under test. Frames are parsed in place;
// only a frame split across two reads is copied.
//
// What it understands: text frames carrying one or more '\n'-separated JSON
// messages (roomcast and Centrifugo both batch this way). A message
// containing Marker (`{"t":` by default) is a delivery; the number after the
// marker is the publisher's clock in Unix nanoseconds, from which the
// publish→receive latency is taken while latency recording is on. A message
// containing AckMarker counts as an acknowledgement (joins, subscribes).
// Compressed (RSV1) frames are counted as one delivery each without being
// inflated: inflating a million frames a second would cost the client more
// than the server, and roomcast sends one message per compressed frame.
package wsload

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/roomcast/roomcast/bench/internal/hist"
)

// Options configure a Client.
type Options struct {
	// Server is the address every connection dials.
	Server netip.AddrPort
	// Sources are local addresses, used round robin, so that more
	// connections than one address has ephemeral ports can be opened
	// (127.0.0.0/8 is all loopback). Empty: the kernel picks.
	Sources []netip.Addr
	// Deflate offers permessage-deflate with no context takeover.
	Deflate bool
	// Shards is the number of reader goroutines (each one epoll). [2]
	Shards int
	// Marker starts the timestamp of a delivered message. [`{"t":`]
	Marker string
	// AckMarker identifies acknowledgements. [`"type":"ack"`]
	AckMarker string
	// DialTimeout bounds connect plus handshake. [10s]
	DialTimeout time.Duration
	// AppPing, if set, is an application-level ping message (Centrifugo
	// sends `{}`); a message equal to it is answered with itself.
	AppPing string
}

// Groups is how many connection groups keep separate latency histograms
// (the cluster scenario tells same-node from cross-node deliveries).
const Groups = 4

// Stats are counters summed over every shard.
type Stats struct {
	Delivered  uint64 `json:"delivered"`   // messages carrying Marker (or compressed frames)
	Compressed uint64 `json:"compressed"`  // RSV1 frames among them
	Acks       uint64 `json:"acks"`        // messages carrying AckMarker
	Frames     uint64 `json:"frames"`      // every frame, control frames included
	Bytes      uint64 `json:"bytes"`       // bytes read from sockets (WebSocket framing included)
	Reads      uint64 `json:"reads"`       // read syscalls that returned data
	Pings      uint64 `json:"pings"`       // pings answered
	Closed     uint64 `json:"closed"`      // connections the server closed or reset
	Close4009  uint64 `json:"close_4009"`  // of which closed as slow consumers
	WriteFails uint64 `json:"write_fails"` // client frames that could not be written whole
}

// Client is a set of load connections. Safe for concurrent use.
type Client struct {
	opts    Options
	marker  []byte
	ack     []byte
	shards  []*shard
	conns   sync.Map // fd → *Conn, for epoll events
	all     []*Conn  // every open connection, in dial order
	allMu   sync.Mutex
	next    atomic.Uint64
	latency atomic.Bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// Conn is one load connection.
type Conn struct {
	fd    int
	shard *shard
	// Index is the connection's position in dial order across the client.
	Index int
	// Group selects the latency histogram of the connection's deliveries.
	Group int
	// partial holds a frame split across reads; nil almost always.
	partial []byte
	wmu     sync.Mutex // serializes client frames (join, publish, pong)
	closed  atomic.Bool
}

// shard is one reader goroutine: an epoll instance, a read buffer and
// counters only it writes (atomically, once per read, so others may load
// them at any time).
type shard struct {
	c     *Client
	epfd  int
	buf   []byte
	st    [10]atomic.Uint64 // indexed like Stats' fields
	lat   [Groups]hist.H
	local [10]uint64 // per-read accumulation, flushed into st
}

// Counter indexes of shard.st, in the order of Stats' fields.
const (
	cDelivered = iota
	cCompressed
	cAcks
	cFrames
	cBytes
	cReads
	cPings
	cClosed
	c4009
	cWriteFails
)

// New starts a client's reader shards.
func New(o Options) (*Client, error) {
	if o.Shards <= 0 {
		o.Shards = 2
	}
	if o.Marker == "" {
		o.Marker = `{"t":`
	}
	if o.AckMarker == "" {
		o.AckMarker = `"type":"ack"`
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	c := &Client{opts: o, marker: []byte(o.Marker), ack: []byte(o.AckMarker), stop: make(chan struct{})}
	for range o.Shards {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("wsload: epoll: %w", err)
		}
		s := &shard{c: c, epfd: fd, buf: make([]byte, 256<<10)}
		c.shards = append(c.shards, s)
		c.wg.Add(1)
		go s.run()
	}
	return c, nil
}

// SetLatency turns latency recording on or off; Reset clears what was
// recorded.
func (c *Client) SetLatency(on bool) { c.latency.Store(on) }

// Stats sums the shards' counters.
func (c *Client) Stats() Stats {
	var t [10]uint64
	for _, s := range c.shards {
		for i := range t {
			t[i] += s.st[i].Load()
		}
	}
	return Stats{Delivered: t[cDelivered], Compressed: t[cCompressed], Acks: t[cAcks], Frames: t[cFrames],
		Bytes: t[cBytes], Reads: t[cReads], Pings: t[cPings], Closed: t[cClosed], Close4009: t[c4009],
		WriteFails: t[cWriteFails]}
}

// Latency merges the shards' latency histograms of each group.
func (c *Client) Latency() [Groups]hist.Snapshot {
	var out [Groups]hist.Snapshot
	for g := range out {
		var h hist.H
		for _, s := range c.shards {
			h.Merge(s.lat[g].Snapshot())
		}
		out[g] = h.Snapshot()
	}
	return out
}

// ResetLatency clears the latency histograms.
func (c *Client) ResetLatency() {
	for _, s := range c.shards {
		for g := range s.lat {
			s.lat[g].Reset()
		}
	}
}

// Conns returns the open connections in dial order.
func (c *Client) Conns() []*Conn {
	c.allMu.Lock()
	defer c.allMu.Unlock()
	out := make([]*Conn, 0, len(c.all))
	for _, k := range c.all {
		if !k.closed.Load() {
			out = append(out, k)
		}
	}
	return out
}

// Len is the number of connections dialed and not closed by us.
func (c *Client) Len() int {
	c.allMu.Lock()
	defer c.allMu.Unlock()
	return len(c.all)
}

// Close closes every connection and stops the shards.
func (c *Client) Close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	c.wg.Wait()
	c.CloseConns()
	for _, s := range c.shards {
		unix.Close(s.epfd)
	}
}

// CloseConns closes every connection (without a close handshake: the server
// sees EOF, its cheapest path) and forgets them.
func (c *Client) CloseConns() {
	c.allMu.Lock()
	all := c.all
	c.all = nil
	c.allMu.Unlock()
	for _, k := range all {
		k.shutdown()
	}
}

func (k *Conn) shutdown() {
	if k.closed.Swap(true) {
		return
	}
	k.shard.c.conns.Delete(k.fd)
	_ = unix.EpollCtl(k.shard.epfd, unix.EPOLL_CTL_DEL, k.fd, nil)
	unix.Close(k.fd)
}

// Write sends one masked client text frame carrying payload. The mask key
// is zero, which RFC 6455 allows (the server must unmask any key), so the
// payload goes out unchanged. Small frames on a socket with room are written
// whole; anything else counts as a write failure.
func (k *Conn) Write(payload []byte) error {
	return k.writeFrame(0x1, payload)
}

func (k *Conn) writeFrame(op byte, payload []byte) error {
	var hdr [14]byte
	b := append(hdr[:0], 0x80|op)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		return errors.New("wsload: client frame too large")
	}
	b = append(b, 0, 0, 0, 0)
	k.wmu.Lock()
	defer k.wmu.Unlock()
	if k.closed.Load() {
		return errors.New("wsload: closed")
	}
	n, err := unix.Writev(k.fd, [][]byte{b, payload})
	if err == nil && n != len(b)+len(payload) {
		err = fmt.Errorf("wsload: short write %d of %d", n, len(b)+len(payload))
	}
	if err != nil {
		k.shard.st[cWriteFails].Add(1)
	}
	return err
}

// run is a shard's loop. Level-triggered epoll: one read per readiness, and
// whatever is left is reported again by the next wait.
func (s *shard) run() {
	defer s.c.wg.Done()
	events := make([]unix.EpollEvent, 512)
	for {
		select {
		case <-s.c.stop:
			return
		default:
		}
		n, err := unix.EpollWait(s.epfd, events, 100)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		for i := 0; i < n; i++ {
			v, ok := s.c.conns.Load(int(events[i].Fd))
			if !ok {
				continue
			}
			s.read(v.(*Conn))
		}
	}
}

func (s *shard) read(k *Conn) {
	if k.closed.Load() {
		return
	}
	n, err := unix.Read(k.fd, s.buf)
	if n <= 0 {
		if err == unix.EAGAIN || err == unix.EINTR {
			return
		}
		s.st[cClosed].Add(1)
		k.shutdown()
		return
	}
	s.local = [10]uint64{}
	s.local[cReads] = 1
	s.local[cBytes] = uint64(n)
	s.feed(k, s.buf[:n])
	for i, v := range s.local {
		if v != 0 {
			s.st[i].Add(v)
		}
	}
}

// Feed parses data read from k (or handshake leftovers); the shard's
// counters take the results. Only the owning shard calls it once k is
// registered.
func (s *shard) feed(k *Conn, data []byte) {
	if len(k.partial) > 0 {
		k.partial = append(k.partial, data...)
		data = k.partial
	}
	for len(data) >= 2 {
		b0, b1 := data[0], data[1]
		h, n := 2, int(b1&0x7f)
		switch n {
		case 126:
			if len(data) < 4 {
				goto keep
			}
			n, h = int(data[2])<<8|int(data[3]), 4
		case 127:
			if len(data) < 10 {
				goto keep
			}
			var v uint64
			for _, x := range data[2:10] {
				v = v<<8 | uint64(x)
			}
			n, h = int(v), 10
		}
		if b1&0x80 != 0 {
			h += 4 // servers do not mask; tolerate it anyway
		}
		if len(data) < h+n {
			goto keep
		}
		s.frame(k, b0, data[h:h+n])
		data = data[h+n:]
	}
keep:
	switch {
	case len(data) == 0:
		if cap(k.partial) > 64<<10 {
			k.partial = nil // a big list came through: do not keep its buffer
		} else {
			k.partial = k.partial[:0]
		}
	case len(k.partial) > 0 && &data[0] == &k.partial[len(k.partial)-len(data)]:
		k.partial = k.partial[:copy(k.partial, data)]
	default:
		k.partial = append(k.partial[:0], data...)
	}
}

// frame handles one whole frame.
func (s *shard) frame(k *Conn, b0 byte, payload []byte) {
	s.local[cFrames]++
	switch op := b0 & 0x0f; op {
	case 0x1, 0x0: // text, continuation
		if b0&0x40 != 0 {
			s.local[cDelivered]++
			s.local[cCompressed]++
			return
		}
		s.messages(k, payload)
	case 0x9: // ping: answer with the same payload
		s.local[cPings]++
		_ = k.writeFrame(0xA, payload)
	case 0x8: // close
		if len(payload) >= 2 && int(payload[0])<<8|int(payload[1]) == 4009 {
			s.local[c4009]++
		}
		s.local[cClosed]++
		_ = k.writeFrame(0x8, payload[:min(len(payload), 2)])
		k.shutdown()
	}
}

// messages counts the '\n'-separated messages of one text payload.
func (s *shard) messages(k *Conn, p []byte) {
	lat := s.c.latency.Load()
	for len(p) > 0 {
		m := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			m, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		if i := bytes.Index(m, s.c.marker); i >= 0 {
			s.local[cDelivered]++
			if lat {
				if t := parseInt(m[i+len(s.c.marker):]); t > 0 {
					s.lat[k.Group].Record(time.Duration(time.Now().UnixNano() - t))
				}
			}
			continue
		}
		if bytes.Contains(m, s.c.ack) {
			s.local[cAcks]++
		} else if s.c.opts.AppPing != "" && string(m) == s.c.opts.AppPing {
			_ = k.Write(m)
		}
	}
}

// parseInt reads the decimal digits at the start of b.
func parseInt(b []byte) int64 {
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int64(c-'0')
	}
	return v
}

// DialResult is what one Dial call achieved.
type DialResult struct {
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Statuses map[string]int `json:"statuses,omitempty"` // refusals by HTTP status or error
	Deflate  int            `json:"deflate"`            // connections that negotiated compression
	Elapsed  time.Duration  `json:"elapsed_ns"`
	Latency  hist.Snapshot  `json:"latency"` // dial start → 101 read, per connection
}

// DialSpec says what to open.
type DialSpec struct {
	N           int
	Concurrency int
	// Server overrides Options.Server for this call.
	Server netip.AddrPort
	// Group is the connections' latency group, 0 to Groups-1.
	Group int
	// Path returns the request path (with query) of the i-th connection of
	// this call.
	Path func(i int) string
	// After runs on the dialing goroutine once the 101 is read, before the
	// connection is handed to its shard: send joins or subscribes here. i
	// is the connection's index in this call.
	After func(k *Conn, i int) error
}

// Dial opens spec.N connections, spec.Concurrency at a time.
func (c *Client) Dial(spec DialSpec) DialResult {
	if spec.Concurrency <= 0 {
		spec.Concurrency = 32
	}
	res := DialResult{Statuses: map[string]int{}}
	server := c.opts.Server
	if spec.Server.IsValid() {
		server = spec.Server
	}
	if spec.Group < 0 || spec.Group >= Groups {
		spec.Group = 0
	}
	var mu sync.Mutex
	var lat hist.H
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range min(spec.Concurrency, spec.N) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= spec.N {
					return
				}
				t0 := time.Now()
				k, deflate, err := c.dialOne(server, spec.Path(i))
				if err == nil {
					k.Group = spec.Group
				}
				if err == nil && spec.After != nil {
					if err = spec.After(k, i); err != nil {
						k.shutdown()
					}
				}
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					res.Failed++
					res.Statuses[err.Error()]++
				} else {
					res.OK++
					if deflate {
						res.Deflate++
					}
				}
				mu.Unlock()
				if err == nil {
					lat.Record(d)
					c.register(k)
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Latency = lat.Snapshot()
	return res
}

// register hands k to its shard.
func (c *Client) register(k *Conn) {
	c.allMu.Lock()
	k.Index = len(c.all)
	c.all = append(c.all, k)
	c.allMu.Unlock()
	c.conns.Store(k.fd, k)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(k.fd)}
	if err := unix.EpollCtl(k.shard.epfd, unix.EPOLL_CTL_ADD, k.fd, &ev); err != nil {
		k.shutdown()
	}
}

const ipBindAddressNoPort = 24 // IP_BIND_ADDRESS_NO_PORT: pick the port at connect, per 4-tuple

// dialOne connects, upgrades and leaves the 101's trailing bytes in the
// socket (the response is peeked, then exactly its header is read), so the
// shard's epoll reports the first frames itself.
func (c *Client) dialOne(server netip.AddrPort, path string) (*Conn, bool, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, false, errors.New(errName(err))
	}
	fail := func(e error) (*Conn, bool, error) {
		unix.Close(fd)
		return nil, false, e
	}
	seq := c.next.Add(1)
	if len(c.opts.Sources) > 0 {
		src := c.opts.Sources[seq%uint64(len(c.opts.Sources))]
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, ipBindAddressNoPort, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4()}); err != nil {
			return fail(errors.New("bind " + errName(err)))
		}
	}
	tv := unix.NsecToTimeval(c.opts.DialTimeout.Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := connect(fd, server, c.opts.DialTimeout); err != nil {
		return fail(err)
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + server.String() +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if c.opts.Deflate {
		req += "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n"
	}
	req += "\r\n"
	for rest := []byte(req); len(rest) > 0; {
		n, err := unix.Write(fd, rest)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fail(errors.New("write " + errName(err)))
		}
		rest = rest[n:]
	}
	var buf [4096]byte
	deadline := time.Now().Add(c.opts.DialTimeout)
	var head []byte
	for {
		n, _, err := unix.Recvfrom(fd, buf[:], unix.MSG_PEEK)
		if err != nil && err != unix.EINTR {
			return fail(errors.New("read " + errName(err)))
		}
		if n == 0 && err == nil {
			return fail(errors.New("eof before 101"))
		}
		if i := bytes.Index(buf[:max(n, 0)], []byte("\r\n\r\n")); i >= 0 {
			head = buf[:i+4]
			break
		}
		if n == len(buf) {
			return fail(errors.New("response head over 4 KiB"))
		}
		if time.Now().After(deadline) {
			return fail(errors.New("handshake timeout"))
		}
		time.Sleep(200 * time.Microsecond) // a peek returns at once once anything is there
	}
	status := 0
	if len(head) >= 12 {
		status, _ = strconv.Atoi(string(head[9:12]))
	}
	if status != 101 {
		return fail(fmt.Errorf("http %d", status))
	}
	deflate := bytes.Contains(bytes.ToLower(head), []byte("permessage-deflate"))
	// Consume exactly the head; frames after it stay for the shard.
	var sink [4096]byte
	for got := 0; got < len(head); {
		n, err := unix.Read(fd, sink[:len(head)-got])
		if err != nil && err != unix.EINTR {
			return fail(errors.New("read " + errName(err)))
		}
		got += max(n, 0)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail(errors.New("nonblock " + errName(err)))
	}
	k := &Conn{fd: fd, shard: c.shards[seq%uint64(len(c.shards))]}
	return k, deflate, nil
}

// connect connects fd without blocking in connect(2) itself: a blocking
// connect interrupted by a signal (the Go runtime preempts with SIGURG)
// fails with EINTR while the handshake goes on in the kernel. Non-blocking
// connect, poll, then SO_ERROR has no such window.
func connect(fd int, server netip.AddrPort, timeout time.Duration) error {
	if err := unix.SetNonblock(fd, true); err != nil {
		return errors.New("nonblock " + errName(err))
	}
	sa := &unix.SockaddrInet4{Addr: server.Addr().As4(), Port: int(server.Port())}
	err := unix.Connect(fd, sa)
	if err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
		return errors.New("connect " + errName(err))
	}
	deadline := time.Now().Add(timeout)
	for err != nil {
		left := time.Until(deadline)
		if left <= 0 {
			return errors.New("connect timeout")
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, perr := unix.Poll(pfd, int(left/time.Millisecond)+1)
		if perr == unix.EINTR || n == 0 {
			continue
		}
		if perr != nil {
			return errors.New("poll " + errName(perr))
		}
		soerr, gerr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if gerr != nil {
			return errors.New("connect " + errName(gerr))
		}
		if soerr != 0 {
			return errors.New("connect " + errName(unix.Errno(soerr)))
		}
		err = nil
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		return errors.New("block " + errName(err))
	}
	return nil
}

// errName is a short, stable name for an errno, for refusal counts.
func errName(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	return err.Error()
}
