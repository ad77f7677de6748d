// Command tlsidle measures what an idle wss:// connection costs a node.
// TLS connections cannot be read by the epoll loop, so each runs on a reader
// and a writer goroutine (pkg/loop/stream.go); this puts a number on that
// path next to the idle scenario's plain figure.
//
//	go run ./bench/tlsidle -n 2000
//
// It builds roomcast-node, starts it with a throwaway self-signed
// certificate and the public demo route, opens N idle wss:// connections
// from this process (their memory is ours, not the node's), and reports the
// node's RSS and goroutines per connection from /proc and /metrics.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/pkg/certs/certstest"
)

func main() {
	n := flag.Int("n", 2000, "idle wss connections to open (bounded by the fd limit)")
	flag.Parse()
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "tlsidle:", err)
		os.Exit(1)
	}
}

func run(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if uint64(n)+256 > lim.Cur {
		return fmt.Errorf("-n %d needs more file descriptors than the limit %d", n, lim.Cur)
	}
	dir, err := os.MkdirTemp("", "tlsidle")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "roomcast-node")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/node").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	cert, key, err := certstest.Write(dir, 1)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--listen", addr, "--nats-listen", "none", "--demo", "on",
		"--tls-cert", cert, "--tls-key", key, "--data-dir", filepath.Join(dir, "js"), "--log-level", "warn",
		"--max-conns", strconv.Itoa(n+100))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGKILL); _ = cmd.Wait() }()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get("https://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	dialer := ws.Dialer{TLSConfig: &tls.Config{InsecureSkipVerify: true}, Timeout: 10 * time.Second}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	fmt.Printf("| wss connections | node RSS | RSS/conn | goroutines | goroutines/conn |\n|---|---|---|---|---|\n")
	base := sample(cmd.Process.Pid, hc, addr)
	fmt.Printf("| 0 | %.1f MiB | – | %d | – |\n", mib(base.rss), base.goroutines)
	for _, step := range []int{n / 4, n / 2, n} {
		for len(conns) < step {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c, br, _, err := dialer.Dial(ctx, "wss://"+addr+"/_/demo/ws")
			cancel()
			if err != nil {
				return fmt.Errorf("dial %d: %w", len(conns), err)
			}
			if br != nil {
				ws.PutReader(br)
			}
			conns = append(conns, c)
		}
		time.Sleep(2 * time.Second) // let handshake garbage be collected
		m := sample(cmd.Process.Pid, hc, addr)
		k := float64(len(conns))
		fmt.Printf("| %d | %.1f MiB | %.2f KiB | %d | %.2f |\n", len(conns), mib(m.rss),
			float64(m.rss-base.rss)/k/1024, m.goroutines, float64(m.goroutines-base.goroutines)/k)
	}
	return nil
}

type stats struct {
	rss        int64
	goroutines int
}

func sample(pid int, hc *http.Client, addr string) stats {
	var s stats
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				s.rss = kb * 1024
			}
		}
	}
	if resp, err := hc.Get("https://" + addr + "/metrics"); err == nil {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
				s.goroutines, _ = strconv.Atoi(v)
			}
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return s
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
