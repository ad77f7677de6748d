// Command natsserver runs a standalone NATS server with JetStream for the
// bench harness (the cluster scenario and the side-by-side runs share one),
// built from the nats-server module roomcast already depends on, so the bench
// needs no nats-server binary on the machine. It prints "ready <url>" on
// stdout once it accepts clients, and stops on SIGTERM or when stdin closes.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	host := flag.String("host", "127.0.0.1", "listen host")
	port := flag.Int("port", 4222, "listen port (-1: random)")
	store := flag.String("store", "", "JetStream store directory (empty: a temp dir)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("natsserver: ")

	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err == nil && r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
	dir := *store
	if dir == "" {
		d, err := os.MkdirTemp("", "bench-nats-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	s, err := server.NewServer(&server.Options{Host: *host, Port: *port, JetStream: true, StoreDir: dir,
		NoSigs: true, NoLog: true,
		// The bench's subscribers are nodes taking ~1M msg/s bursts:
		// give them the headroom a production server would have.
		MaxPending: 256 << 20})
	if err != nil {
		log.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		log.Fatal("not ready after 10s")
	}
	fmt.Printf("ready %s\n", s.ClientURL())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(eof) }()
	select {
	case <-stop:
	case <-eof:
	}
	s.Shutdown()
	s.WaitForShutdown()
}
