package gossip

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func key(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

func withKeys(edit func(*Options), keys ...[]byte) func(*Options) {
	return func(o *Options) {
		if edit != nil {
			edit(o)
		}
		o.Keys = keys
	}
}

func TestParseKeys(t *testing.T) {
	k16, k24, k32 := key(1, 16), key(2, 24), key(3, 32)
	for _, tc := range []struct {
		in   string
		want [][]byte
	}{
		{"", nil},
		{"  ", nil},
		{b64(k16), [][]byte{k16}},
		{b64(k24), [][]byte{k24}},
		{b64(k32), [][]byte{k32}},
		{b64(k32) + ", " + b64(k16), [][]byte{k32, k16}}, // order kept: the first encrypts
	} {
		got, err := ParseKeys(tc.in)
		if err != nil {
			t.Fatalf("ParseKeys(%q): %v", tc.in, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Fatalf("ParseKeys(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// A bad key is refused with what was wrong and how to make a good one,
// and the error never repeats the key.
func TestParseKeysRefusesBadKeys(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"c2VjcmV0LXBhc3N3b3Jk", "the key is 15 bytes once decoded; AES-GCM takes 16, 24 or 32"},
		{b64(key(1, 64)), "the key is 64 bytes"},
		{"not*base64*at*all*", "the key is not base64"},
		{b64(key(1, 32)) + ",hunter2hunter2", "key 2 of 2 is not base64"},
		{b64(key(1, 32)) + ",," + b64(key(2, 32)), "key 2 of 3 is empty"},
		{b64(key(1, 32)) + ",", "key 2 of 2 is empty"},
		{strings.TrimRight(b64(key(1, 32)), "="), "not base64"}, // unpadded
	} {
		_, err := ParseKeys(tc.in)
		if err == nil {
			t.Fatalf("ParseKeys(%q) accepted", tc.in)
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) {
			t.Errorf("ParseKeys(%q): %q, want it to say %q", tc.in, msg, tc.want)
		}
		if !strings.Contains(msg, "head -c 32 /dev/urandom | base64") && !strings.Contains(msg, "empty") {
			t.Errorf("ParseKeys(%q): %q does not say how to make a key", tc.in, msg)
		}
		for _, part := range strings.Split(tc.in, ",") {
			if len(part) > 4 && strings.Contains(msg, part) {
				t.Errorf("ParseKeys(%q): the error shows the key: %q", tc.in, msg)
			}
		}
	}
}

// Start refuses keys AES cannot use, before it binds anything.
func TestStartRefusesBadKey(t *testing.T) {
	port := freePort(t)
	_, err := Start(Options{Node: "a", Bind: "127.0.0.1:" + strconv.Itoa(port), Listener: &recorder{},
		Keys: [][]byte{key(1, 32), key(2, 20)}})
	if err == nil || !strings.Contains(err.Error(), "key 2 of 2 is 20 bytes") {
		t.Fatalf("Start with a 20-byte key: %v", err)
	}
	// Nothing was left listening.
	if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err != nil {
		t.Fatalf("the port is still taken: %v", err)
	} else {
		l.Close()
	}
}

// Nodes that share a key form a cluster; nodes with another key, or none,
// cannot join it and are never reported by it, and the keyed nodes cannot
// join theirs either.
func TestKeyGuardsTheCluster(t *testing.T) {
	k, other := key(7, 32), key(8, 32)
	logs := map[string]*logBuf{}
	logged := func(name string, edit func(*Options)) func(*Options) {
		logs[name] = &logBuf{}
		return func(o *Options) {
			edit(o)
			o.Logger = slog.New(slog.NewTextHandler(logs[name], &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	nodes := cluster(t, 2, withKeys(probe(fast), k))
	a, b := nodes[0], nodes[1]
	a.rec.wait(t, 5*time.Second, fmt.Sprintf("alive n2 %d", b.inc))

	intruders := []testNode{
		start(t, "otherkey", logged("otherkey", joining(withKeys(probe(fast), other), a.Addr()))),
		start(t, "nokey", logged("nokey", joining(probe(fast), a.Addr()))),
	}
	// And the other way round: a keyed node told to join the intruders.
	lost := start(t, "lost", logged("lost", joining(withKeys(probe(fast), k), intruders[0].Addr(), intruders[1].Addr())))

	// Time for ten rejoin rounds and many probe periods at fast timing.
	time.Sleep(10 * fast)
	for _, n := range []testNode{a, b} {
		if got := len(n.Members()); got != 2 {
			t.Errorf("%s sees %d members, want 2: %+v", n.o.Node, got, n.Members())
		}
		for _, ev := range n.rec.list() {
			if !strings.HasSuffix(ev, "n1 "+strconv.FormatUint(a.inc, 10)) && !strings.HasSuffix(ev, "n2 "+strconv.FormatUint(b.inc, 10)) {
				t.Errorf("%s heard %q", n.o.Node, ev)
			}
		}
	}
	for _, n := range append(intruders, lost) {
		if got := len(n.Members()); got != 1 {
			t.Errorf("%s joined: it sees %+v", n.o.Node, n.Members())
		}
		if evs := n.rec.list(); len(evs) > 0 {
			t.Errorf("%s heard %q", n.o.Node, evs)
		}
		// It says why, once, and never shows a key.
		log := logs[n.o.Node].String()
		if c := strings.Count(log, "level=WARN msg=\"gossip: a node answered, but one of us cannot open the other's gossip: give every node the same --gossip-key (or none)\""); c != 1 {
			t.Errorf("%s warned of the key mismatch %d times, want once:\n%s", n.o.Node, c, log)
		}
		for _, secret := range []string{b64(k), b64(other)} {
			if strings.Contains(log, secret) {
				t.Errorf("%s logged a key", n.o.Node)
			}
		}
	}
}

// logBuf collects a node's log.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Rotation: at each step of old → old,new → new,old → new, a node of the
// previous step and one of the next form a cluster; skipping a step (old
// with new,old) does not.
func TestKeyRotationSteps(t *testing.T) {
	old, new := key(1, 32), key(2, 32)
	steps := [][][]byte{{old}, {old, new}, {new, old}, {new}}
	for i := 1; i < len(steps); i++ {
		prev, next := steps[i-1], steps[i]
		t.Run(fmt.Sprintf("step %d", i), func(t *testing.T) {
			t.Parallel()
			a := start(t, "a", withKeys(probe(fast), prev...))
			b := start(t, "b", joining(withKeys(probe(fast), next...), a.Addr()))
			waitSize(t, []testNode{a, b}, 2)
			a.rec.wait(t, 5*time.Second, fmt.Sprintf("alive b %d", b.inc))
			b.rec.wait(t, 5*time.Second, fmt.Sprintf("alive a %d", a.inc))
		})
	}
	t.Run("skipped step", func(t *testing.T) {
		t.Parallel()
		a := start(t, "a", withKeys(probe(fast), old))
		b := start(t, "b", joining(withKeys(probe(fast), new, old), a.Addr()))
		time.Sleep(10 * fast)
		// b can open a's answers but a cannot open b's: neither may
		// count the other in.
		for _, n := range []testNode{a, b} {
			if len(n.Members()) != 1 {
				t.Errorf("%s sees %+v", n.o.Node, n.Members())
			}
			if evs := n.rec.list(); len(evs) > 0 {
				t.Errorf("%s heard %q", n.o.Node, evs)
			}
		}
	})
}

// A node behind a port forward (NAT, a published container port) is
// reached at its advertised address: the others gossip with it through the
// forward and see it there.
func TestAdvertisedAddress(t *testing.T) {
	port := freePort(t)
	fwd := forward(t, "127.0.0.1:"+strconv.Itoa(port))
	a := start(t, "a", probe(fast))
	b := start(t, "b", joining(func(o *Options) {
		probe(fast)(o)
		o.Bind = "127.0.0.1:" + strconv.Itoa(port)
		o.Advertise = "localhost:" + strconv.Itoa(fwd.port) // resolved at Start
	}, a.Addr()))
	want := "127.0.0.1:" + strconv.Itoa(fwd.port)
	if b.Addr() != want {
		t.Fatalf("b.Addr() = %s, want %s", b.Addr(), want)
	}
	waitSize(t, []testNode{a, b}, 2)
	a.rec.wait(t, 5*time.Second, fmt.Sprintf("alive b %d", b.inc))
	for _, m := range a.Members() {
		if m.Node == "b" && m.Addr != want {
			t.Fatalf("a sees b at %s, want %s", m.Addr, want)
		}
	}
	// a's probes of b go through the forward, and b stays alive.
	before := fwd.packets.Load()
	time.Sleep(5 * fast)
	if fwd.packets.Load() == before {
		t.Fatal("no packets through the advertised address")
	}
	if _, failed := a.rec.when("failed b"); failed {
		t.Fatalf("a declared b failed: %q", a.rec.list())
	}
}

func TestAdvertiseRefused(t *testing.T) {
	for _, tc := range []struct{ adv, want string }{
		{"203.0.113.7", "want host:port"},
		{":7946", "want host:port"},
		{"0.0.0.0:7946", "no address other nodes can reach"},
		{"[::]:7946", "no address other nodes can reach"},
		{"203.0.113.7:0", "port must be 1-65535"},
		{"203.0.113.7:70000", "port must be 1-65535"},
		{"no-such-host.invalid:7946", "cannot resolve no-such-host.invalid"},
	} {
		_, err := Start(Options{Node: "a", Bind: "127.0.0.1:0", Advertise: tc.adv, Listener: &recorder{}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Advertise %q: %v, want %q", tc.adv, err, tc.want)
		}
	}
}

// forwarder relays UDP packets and TCP streams from its port to a target,
// as a NAT's port forward does. Replies to packets need no relay: memberlist
// answers a ping at the address the ping names, not at the sender's.
type forwarder struct {
	port    int
	packets atomic.Int64
}

func forward(t *testing.T, target string) *forwarder {
	t.Helper()
	f := &forwarder{}
	var l net.Listener
	var pc net.PacketConn
	for range 20 {
		var err error
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if pc, err = net.ListenPacket("udp", l.Addr().String()); err == nil {
			break
		}
		l.Close()
		l = nil
	}
	if l == nil {
		t.Fatal("no free port for the forward")
	}
	f.port = l.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { l.Close(); pc.Close() })
	to, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	out, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			f.packets.Add(1)
			_, _ = out.WriteTo(buf[:n], to)
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				d, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer d.Close()
				go func() { _, _ = io.Copy(d, c); d.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, d)
			}()
		}
	}()
	return f
}
