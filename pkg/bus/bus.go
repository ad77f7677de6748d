package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/pkg/metrics"
)

const (
	// DefaultListen is where the embedded NATS accepts local services when
	// Options.Listen is empty: loopback only, the standard NATS port, so that
	// `nats pub` and `roomcast-mint` work against a laptop node unchanged.
	DefaultListen = "127.0.0.1:4222"
	// ListenNone as Options.Listen keeps the embedded NATS in-process only.
	ListenNone = "none"
	// KeysBucket is the JetStream KV bucket of one-time keys (DESIGN.md
	// "Keys"); Ready checks it, package keys creates it.
	KeysBucket = "rc-keys"
)

// Reconnect policy for external NATS. A node retries for ever: NATS being
// down is an outage to ride out, not a reason to exit. Each round over the
// server list waits reconnectWait plus a random jitter in [0, reconnectJitter),
// so a fleet of N nodes spreads its reconnects over ~0.5 s instead of
// hammering a restarted server in the same millisecond.
const (
	reconnectWait      = 500 * time.Millisecond
	reconnectJitter    = 500 * time.Millisecond
	reconnectJitterTLS = time.Second
	// A silent network loss (no FIN/RST) is noticed after at most
	// pingInterval × (maxPingsOut+1) = 20 s instead of nats.go's 4 min.
	pingInterval = 5 * time.Second
	maxPingsOut  = 3
	// drainTimeout bounds Close: subscriptions get this long to finish
	// handling what they already received.
	drainTimeout = 5 * time.Second
	// startTimeout bounds how long the embedded server may take to start
	// when ctx has no deadline (JetStream recovers its store from DataDir
	// during this time).
	startTimeout = 30 * time.Second
	// readyTimeout bounds Ready when the caller's context has no deadline.
	readyTimeout = 2 * time.Second
)

// Options configure Connect. The zero value starts an embedded NATS with
// JetStream listening on DefaultListen, its store in a temporary directory.
type Options struct {
	// URLs is a comma-separated list of NATS server URLs (--nats). Empty
	// starts an embedded nats-server in this process instead.
	URLs string
	// Name is the client connection name NATS monitoring shows; empty means
	// "roomcast".
	Name string
	// NodeID names the embedded server (its ServerName); empty lets
	// nats-server pick its random id. Unused with external NATS.
	NodeID string
	// Listen is where the embedded server accepts other clients
	// (--nats-listen): host:port, port 0 for a random one, ListenNone for
	// in-process only. Empty means DefaultListen. Unused with external NATS.
	Listen string
	// DataDir holds the embedded JetStream store (--data-dir). Empty means a
	// fresh temporary directory, removed by Close: keys then do not survive
	// a restart, which is what a laptop run wants.
	DataDir string
	// KeysBucket is the KV bucket Ready checks; empty means KeysBucket.
	KeysBucket string
	// Logger receives connection changes at info/warn and the embedded
	// server's own messages at debug/warn/error; nil discards them.
	Logger *slog.Logger
	// Metrics, if not nil, has NATSConnected set on every connection change.
	Metrics *metrics.Metrics
	// NATSOptions are applied after roomcast's own client options: the seam
	// for credentials (nats.UserCredentials, nats.Token), TLS (nats.Secure,
	// nats.RootCAs) and anything else a deployment needs. Options that set
	// the connection handlers replace the ones that log and keep metrics.
	NATSOptions []nats.Option
}

// Bus is a NATS connection, plus the embedded server behind it if any. NC and
// JS are safe for concurrent use; Close ends both.
type Bus struct {
	// NC is the core NATS connection. Do not Close it directly; use Bus.Close.
	NC *nats.Conn
	// JS is the JetStream API on NC.
	JS jetstream.JetStream

	log     *slog.Logger
	metrics *metrics.Metrics
	bucket  string

	srv       *server.Server // nil with external NATS
	clientURL string         // where srv listens, "" if it does not
	tmpDir    string         // removed by Close; "" if DataDir was given

	closed    chan struct{} // closed by the nats.go closed handler
	closeOnce sync.Once
	closeErr  error

	handlers atomic.Pointer[Handlers] // nil until SetHandlers
}

