package e2e

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/e2e/harness"
)

// TestNetns checks the namespace harness the scale-out and partition tests
// stand on: members reach each other through the bridge and the test
// reaches them through a loopback forward; the root namespace gains no
// interface; Block stalls traffic without resetting connections and Unblock
// lets it resume; everything is gone after the test.
func TestNetns(t *testing.T) {
	t.Parallel()
	var names []string
	t.Run("Net", func(t *testing.T) {
		before := interfaceNames(t)
		nt := harness.NewNet(t)
		a, b := nt.Add("a"), nt.Add("b")
		names = []string{nt.Hub().Name, a.Name, b.Name}
		if after := interfaceNames(t); after != before {
			t.Errorf("root namespace interfaces changed: %s → %s", before, after)
		}

		// A line echo server in a, on a's address.
		var ln net.Listener
		var lerr error
		if err := a.Do(func() { ln, lerr = net.Listen("tcp", a.IP+":9000") }); err != nil || lerr != nil {
			t.Fatalf("listen in %s: %v %v", a.Name, err, lerr)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					sc := bufio.NewScanner(c)
					for sc.Scan() {
						if _, err := c.Write(append(sc.Bytes(), '\n')); err != nil {
							return
						}
					}
				}()
			}
		}()

		// b → a across the bridge, from inside b.
		var conn net.Conn
		var derr error
		if err := b.Do(func() { conn, derr = net.DialTimeout("tcp", a.IP+":9000", 5*time.Second) }); err != nil || derr != nil {
			t.Fatalf("dial a from b: %v %v", err, derr)
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		echo(t, conn, r, "hello", 5*time.Second)

		// The test process → a, through a loopback forward.
		fwd := harness.NewProxy(t, nt.Dial, a.IP+":9000")
		lc, err := net.DialTimeout("tcp", fwd.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer lc.Close()
		echo(t, lc, bufio.NewReader(lc), "via proxy", 5*time.Second)

		// ip netns exec sees the namespace's own address.
		out, err := a.Command("ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil || !strings.Contains(string(out), a.IP+"/24") {
			t.Errorf("ip addr in %s: %v: %s; want %s/24", a.Name, err, out, a.IP)
		}

		// Block: the established connection stalls (no reset), new dials
		// fail.
		a.Block()
		if _, err := conn.Write([]byte("during\n")); err != nil {
			t.Fatalf("write while blocked: %v (want a stall, not an error)", err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if line, err := r.ReadString('\n'); !isTimeout(err) {
			t.Fatalf("read while blocked: %q %v; want a timeout", line, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		if c, err := nt.Dial(ctx, "tcp", a.IP+":9000"); err == nil {
			c.Close()
			t.Errorf("dial to a blocked namespace succeeded")
		}
		cancel()

		// Unblock: the stalled line arrives (TCP retransmits it) and new
		// connections work again.
		a.Unblock()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if line, err := r.ReadString('\n'); err != nil || line != "during\n" {
			t.Fatalf("after unblock: %q %v; want the stalled line echoed", line, err)
		}
		lc2, err := net.DialTimeout("tcp", fwd.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer lc2.Close()
		echo(t, lc2, bufio.NewReader(lc2), "healed", 5*time.Second)
	})
	for _, name := range names {
		if _, err := os.Stat("/run/netns/" + name); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still there after the test: %v", name, err)
		}
	}
}

// echo writes line and expects it back within d.
func echo(t *testing.T, c net.Conn, r *bufio.Reader, line string, d time.Duration) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatalf("write %q: %v", line, err)
	}
	got, err := r.ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("echo of %q: %q %v", line, got, err)
	}
	_ = c.SetDeadline(time.Time{})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// interfaceNames lists the test process's (root namespace's) interfaces.
func interfaceNames(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	return strings.Join(names, ",")
}
