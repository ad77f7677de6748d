package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Options configure Dial. The zero value (or nil) is usable.
type Options struct {
	// Header is sent with the upgrade request: Origin, Cookie, and so on.
	Header http.Header
	// TLS configures wss:// connections; nil means the system defaults.
	TLS *tls.Config
	// Compression offers permessage-deflate. The node may decline; then
	// messages flow uncompressed.
	Compression bool
	// Logger receives the client's own diagnostics (dropped events,
	// unparsable messages). Nil discards them.
	Logger *slog.Logger

	// OnEvent, if set, is called on the reader goroutine for every Event,
	// in order. It must return quickly and must not call methods that wait
	// for the node (Join, Publish, Close, ...): their answers are read by
	// the very goroutine it is blocking. When OnEvent is set, Events
	// returns nil.
	OnEvent func(Event)
	// EventBuffer is the capacity of the Events channel; zero means 1024.
	EventBuffer int
	// BlockOnFullEvents makes the reader wait when the Events channel is
	// full instead of dropping the event. Nothing is lost, but answers to
	// Join, Publish etc. wait too, and a node whose outgoing queue fills
	// behind us closes the connection with 4009 (slow consumer). Leave it
	// off unless a test must count every message. Close stops the wait
	// (pending events are then dropped).
	BlockOnFullEvents bool

	// HandshakeTimeout bounds the TCP dial, the upgrade and the wait for
	// welcome when the context has no earlier deadline; zero means 10s.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds each frame write; zero means 10s.
	WriteTimeout time.Duration
	// MaxMessageSize is the largest message (after reassembly and
	// decompression) accepted from the node; zero means 16 MiB. A batch of
	// several messages in one frame counts as one message.
	MaxMessageSize int
	// NoKeepalive stops the client from pinging a node it has sent
	// nothing to for a ping interval. Only tests of the node's idle timeout
	// want that.
	NoKeepalive bool
	// NetDial, if set, opens the TCP (or other) connection instead of
	// net.Dialer: for proxies, custom resolvers, or tests that cut the
	// socket.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

const (
	defaultHandshakeTimeout = 10 * time.Second
	defaultWriteTimeout     = 10 * time.Second
	defaultMaxMessage       = 16 << 20
	defaultEventBuffer      = 1024
	// closeWait is how long Close waits for the node to answer the close
	// frame before it drops the socket.
	closeWait = 3 * time.Second
	// maxErrorBody bounds what a HandshakeError keeps of a refusal.
	maxErrorBody = 64 << 10
)

// Client is one WebSocket connection to a roomcast node. See the package
// documentation for its concurrency rules.
type Client struct {
	conn         net.Conn
	br           *bufio.Reader
	log          *slog.Logger
	onEvent      func(Event)
	events       chan Event
	blockEvents  bool
	maxMsg       int
	writeTimeout time.Duration
	keepalive    bool
	inflater     *inflater // nil unless permessage-deflate was accepted

	nextID    atomic.Uint64
	dropped   atomic.Uint64
	lastWrite atomic.Int64 // unix ns of the last successful frame write

	// wmu serialises frame writes; the fields below it are its.
	wmu      sync.Mutex
	bw       *bufio.Writer
	wbuf     []byte    // masked copy of the frame being written
	deflater *deflater // nil unless compression was negotiated for writes
	wclosed  bool      // a close frame was sent or a write failed

	welcomed chan struct{} // closed when the welcome arrived
	closing  chan struct{} // closed when Close starts: stops blocked emits
	done     chan struct{} // closed when the reader has finished
	welcome  Welcome       // written once by the reader before welcomed

	// mu guards the fields below.
	mu       sync.Mutex
	calls    map[uint64]*call
	lists    map[string][]*call  // calls waiting for a session:list, FIFO per room
	pings    []*call             // pings waiting for a pong, FIFO
	closeErr *CloseError         // why the connection ended, once known
	pos      map[string]Position // history position per room (history.go)
	finished bool
	kaTimer  *time.Timer

	closeOnce sync.Once
}

// Dial connects to a node and returns once its welcome has arrived. url is
// ws(s)://host/_/connect/<key>, ws(s)://host/_/connect?key=<key> or a
// continuous route such as ws://host/chat. A refused upgrade returns
// *HandshakeError; a connection the node closes before welcoming it returns
// *CloseError (e.g. 4001 for a bad key, if the node checks it that late).
func Dial(ctx context.Context, url string, o *Options) (*Client, error) {
	if o == nil {
		o = &Options{}
	}
	hsTimeout := orDefault(o.HandshakeTimeout, defaultHandshakeTimeout)
	var herr *HandshakeError
	d := ws.Dialer{
		Timeout:   hsTimeout,
		TLSConfig: o.TLS,
		OnStatusError: func(status int, _ []byte, resp io.Reader) {
			herr = readRefusal(status, resp)
		},
		NetDial: o.NetDial,
	}
	if len(o.Header) > 0 {
		d.Header = ws.HandshakeHeaderHTTP(o.Header)
	}
	if o.Compression {
		d.Extensions = deflateOffers
	}
	conn, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		if herr != nil {
			return nil, herr
		}
		return nil, fmt.Errorf("client: dial %s: %w", RedactURL(url), err)
	}
	if br == nil {
		br = bufio.NewReaderSize(conn, 4096)
	}
	c := &Client{
		conn:         conn,
		br:           br,
		bw:           bufio.NewWriterSize(conn, 4096),
		log:          o.Logger,
		onEvent:      o.OnEvent,
		blockEvents:  o.BlockOnFullEvents,
		maxMsg:       orDefault(o.MaxMessageSize, defaultMaxMessage),
		writeTimeout: orDefault(o.WriteTimeout, defaultWriteTimeout),
		keepalive:    !o.NoKeepalive,
		welcomed:     make(chan struct{}),
		closing:      make(chan struct{}),
		done:         make(chan struct{}),
		calls:        make(map[uint64]*call),
		pos:          make(map[string]Position),
		lists:        make(map[string][]*call),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.onEvent == nil {
		c.events = make(chan Event, orDefault(o.EventBuffer, defaultEventBuffer))
	}
	if p, ok, err := negotiated(hs); err != nil {
		_ = conn.Close()
		return nil, err
	} else if ok {
		c.inflater = newInflater(!p.ServerNoContextTakeover)
		// Our flate writer always uses a 32 KiB window; if the node asked
		// for a smaller one we send uncompressed, which RFC 7692 allows.
		if !p.ClientMaxWindowBits.Defined() || p.ClientMaxWindowBits == 1 || p.ClientMaxWindowBits == 15 {
			c.deflater = newDeflater()
		}
	}
	go c.readLoop()

	wctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, hsTimeout)
		defer cancel()
	}
	select {
	case <-c.welcomed:
		c.startKeepalive()
		return c, nil
	case <-c.done:
		return nil, c.Err()
	case <-wctx.Done():
		_ = c.conn.Close()
		<-c.done
		return nil, fmt.Errorf("client: waiting for welcome from %s: %w", RedactURL(url), wctx.Err())
	}
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// readRefusal parses a non-101 upgrade response. It reads at most
// maxErrorBody bytes; a body without length ends at the handshake deadline.
func readRefusal(status int, resp io.Reader) *HandshakeError {
	herr := &HandshakeError{Status: status}
	r, err := http.ReadResponse(bufio.NewReader(resp), nil)
	if err != nil {
		return herr
	}
	defer r.Body.Close()
	herr.Header = r.Header
	herr.Body, _ = io.ReadAll(io.LimitReader(r.Body, maxErrorBody))
	return herr
}

