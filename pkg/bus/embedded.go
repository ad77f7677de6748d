package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startEmbedded starts nats-server with JetStream in this process and sets
// b.srv, b.clientURL and b.tmpDir. On error nothing is left running.
func (b *Bus) startEmbedded(o Options, wait time.Duration) error {
	listen := o.Listen
	if listen == "" {
		listen = DefaultListen
	}
	sopts := &server.Options{
		ServerName: o.NodeID,
		JetStream:  true,
		// The node handles signals; nats-server must not install its own.
		NoSigs: true,
		// Logging goes through SetLoggerV2 below, not nats-server's files.
		NoLog: true,
	}
	if listen == ListenNone {
		sopts.DontListen = true
	} else {
		host, port, err := splitListen(listen)
		if err != nil {
			return err
		}
		sopts.Host, sopts.Port = host, port
		if err := checkListen(host, port); err != nil {
			return err
		}
	}

	sopts.StoreDir = o.DataDir
	if sopts.StoreDir == "" {
		dir, err := os.MkdirTemp("", "roomcast-nats-")
		if err != nil {
			return fmt.Errorf("bus: temporary NATS store: %w", err)
		}
		b.tmpDir, sopts.StoreDir = dir, dir
	}

	srv, err := server.NewServer(sopts)
	if err != nil {
		_ = b.removeTemp()
		return fmt.Errorf("bus: embedded NATS: %w", err)
	}
	nl := &natsLogger{log: b.log.With("component", "nats-server")}
	srv.SetLoggerV2(nl, false, false, false)
	// Start returns once JetStream is up and the listener is open, or
	// after a fatal error, which nats-server only logs: nl keeps it.
	srv.Start()
	if msg := nl.fatalMessage(); msg != "" {
		srv.Shutdown()
		srv.WaitForShutdown()
		_ = b.removeTemp()
		if !sopts.DontListen && srv.Addr() == nil {
			return inUseOr(sopts.Host, sopts.Port, fmt.Errorf("bus: embedded NATS cannot listen on %s: %s", listen, msg))
		}
		return fmt.Errorf("bus: embedded NATS failed to start: %s", msg)
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		srv.WaitForShutdown()
		_ = b.removeTemp()
		return fmt.Errorf("bus: embedded NATS not ready after %s (store %s)", wait.Round(time.Millisecond), sopts.StoreDir)
	}
	b.srv = srv
	if addr, ok := srv.Addr().(*net.TCPAddr); ok {
		b.clientURL = "nats://" + net.JoinHostPort(dialHost(sopts.Host), strconv.Itoa(addr.Port))
	}
	return nil
}

// stopEmbedded shuts the embedded server down, if any, and removes its
// temporary store.
func (b *Bus) stopEmbedded() error {
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	return b.removeTemp()
}

// splitListen parses --nats-listen. Port 0 becomes nats-server's "random
// port" (-1): its own 0 means the default port 4222.
func splitListen(listen string) (string, int, error) {
	host, ps, err := net.SplitHostPort(listen)
	if err == nil {
		var port int
		port, err = strconv.Atoi(ps)
		if err == nil && port >= 0 && port <= 65535 {
			if port == 0 {
				port = -1
			}
			return host, port, nil
		}
	}
	return "", 0, fmt.Errorf("bus: NATS listen address %q is invalid: use host:port (port 0 picks a free one) or %q for in-process only", listen, ListenNone)
}

// checkListen binds host:port once to turn a busy port into a clear error
// before nats-server, which would only log it, tries the same.
func checkListen(host string, port int) error {
	if port < 0 {
		return nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return inUseOr(host, port, fmt.Errorf("bus: embedded NATS cannot listen on %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err))
	}
	return l.Close()
}

// inUseOr returns the "address in use" error that tells people what to do
// if host:port is taken, else other.
func inUseOr(host string, port int, other error) error {
	if port < 0 {
		return other
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err == nil {
		l.Close()
		return other
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return other
	}
	join := net.JoinHostPort(dialHost(host), strconv.Itoa(port))
	return fmt.Errorf("bus: embedded NATS cannot listen on %s: %w — another NATS or roomcast node runs there; "+
		"pass --nats nats://%s to join it, or --nats-listen 127.0.0.1:0 (any free port) or --nats-listen %s (in-process only)",
		addr, syscall.EADDRINUSE, join, ListenNone)
}

// dialHost turns a listen host into one a client can dial.
func dialHost(host string) string {
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return host
}

// natsLogger routes nats-server's log lines to slog. nats-server notices
// (startup banners, "listening on") are debug: the node logs its own
// summary at info. Traces are dropped. A fatal line is kept so startEmbedded
// can return it, since nats-server's Start cannot.
type natsLogger struct {
	log   *slog.Logger
	mu    sync.Mutex
	fatal string
}

func (l *natsLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if l.log.Enabled(ctx, level) {
		l.log.Log(ctx, level, fmt.Sprintf(format, v...))
	}
}

func (l *natsLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l *natsLogger) Tracef(string, ...any)           {}

func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.fatal == "" {
		l.fatal = msg
	}
	l.mu.Unlock()
	l.log.Error(msg)
}

func (l *natsLogger) fatalMessage() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}