// Handlers are the owner's reactions to connection events, on top of the
// logs and metrics the Bus keeps itself. They run on nats.go's callback
// goroutine, one at a time, so they must return quickly. A nil field is
// skipped. NATSOptions that replace nats.go's handlers turn these off too.
type Handlers struct {
	// Reconnected runs when the connection is back after an outage: the
	// subscriptions are active again, but whatever was published to them
	// meanwhile never reached this process.
	Reconnected func()
	// SlowConsumer runs when nats.go dropped messages for sub because its
	// consumer fell behind (a full channel or pending limit): once when
	// the drops start, again only after sub received a message in between.
	SlowConsumer func(sub *nats.Subscription)
}

// SetHandlers replaces the Handlers; safe to call at any time, such as once
// the parts that react are built (the Bus comes first).
func (b *Bus) SetHandlers(h Handlers) { b.handlers.Store(&h) }

// Connect connects to the NATS of o.URLs, or starts an embedded server when
// o.URLs is empty and connects to it in-process.
//
// With external NATS, Connect does not wait for the servers to be up: it
// returns a Bus that keeps retrying in the background (Up reports false
// meanwhile), so a node can start before its NATS. Bad options are errors.
// With embedded NATS, a failure to start (such as a busy Listen port) is an
// error that says what to do; ctx's deadline, if any, bounds the start
// (else 30 s: JetStream may have a large store to recover).
func Connect(ctx context.Context, o Options) (*Bus, error) {
	b := &Bus{
		log:     o.Logger,
		metrics: o.Metrics,
		bucket:  o.KeysBucket,
		closed:  make(chan struct{}),
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.bucket == "" {
		b.bucket = KeysBucket
	}
	name := o.Name
	if name == "" {
		name = "roomcast"
	}
	nopts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectJitter(reconnectJitter, reconnectJitterTLS),
		nats.RetryOnFailedConnect(true),
		// No reconnect buffer: while disconnected, Publish fails at once
		// with nats.ErrReconnectBufExceeded instead of holding up to 8 MiB
		// that would reach rooms late (or never, if the node dies first).
		// Callers check Up or that error and answer `unavailable`.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.DrainTimeout(drainTimeout),
		nats.ConnectHandler(b.onConnect),
		nats.DisconnectErrHandler(b.onDisconnect),
		nats.ReconnectHandler(b.onReconnect),
		nats.ReconnectErrHandler(b.onReconnectErr),
		nats.ClosedHandler(b.onClosed),
		nats.ErrorHandler(b.onAsyncError),
	}

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bus: connect: %w", err)
	}
	if o.URLs == "" {
		wait := startTimeout
		if dl, ok := ctx.Deadline(); ok {
			wait = time.Until(dl)
		}
		if err := b.startEmbedded(o, wait); err != nil {
			return nil, err
		}
		// The node itself always talks to its embedded server in-process:
		// no loopback TCP, and it works with ListenNone.
		nopts = append(nopts, nats.InProcessServer(b.srv))
		b.log.Info("embedded NATS started", "listen", b.listenLog(), "store", b.storeDir())
	} else {
		nopts = append(nopts, o.NATSOptions...)
		b.log.Info("connecting to NATS", "url", RedactURLs(o.URLs))
	}

	nc, err := nats.Connect(o.URLs, nopts...)
	if err != nil {
		b.stopEmbedded()
		return nil, fmt.Errorf("bus: connect to NATS at %s: %w", RedactURLs(o.URLs), err)
	}
	b.NC = nc
	if nc.IsConnected() {
		b.setConnected(true)
	} else {
		b.log.Warn("NATS not reachable yet; retrying in the background", "url", RedactURLs(o.URLs))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		b.stopEmbedded()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	b.JS = js
	return b, nil
}

// Embedded reports whether the NATS server runs inside this process.
func (b *Bus) Embedded() bool { return b.srv != nil }

// ClientURL is where other processes reach the embedded server, such as
// nats://127.0.0.1:4222; "" with external NATS or Listen = ListenNone.
func (b *Bus) ClientURL() string { return b.clientURL }

// Up reports whether the connection is established right now. While it is
// false, publishes fail (there is no reconnect buffer): refuse client
// actions with `unavailable`.
func (b *Bus) Up() bool { return b.NC.Status() == nats.CONNECTED }