// RedactURL hides a connection key in url so it can be logged: keys are
// one-time secrets (DESIGN.md: never log keys).
func RedactURL(url string) string {
	if i := strings.Index(url, "/_/connect/"); i >= 0 {
		url = url[:i+len("/_/connect/")] + "REDACTED"
	}
	if i := strings.Index(url, "key="); i >= 0 {
		end := strings.IndexByte(url[i:], '&')
		rest := ""
		if end >= 0 {
			rest = url[i+end:]
		}
		url = url[:i+len("key=")] + "REDACTED" + rest
	}
	return url
}

// Welcome returns the node's welcome: session id, node, user, meta, rooms.
func (c *Client) Welcome() Welcome { return c.welcome }

// Events returns the channel events arrive on, in order, or nil when
// Options.OnEvent is set. The channel is closed after the connection ends.
// When it is full, new events are dropped and counted (see Dropped), unless
// Options.BlockOnFullEvents is set.
func (c *Client) Events() <-chan Event { return c.events }

// Compressed reports whether the node accepted permessage-deflate.
func (c *Client) Compressed() bool { return c.inflater != nil }

// Dropped counts events lost because the Events channel was full.
func (c *Client) Dropped() uint64 { return c.dropped.Load() }

// Done is closed when the connection has ended and the reader is gone.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is open, then a *CloseError saying
// why it ended.
func (c *Client) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	return c.closedErr()
}

