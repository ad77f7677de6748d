// Package bustest starts real NATS servers for tests: embedded nats-server
// with JetStream on a random loopback port, its store in t.TempDir, stopped
// by t.Cleanup. Tests talk to a real server, never to a fake.
package bustest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// RunServer starts a quiet NATS server with JetStream and returns it.
func RunServer(t testing.TB) *server.Server {
	t.Helper()
	return RunServerWith(t, &server.Options{})
}

// RunServerWith starts a server from opts, filling in a random loopback
// port, JetStream in t.TempDir and no logging where opts leaves them zero.
func RunServerWith(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	o := *opts
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = -1
	}
	o.JetStream = true
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	o.NoLog, o.NoSigs = true, true
	s, err := server.NewServer(&o)
	if err != nil {
		t.Fatalf("bustest: new server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("bustest: server not ready within 10s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a client connection to s, closed by t.Cleanup.
func Connect(t testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("bustest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Eventually polls cond every 10ms until it is true or d passes; it never
// sleeps a fixed time, so fast machines finish fast.
func Eventually(t testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
