// Command echoserver is a WebSocket echo server built from roomcast's own
// connection layer (pkg/loop, pkg/frame): the same epoll loop, frame parser,
// UTF-8 checks, write queue and compression as roomcast-node; only the
// handler differs. It is the target for external conformance suites such as
// Autobahn|Testsuite, so it special-cases nothing: every path upgrades, and
// every text or binary message comes back as it came.
//
//	go run ./e2e/echoserver -listen 127.0.0.1:9001
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/loop"
)

type echo struct{}

func (echo) OnOpen(*loop.Conn) {}

// OnMessage copies data: it points into the worker's read buffer, and the
// frame outlives this call in the write queue.
func (echo) OnMessage(c *loop.Conn, op frame.Opcode, data []byte) {
	_ = c.Send(frame.NewPrepared(op, data))
}

func (echo) OnClose(*loop.Conn, uint16) {}

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "address to listen on")
	maxMessage := flag.Int("max-message", 64<<20, "largest message in bytes (conformance suites send 16 MiB)")
	compression := flag.Bool("compression", true, "permessage-deflate when offered")
	verbose := flag.Bool("v", false, "debug logs")
	flag.Parse()

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	l, err := loop.New(loop.Options{
		IsUpgradePath: func(string) bool { return true },
		Upgrade:       func(*loop.Request) (loop.Handler, *loop.Rejection) { return echo{}, nil },
		MaxMessage:    *maxMessage,
		// An echo of a 16 MiB message must fit in the queue.
		MaxQueueBytes: 2**maxMessage + 1<<20,
		Compression:   *compression,
		Logger:        log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "echoserver:", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echoserver:", err)
		os.Exit(1)
	}
	log.Info("listening", "addr", ln.Addr().String())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() { _ = l.Serve(ln) }()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.Shutdown(sctx)
}
