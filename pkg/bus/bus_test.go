package bus

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/metrics"
)

func connect(t *testing.T, o Options) *Bus {
	t.Helper()
	b, err := Connect(context.Background(), o)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func createBucket(t *testing.T, b *Bus) jetstream.KeyValue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := b.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: KeysBucket})
	if err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return kv
}

// roundTrip checks that a message published on one connection reaches a
// subscriber on the other.
func roundTrip(t *testing.T, pub, sub *nats.Conn) {
	t.Helper()
	s, err := sub.SubscribeSync("t.roundtrip")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("t.roundtrip", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	m, err := s.NextMsg(5 * time.Second)
	if err != nil || string(m.Data) != "hi" {
		t.Fatalf("round trip: %v %v", m, err)
	}
}

func TestEmbeddedListening(t *testing.T) {
	m := metrics.New(nil)
	b := connect(t, Options{NodeID: "n1", Listen: "127.0.0.1:0", Metrics: m})
	if !b.Embedded() || !b.Up() {
		t.Fatalf("Embedded=%v Up=%v, want both true", b.Embedded(), b.Up())
	}
	if got := gauge(m.NATSConnected); got != 1 {
		t.Fatalf("NATSConnected = %v, want 1", got)
	}
	u := b.ClientURL()
	if !strings.HasPrefix(u, "nats://127.0.0.1:") || strings.HasSuffix(u, ":0") {
		t.Fatalf("ClientURL = %q, want nats://127.0.0.1:<port>", u)
	}
	if name := b.srv.Name(); name != "n1" {
		t.Fatalf("server name %q, want n1", name)
	}

	// A local service reaches the node's embedded NATS over TCP.
	other, err := nats.Connect(u)
	if err != nil {
		t.Fatalf("external client: %v", err)
	}
	defer other.Close()
	roundTrip(t, other, b.NC)
	roundTrip(t, b.NC, other)

	ctx := context.Background()
	if err := b.Ready(ctx); err == nil || !strings.Contains(err.Error(), KeysBucket) {
		t.Fatalf("Ready before the bucket exists = %v, want an error naming %s", err, KeysBucket)
	}
	createBucket(t, b)
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}

	store := b.srv.StoreDir()
	if _, err := os.Stat(store); err != nil {
		t.Fatalf("store dir: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary store %s still there after Close (stat: %v)", store, err)
	}
	if !b.NC.IsClosed() || b.Up() {
		t.Fatal("connection still open after Close")
	}
	if got := gauge(m.NATSConnected); got != 0 {
		t.Fatalf("NATSConnected after Close = %v, want 0", got)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	bustest.Eventually(t, 5*time.Second, func() bool { return other.IsClosed() || !other.IsConnected() },
		"external client still connected after the embedded server stopped")
}

func TestEmbeddedInProcess(t *testing.T) {
	b := connect(t, Options{Listen: ListenNone})
	if !b.Embedded() || !b.Up() {
		t.Fatalf("Embedded=%v Up=%v, want both true", b.Embedded(), b.Up())
	}
	if u := b.ClientURL(); u != "" {
		t.Fatalf("ClientURL = %q, want empty when not listening", u)
	}
	if a := b.srv.Addr(); a != nil {
		t.Fatalf("server listens on %v, want no listener", a)
	}
	roundTrip(t, b.NC, b.NC)
	createBucket(t, b)
	if err := b.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}

func TestEmbeddedBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()

	// A private TMPDIR, so that other processes' stores do not count.
	t.Setenv("TMPDIR", t.TempDir())
	_, err = Connect(context.Background(), Options{Listen: addr})
	if err == nil {
		t.Fatal("Connect on a busy port succeeded")
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %v does not wrap EADDRINUSE", err)
	}
	for _, want := range []string{"cannot listen on " + addr, "address already in use", "--nats nats://" + addr, "--nats-listen 127.0.0.1:0", "none"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if n := countTemp(t); n != 0 {
		t.Errorf("%d temporary stores left after a failed start", n)
	}
}

func TestEmbeddedBadListen(t *testing.T) {
	for _, listen := range []string{"4222", "localhost", "127.0.0.1:x", "127.0.0.1:70000"} {
		_, err := Connect(context.Background(), Options{Listen: listen})
		if err == nil || !strings.Contains(err.Error(), "use host:port") {
			t.Errorf("Listen %q: err = %v, want a host:port hint", listen, err)
		}
	}
}

// countTemp counts roomcast-nats-* directories in the temp dir.
func countTemp(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "roomcast-nats-") {
			n++
		}
	}
	return n
}

func TestEmbeddedDataDirKept(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()

	b := connect(t, Options{Listen: ListenNone, DataDir: dir})
	kv := createBucket(t, b)
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("given data dir removed by Close: %v", err)
	}

	// A restart on the same dir finds the bucket and its entry.
	b2 := connect(t, Options{Listen: ListenNone, DataDir: dir})
	if err := b2.Ready(ctx); err != nil {
		t.Fatalf("Ready after restart: %v", err)
	}
	kv2, err := b2.JS.KeyValue(ctx, KeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv2.Get(ctx, "k")
	if err != nil || string(e.Value()) != "v" {
		t.Fatalf("entry after restart: %v %v", e, err)
	}
}

