package loop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/metrics"
)

// ErrClosed is returned by Serve after Shutdown.
var ErrClosed = errors.New("loop: closed")

// Handler receives one connection's life. Calls for one connection are never
// concurrent. data in OnMessage is valid only during the call. OnClose is
// called exactly once, when the close starts (either side) or the socket
// ends; after it, Send returns ErrClosing.
type Handler interface {
	OnOpen(c *Conn)
	OnMessage(c *Conn, op frame.Opcode, data []byte)
	OnClose(c *Conn, code uint16)
}

// Options configure a Loop. Zero values take the defaults in brackets.
type Options struct {
	// IsUpgradePath reports whether a GET to path is a WebSocket route;
	// other requests go to HTTP. Required.
	IsUpgradePath func(path string) bool
	// Upgrade decides an upgrade after the headers are read and before the
	// 101 is written: a Handler, or a Rejection sent as JSON. Required.
	Upgrade func(r *Request) (Handler, *Rejection)
	// HTTP serves every request that is not an upgrade. [404s]
	HTTP http.Handler

	// MaxMessage bounds a reassembled message; over it the connection is
	// closed with 1009. [64 KiB]
	MaxMessage int
	// MaxQueueBytes bounds a connection's unwritten bytes; a Send past it
	// closes the connection with 4009. [1 MiB: about 8,000 128-byte events,
	// seconds of a busy room, yet 15,000 full queues stay under 16 GiB]
	MaxQueueBytes int
	// PingInterval is how often the server pings; a connection silent for
	// two intervals is closed. [25s: under the 30–60s idle cut of common
	// proxies and load balancers]
	PingInterval time.Duration
	// HandshakeTimeout bounds the HTTP upgrade (slowloris). [10s]
	HandshakeTimeout time.Duration
	// CloseTimeout is how long a close waits for the peer's close frame. [2s]
	CloseTimeout time.Duration
	// Compression enables permessage-deflate when the client offers it.
	Compression bool
	// CompressionMinSize: smaller payloads go uncompressed even on
	// compressed connections. [frame.DefaultMinCompressSize, 256 B: below
	// it deflate saves a few bytes for the CPU it costs; negative: all]
	CompressionMinSize int
	// TLS, when set, serves https:// and wss:// on the listener. TLS
	// connections run on a reader and a writer goroutine each (stream.go).
	TLS *tls.Config
	// Workers caps the worker goroutines. [64 × GOMAXPROCS: handlers may
	// block briefly on NATS requests, so more workers than cores]
	Workers int
	// ReadBuffer is each worker's read buffer. [32 KiB]
	ReadBuffer int

	Logger  *slog.Logger
	Metrics *metrics.Metrics
}

func (o *Options) setDefaults() {
	if o.MaxMessage <= 0 {
		o.MaxMessage = 64 << 10
	}
	if o.MaxQueueBytes <= 0 {
		o.MaxQueueBytes = 1 << 20
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 25 * time.Second
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 2 * time.Second
	}
	if o.CompressionMinSize == 0 {
		o.CompressionMinSize = frame.DefaultMinCompressSize
	}
	if o.Workers <= 0 {
		o.Workers = 64 * runtime.GOMAXPROCS(0)
	}
	if o.ReadBuffer <= 0 {
		o.ReadBuffer = 32 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New(nil)
	}
	if o.HTTP == nil {
		o.HTTP = http.NotFoundHandler()
	}
}

// Loop is the connection layer of one node.
type Loop struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics.Metrics
	poller  *poller
	pool    *pool
	conns   table
	streams streams
	httpLn  *chanListener
	httpSrv *http.Server

	active   atomic.Int64 // connections not yet torn down
	closed   atomic.Bool
	draining atomic.Bool

	mu        sync.Mutex
	listeners []net.Listener
	stop      chan struct{}
	done      sync.WaitGroup
}

// New makes a Loop and starts its poller and sweep; Serve feeds it.
func New(o Options) (*Loop, error) {
	if o.IsUpgradePath == nil || o.Upgrade == nil {
		return nil, errors.New("loop: Options.IsUpgradePath and Options.Upgrade are required")
	}
	o.setDefaults()
	p, err := newPoller()
	if err != nil {
		return nil, err
	}
	l := &Loop{opts: o, log: o.Logger, metrics: o.Metrics, poller: p, stop: make(chan struct{})}
	l.pool = newPool(l, o.Workers, 1<<16, o.ReadBuffer)
	l.httpLn = newChanListener(&net.TCPAddr{})
	l.httpSrv = &http.Server{
		ReadHeaderTimeout: o.HandshakeTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
	l.httpSrv.Handler = l.httpHandler()
	l.httpSrv.ConnContext = withTLSMark
	l.done.Add(3)
	go func() { defer l.done.Done(); p.run(l) }()
	go func() { defer l.done.Done(); _ = l.httpSrv.Serve(l.httpLn) }()
	go func() { defer l.done.Done(); l.sweepLoop() }()
	return l, nil
}

// Conns is the number of open WebSocket connections.
func (l *Loop) Conns() int { return int(l.active.Load()) }

// Draining reports whether Drain has begun.
func (l *Loop) Draining() bool { return l.draining.Load() }

// Drain closes every connection with 1001 (node draining: reconnect
// elsewhere), spread evenly over window so clients do not reconnect all at
// once onto the same nodes, then waits until the sockets are gone or ctx
// ends. New upgrades during a drain are the Upgrade callback's to refuse.
func (l *Loop) Drain(ctx context.Context, window time.Duration) error {
	l.draining.Store(true)
	var all []*Conn
	l.eachConn(func(c *Conn) { all = append(all, c) })
	// Close i is due at start + i·window/n, measured from the start, so
	// timer overshoot never accumulates: a late close catches up at once.
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for i, c := range all {
		if len(all) > 1 {
			due := start.Add(window * time.Duration(i) / time.Duration(len(all)))
			if wait := time.Until(due); wait > 0 {
				t.Reset(wait)
				select {
				case <-t.C:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		c.Close(frame.CloseGoingAway, "node draining: reconnect")
	}
	for l.active.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("loop: drain: %d connections left: %w", l.active.Load(), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// Shutdown stops accepting, tears down every connection without a close
// handshake (call Drain first for a graceful exit) and stops the goroutines.
func (l *Loop) Shutdown(ctx context.Context) error {
	if l.closed.Swap(true) {
		return nil
	}
	l.mu.Lock()
	for _, ln := range l.listeners {
		ln.Close()
	}
	l.mu.Unlock()
	_ = l.httpSrv.Shutdown(ctx)
	l.httpLn.Close()
	l.eachConn(func(c *Conn) { c.requestTeardown() })
	for l.active.Load() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	close(l.stop)
	l.poller.wake()
	l.done.Wait()
	l.pool.stop()
	l.poller.close()
	return ctx.Err()
}

// eachConn visits every connection, epoll and stream.
func (l *Loop) eachConn(fn func(*Conn)) {
	l.conns.each(fn)
	l.streams.each(fn)
}
