package node

import (
	"encoding/base64"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/bus/bustest"
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