func TestExternal(t *testing.T) {
	s := bustest.RunServer(t)
	m := metrics.New(nil)
	b := connect(t, Options{URLs: s.ClientURL(), Name: "test-node", Metrics: m})
	bustest.Eventually(t, 5*time.Second, b.Up, "not connected to %s", s.ClientURL())
	if b.Embedded() || b.ClientURL() != "" {
		t.Fatalf("Embedded=%v ClientURL=%q for external NATS", b.Embedded(), b.ClientURL())
	}
	bustest.Eventually(t, 5*time.Second, func() bool { return gauge(m.NATSConnected) == 1 },
		"NATSConnected never 1")
	roundTrip(t, b.NC, bustest.Connect(t, s))
	createBucket(t, b)
	if err := b.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}

// TestExternalReconnect restarts NATS on the same port and store: the bus
// must report not-ready during the gap, refuse publishes rather than buffer
// them, and be ready again after.
func TestExternalReconnect(t *testing.T) {
	dir := t.TempDir()
	s := bustest.RunServerWith(t, &server.Options{StoreDir: dir})
	port := s.Addr().(*net.TCPAddr).Port
	m := metrics.New(nil)
	b := connect(t, Options{URLs: s.ClientURL(), Metrics: m})
	bustest.Eventually(t, 5*time.Second, b.Up, "not connected")
	createBucket(t, b)
	ctx := context.Background()
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}

	s.Shutdown()
	s.WaitForShutdown()
	bustest.Eventually(t, 5*time.Second, func() bool { return b.Ready(ctx) != nil && !b.Up() },
		"still ready after NATS stopped")
	// The gauge follows from nats.go's callback goroutine, a moment later.
	bustest.Eventually(t, 5*time.Second, func() bool { return gauge(m.NATSConnected) == 0 },
		"NATSConnected still 1 during the gap")
	if err := b.NC.Publish("t.gap", []byte("x")); !errors.Is(err, nats.ErrReconnectBufExceeded) {
		t.Fatalf("Publish while down = %v, want nats.ErrReconnectBufExceeded (no buffering)", err)
	}

	bustest.RunServerWith(t, &server.Options{Port: port, StoreDir: dir})
	bustest.Eventually(t, 15*time.Second, func() bool { return b.Ready(ctx) == nil },
		"not ready after NATS came back on port %d", port)
	bustest.Eventually(t, 5*time.Second, func() bool { return gauge(m.NATSConnected) == 1 },
		"NATSConnected not 1 after reconnect")
}

// TestHandlers: the owner hears of a reconnect and of a subscription that
// lost messages as a slow consumer, the two ways messages published to a
// subscription never reach it.
func TestHandlers(t *testing.T) {
	s := bustest.RunServer(t)
	px := bustest.NewProxy(t, s.Addr().String())
	b := connect(t, Options{URLs: px.URL()})
	bustest.Eventually(t, 5*time.Second, b.Up, "not connected")
	reconnected := make(chan struct{}, 1)
	slow := make(chan *nats.Subscription, 10)
	b.SetHandlers(Handlers{
		Reconnected:  func() { reconnected <- struct{}{} },
		SlowConsumer: func(sub *nats.Subscription) { slow <- sub },
	})

	ch := make(chan *nats.Msg, 1) // never read: overflows at the second message
	sub, err := b.NC.ChanSubscribe("t.slow", ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	pub := bustest.Connect(t, s)
	for range 5 {
		if err := pub.Publish("t.slow", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	pub.Flush()
	select {
	case got := <-slow:
		if got != sub {
			t.Fatalf("SlowConsumer for %s; want t.slow", got.Subject)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no SlowConsumer call for a subscription that dropped messages")
	}
	select {
	case <-reconnected:
		t.Fatal("Reconnected without a reconnect")
	default:
	}

	px.Cut()
	bustest.Eventually(t, 5*time.Second, func() bool { return !b.Up() }, "still up after the link was cut")
	px.Heal()
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("no Reconnected call after the link came back")
	}
	if len(slow) != 0 {
		t.Errorf("%d more SlowConsumer calls; want one per episode", len(slow))
	}
}

// TestExternalStartsFirst starts the node before NATS exists.
func TestExternalStartsFirst(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	b := connect(t, Options{URLs: "nats://127.0.0.1:" + strconv.Itoa(port)})
	if b.Up() {
		t.Fatal("Up with no server running")
	}
	if err := b.Ready(context.Background()); err == nil {
		t.Fatal("Ready with no server running")
	}
	bustest.RunServerWith(t, &server.Options{Port: port})
	bustest.Eventually(t, 15*time.Second, b.Up, "never connected after NATS started")
}

func TestRedactURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:secret@a:4222,nats://tok@b:4222", "nats://a:4222,nats://b:4222"},
		{"tls://u:p@host", "tls://host"},
		{"user:pw@host:4222", "host:4222"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := RedactURLs(tt.in); got != tt.want {
			t.Errorf("RedactURLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(RedactURLs(tt.in), "secret") {
			t.Errorf("RedactURLs(%q) leaks the password", tt.in)
		}
	}
}

func gauge(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		panic(err)
	}
	return m.GetGauge().GetValue()
}