// CloseCode returns the close code and reason once the connection has
// ended: the node's code when it closed (e.g. 1001 draining, 4009 slow
// consumer), 1000 after a clean Close, 1006 when the socket just died.
// Before that it returns 0, "".
func (c *Client) CloseCode() (code int, reason string) {
	var ce *CloseError
	if errors.As(c.Err(), &ce) {
		return ce.Code, ce.Reason
	}
	return 0, ""
}

func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeErr == nil {
		return &CloseError{Code: CloseAbnormal}
	}
	return c.closeErr
}

// Close runs the closing handshake with code 1000: it sends a close frame,
// waits up to 3s for the node's answer, then drops the socket. It returns
// once the reader is gone; calling it again does nothing.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing)
		c.sendClose(CloseNormal, "")
		t := time.NewTimer(closeWait)
		defer t.Stop()
		select {
		case <-c.done:
		case <-t.C:
		}
		_ = c.conn.Close()
		<-c.done
	})
	return nil
}

// finish runs once on the reader goroutine when the connection ends.
func (c *Client) finish(readErr error) {
	_ = c.conn.Close()
	c.mu.Lock()
	if c.closeErr == nil {
		c.closeErr = &CloseError{Code: CloseAbnormal, Err: readErr}
	}
	ce := c.closeErr
	c.finished = true
	for _, cl := range c.calls {
		c.resolveLocked(cl, ce)
	}
	c.calls, c.lists, c.pings = nil, nil, nil
	if c.kaTimer != nil {
		c.kaTimer.Stop()
	}
	c.mu.Unlock()
	if c.events != nil {
		close(c.events)
	}
	close(c.done)
}

// dispatch handles one frame's payload: one or more JSON messages
// separated by "\n" (the node batches).
func (c *Client) dispatch(payload []byte) {
	for len(payload) > 0 {
		line := payload
		if i := bytes.IndexByte(payload, '\n'); i >= 0 {
			line, payload = payload[:i], payload[i+1:]
		} else {
			payload = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var m inMsg
		if err := json.Unmarshal(line, &m); err != nil {
			c.log.Warn("roomcast client: unparsable message from node", "err", err, "len", len(line))
			continue
		}
		c.handle(&m, bytes.Clone(line))
	}
}

func (c *Client) handle(m *inMsg, raw []byte) {
	switch m.Type {
	case TypeWelcome:
		select {
		case <-c.welcomed:
			c.log.Warn("roomcast client: second welcome ignored")
		default:
			c.welcome = m.welcome(raw)
			close(c.welcomed)
		}
		return
	case TypeAck:
		c.answer(m.ID, func(cl *call) bool {
			cl.acked = true
			c.joinAckedLocked(cl, m)
			return !cl.wantList || cl.listed
		})
		return
	case TypeHistory:
		c.answer(m.ID, func(cl *call) bool {
			cl.page = m.page(raw)
			return true
		})
		return
	case TypeReply:
		c.answer(m.ID, func(cl *call) bool {
			cl.data = m.Data
			return true
		})
		return
	case TypePong:
		c.pong(m.ID)
		return
	case TypeError:
		e := &Error{Code: m.Code, Message: m.Message}
		if m.ID != 0 && c.fail(m.ID, e) {
			return
		}
	case TypeSessionList:
		c.list(m)
	}
	c.emit(m.event(raw))
}

func (c *Client) emit(ev Event) {
	if ev.Type == TypeEvent && ev.Seq > 0 && ev.Room != "" {
		c.mu.Lock()
		c.pos[ev.Room] = Position{Seq: ev.Seq, Epoch: ev.Epoch}
		c.mu.Unlock()
	}
	if c.onEvent != nil {
		c.onEvent(ev)
		return
	}
	if c.blockEvents {
		select {
		case c.events <- ev:
		case <-c.closing:
			c.dropped.Add(1)
		}
		return
	}
	select {
	case c.events <- ev:
	default:
		if c.dropped.Add(1) == 1 {
			c.log.Warn("roomcast client: events channel full, dropping events", "buffer", cap(c.events))
		}
	}
}

// startKeepalive pings a node we have not written to for a ping interval,
// so that a listening-only client is not cut as idle. A control-frame ping
// costs the node no JSON parsing.
func (c *Client) startKeepalive() {
	every := c.welcome.PingInterval
	if !c.keepalive || every <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return
	}
	c.kaTimer = time.AfterFunc(every, func() {
		if time.Since(time.Unix(0, c.lastWrite.Load())) >= every/2 {
			_ = c.writeFrame(context.Background(), ws.OpPing, nil)
		}
		c.mu.Lock()
		if !c.finished {
			c.kaTimer.Reset(every)
		}
		c.mu.Unlock()
	})
}
