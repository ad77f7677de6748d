// Command roomcast-node runs one roomcast edge node. See README.md for a
// tour and the configuration reference; DESIGN.md for the contract.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/roomcast/roomcast/pkg/node"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "roomcast-node:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string, stderr io.Writer) error {
	c := newConfig()
	if err := c.load(args, getenv, stderr); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", c.logLevel)
	}
	ho := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(stderr, ho)
	if !c.logJSON {
		h = slog.NewTextHandler(stderr, ho)
	}
	c.opts.Logger = slog.New(h)

	n, err := node.New(c.opts)
	if err != nil {
		return err
	}
	// SIGTERM and SIGINT start the drain; a second signal exits at once.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-ctx.Done()
		stop()
		again := make(chan os.Signal, 1)
		signal.Notify(again, syscall.SIGTERM, syscall.SIGINT)
		<-again
		fmt.Fprintln(stderr, "roomcast-node: second signal, exiting without drain")
		os.Exit(1)
	}()
	return n.Run(ctx)
}
