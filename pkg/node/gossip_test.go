package node

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/metrics"
	"github.com/roomcast/roomcast/pkg/metrics/metricstest"
)

// A bad --gossip-key stops the node before it starts, with the flag named,
// how to make a key, and not the key itself.
func TestGossipKeyRefused(t *testing.T) {
	for _, bad := range []string{"hunter2hunter2", "c2VjcmV0LXBhc3N3b3Jk"} {
		_, err := New(Options{NodeID: "x", GossipKey: bad})
		if err == nil {
			t.Fatalf("--gossip-key %q accepted", bad)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "--gossip-key: ") || !strings.Contains(msg, "head -c 32 /dev/urandom | base64") {
			t.Errorf("--gossip-key %q: %q should name the flag and how to make a key", bad, msg)
		}
		if strings.Contains(msg, bad) {
			t.Errorf("the error shows the key: %q", msg)
		}
	}
}

// Two nodes given the same --gossip-key gossip with each other, and the
// key is in no log line; a node given --gossip-advertise is known by that
// address.
func TestGossipKeyAndAdvertise(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	var logs syncBuf
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, _, _ := startNode(t, func(o *Options) {
		o.NodeID, o.Logger = "a", log
		o.GossipBind, o.GossipKey = "127.0.0.1:0", key
	})
	b, _, _ := startNode(t, func(o *Options) {
		o.NodeID, o.Logger = "b", log
		o.GossipBind, o.GossipKey = "127.0.0.1:0", " "+key+" " // spaces, as from a file
		o.GossipJoin = []string{a.gossip.Addr()}
	})
	for _, n := range []*Node{a, b} {
		bustest.Eventually(t, 10*time.Second, func() bool { return len(n.gossip.Members()) == 2 },
			"%s sees %+v", n.opts.NodeID, n.gossip.Members())
	}
	if !strings.Contains(logs.String(), "encrypted=true keys=1") {
		t.Errorf("no log line says gossip is encrypted:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), key) {
		t.Fatal("the gossip key is in the log")
	}

	// memberlist does not check that the advertised address answers, so
	// any port shows that the option reaches it.
	advPort := strconv.Itoa(freeTCPPort(t))
	c, _, _ := startNode(t, func(o *Options) {
		o.NodeID = "c"
		o.GossipBind, o.GossipAdvertise = "127.0.0.1:0", "localhost:"+advPort
	})
	if got, want := c.gossip.Addr(), "127.0.0.1:"+advPort; got != want {
		t.Fatalf("c's gossip address %s, want the advertised %s", got, want)
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Each liveness detector reports the other nodes on /metrics:
// roomcast_peers{source} and roomcast_peer_events_total{source,event} with
// source heartbeat and gossip, at production timing. Three nodes on one
// NATS, with gossip: each counts two; a graceful stop is a left for both
// detectors, a killed node (its NATS link cut, its gossip stopped without a
// leave) a failed for both.
func TestPeerMetrics(t *testing.T) {
	srv := bustest.RunServer(t)
	start := func(id string, seeds ...string) (*Node, *bustest.Proxy, context.CancelFunc) {
		px := bustest.NewProxy(t, srv.Addr().String())
		n, _, cancel := startNode(t, func(o *Options) {
			o.NodeID, o.NATS = id, px.URL()
			o.GossipBind, o.GossipJoin = "127.0.0.1:0", seeds
		})
		return n, px, cancel
	}
	a, _, _ := start("a")
	b, pxB, _ := start("b", a.gossip.Addr())
	c, _, stopC := start("c", a.gossip.Addr())

	type want struct {
		peers                float64
		joined, left, failed float64
	}
	wait := func(n *Node, w want) {
		t.Helper()
		for _, source := range []string{metrics.SourceHeartbeat, metrics.SourceGossip} {
			get := func(name string, labels ...string) float64 {
				v, _ := metricstest.Value(t, n.registry, name, append([]string{"source", source}, labels...)...)
				return v
			}
			event := func(ev string) float64 { return get("roomcast_peer_events_total", "event", ev) }
			got := func() want {
				return want{get("roomcast_peers"), event("joined"), event("left"), event("failed")}
			}
			bustest.Eventually(t, 10*time.Second, func() bool { return got() == w },
				"%s, %s: %+v, want %+v", n.opts.NodeID, source, got(), w)
		}
	}
	for _, n := range []*Node{a, b, c} {
		wait(n, want{peers: 2, joined: 2})
	}

	stopped := time.Now()
	stopC()
	for _, n := range []*Node{a, b} {
		wait(n, want{peers: 1, joined: 2, left: 1})
		t.Logf("%s counted c's graceful stop as left by both detectors within %v of its stop signal (drain window 200ms)",
			n.opts.NodeID, time.Since(stopped).Round(time.Millisecond))
	}

	killed := time.Now()
	pxB.Cut()
	_ = b.gossip.Shutdown()
	wait(a, want{peers: 0, joined: 2, left: 1, failed: 1})
	took := time.Since(killed)
	t.Logf("a counted b's kill as failed by both detectors %v after it", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("took %v: over the 5 s liveness goal", took)
	}
}

// A node without --gossip-bind exports the heartbeats' series only: no
// gossip count that would read as a node cut off from everyone.
func TestPeerMetricsWithoutGossip(t *testing.T) {
	n, _, _ := startNode(t, nil)
	if v, ok := metricstest.Value(t, n.registry, "roomcast_peers", "source", metrics.SourceHeartbeat); !ok || v != 0 {
		t.Errorf("heartbeat peers of a lone node: %v %v, want 0", v, ok)
	}
	if v, ok := metricstest.Value(t, n.registry, "roomcast_peer_events_total", "source", metrics.SourceHeartbeat, "event", "failed"); !ok || v != 0 {
		t.Errorf("heartbeat failed of a lone node: %v %v, want a series at 0", v, ok)
	}
	for _, name := range []string{"roomcast_peers", "roomcast_peer_events_total"} {
		if _, ok := metricstest.Value(t, n.registry, name, "source", metrics.SourceGossip); ok {
			t.Errorf("%s has a gossip series without gossip", name)
		}
	}
}