// Ready returns nil if NATS is connected and the keys bucket answers: what
// /readyz needs. It costs one JetStream stream-info request. Without a
// deadline in ctx it gives up after 2 s.
func (b *Bus) Ready(ctx context.Context) error {
	if st := b.NC.Status(); st != nats.CONNECTED {
		return fmt.Errorf("bus: NATS is %s", strings.ToLower(st.String()))
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	if _, err := b.JS.KeyValue(ctx, b.bucket); err != nil {
		return fmt.Errorf("bus: key bucket %s: %w", b.bucket, err)
	}
	return nil
}

// Close drains the connection (subscriptions finish what they hold, for at
// most 5 s), then shuts the embedded server down and removes its temporary
// store. It is safe to call more than once; later calls return the first
// result.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		if !b.NC.IsClosed() {
			if err := b.NC.Drain(); err != nil {
				// Not connected: nothing to drain.
				b.NC.Close()
			}
			select {
			case <-b.closed:
			case <-time.After(drainTimeout + time.Second):
				b.NC.Close()
			}
		}
		b.closeErr = b.stopEmbedded()
	})
	return b.closeErr
}

func (b *Bus) setConnected(up bool) {
	if b.metrics == nil {
		return
	}
	if up {
		b.metrics.NATSConnected.Set(1)
	} else {
		b.metrics.NATSConnected.Set(0)
	}
}

func (b *Bus) onConnect(nc *nats.Conn) {
	b.setConnected(true)
	if b.srv != nil {
		b.log.Debug("NATS connected in-process")
		return
	}
	b.log.Info("NATS connected", "url", nc.ConnectedUrlRedacted(), "server", nc.ConnectedServerName())
}

func (b *Bus) onDisconnect(nc *nats.Conn, err error) {
	b.setConnected(false)
	if nc.IsClosed() {
		return // onClosed follows; not an outage
	}
	b.log.Warn("NATS disconnected; reconnecting", "err", err)
}

func (b *Bus) onReconnect(nc *nats.Conn) {
	b.setConnected(true)
	b.log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted(), "server", nc.ConnectedServerName())
	if h := b.handlers.Load(); h != nil && h.Reconnected != nil {
		h.Reconnected()
	}
}

// onReconnectErr sees every failed attempt (one per 0.5–1 s while NATS is
// down): debug only, the outage itself was logged at warn.
func (b *Bus) onReconnectErr(_ *nats.Conn, err error) {
	b.log.Debug("NATS reconnect attempt failed", "err", err)
}

func (b *Bus) onClosed(*nats.Conn) {
	b.setConnected(false)
	b.log.Debug("NATS connection closed")
	close(b.closed)
}

// onAsyncError reports what nats.go cannot return to a caller, chiefly a
// subscription that fell behind and lost messages (slow consumer).
func (b *Bus) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if sub != nil {
		b.log.Warn("NATS subscription error", "subject", sub.Subject, "err", err)
		if h := b.handlers.Load(); h != nil && h.SlowConsumer != nil && errors.Is(err, nats.ErrSlowConsumer) {
			h.SlowConsumer(sub)
		}
		return
	}
	b.log.Warn("NATS error", "err", err)
}

// RedactURLs returns a comma-separated NATS URL list with any user, password
// or token removed, fit for logs and error messages.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		if err != nil || u.Host == "" {
			// Unparsable or scheme-less ("host:4222"): keep what follows
			// the last '@', which drops any credentials.
			if at := strings.LastIndexByte(p, '@'); at >= 0 {
				p = p[at+1:]
			}
			parts[i] = p
			continue
		}
		u.User = nil
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

func (b *Bus) storeDir() string {
	if b.srv == nil {
		return ""
	}
	return b.srv.StoreDir()
}

func (b *Bus) listenLog() string {
	if b.clientURL == "" {
		return ListenNone
	}
	return b.clientURL
}

// removeTemp removes the temporary store directory, if Connect made one.
func (b *Bus) removeTemp() error {
	if b.tmpDir == "" {
		return nil
	}
	dir := b.tmpDir
	b.tmpDir = ""
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("bus: remove temporary NATS store: %w", err)
	}
	return nil
}
