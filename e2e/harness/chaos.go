package harness

// Fault injection and process measurements for the chaos and soak tests:
// a NATS server that can be stopped and started again on the same port and
// store, and a node's memory, descriptors and Prometheus metrics, read the
// way an operator would (/proc and /metrics), never from inside the node.

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// LocalNATS is a real nats-server with JetStream in the test process, on
// loopback, that a test can stop and start again: same port, same store directory, so the
// nodes' reconnect loop finds it and the rc-keys bucket survives, as with a
// restarted NATS pod with a persistent volume.
type LocalNATS struct {
	t    testing.TB
	opts server.Options

	mu  sync.Mutex
	srv *server.Server // nil while stopped
}

// StartLocalNATS starts a restartable NATS on a random loopback port, stopped
// when the test ends.
func StartLocalNATS(t testing.TB) *LocalNATS {
	t.Helper()
	n := &LocalNATS{t: t, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  filepath.Join(t.TempDir(), "jetstream"),
		NoLog:     true,
		NoSigs:    true,
		// One name across restarts: JetStream finds its own store again.
		ServerName: "e2e-nats",
	}}
	n.Start()
	// Pin the port the kernel chose, so a restart listens where the nodes
	// reconnect to.
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(n.Stop)
	return n
}

// URL is the client URL the nodes get as --nats.
func (n *LocalNATS) URL() string {
	return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port)
}

// Server returns the running server, nil while stopped.
func (n *LocalNATS) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Stop shuts the server down (clients see their connection close) and
// waits until it is gone. Stopping a stopped server does nothing.
func (n *LocalNATS) Stop() {
	n.mu.Lock()
	s := n.srv
	n.srv = nil
	n.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Start starts the server (again) and waits until it takes connections.
// A restart reuses the port and the JetStream store of the first start.
func (n *LocalNATS) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		return
	}
	o := n.opts // NewServer keeps and edits the Options it is given
	var s *server.Server
	var err error
	// The old listener's port is normally free at once (SO_REUSEADDR), but
	// give a loaded machine a few tries before calling it a failure.
	ok := poll(10*time.Second, func() bool {
		s, err = server.NewServer(&o)
		if err != nil {
			return false
		}
		go s.Start()
		if s.ReadyForConnections(5 * time.Second) {
			return true
		}
		s.Shutdown()
		s.WaitForShutdown()
		err = fmt.Errorf("not ready for connections on port %d", n.opts.Port)
		o = n.opts
		return false
	})
	if !ok {
		n.t.Fatalf("harness: start NATS: %v", err)
	}
	n.srv = s
}

// Pid is the node's process id.
func (n *Node) Pid() int { return n.cmd.Process.Pid }

// ProcStats are a process's resources as the kernel counts them.
type ProcStats struct {
	RSS     int64 // VmRSS, bytes
	HWM     int64 // VmHWM: peak RSS, bytes
	Threads int
	FDs     int // entries in /proc/<pid>/fd
}

func (s ProcStats) String() string {
	return fmt.Sprintf("rss %.1f MiB (peak %.1f MiB), %d threads, %d fds", MiB(s.RSS), MiB(s.HWM), s.Threads, s.FDs)
}

// MiB converts bytes to MiB for messages.
func MiB(b int64) float64 { return float64(b) / (1 << 20) }

// Proc reads the node's /proc/<pid>/status and counts its descriptors.
func (n *Node) Proc() (ProcStats, error) {
	return ReadProc(n.Pid())
}

// ReadProc reads /proc/<pid>/status and /proc/<pid>/fd.
func ReadProc(pid int) (ProcStats, error) {
	var st ProcStats
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		x, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			st.RSS = x << 10 // kB
		case "VmHWM":
			st.HWM = x << 10
		case "Threads":
			st.Threads = int(x)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return st, err
	}
	st.FDs = len(fds)
	return st, nil
}

// metricsClient fetches /metrics without keep-alive, so that scraping
// leaves no idle connection on the node to show up in its fd count.
var metricsClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// Metrics is one scrape of a node's /metrics: series (name plus labels,
// as printed, e.g. `roomcast_connections_closed_total{code="4009"}`) to
// value.
type Metrics map[string]float64

// Get returns the value of one series, 0 if absent.
func (m Metrics) Get(series string) float64 { return m[series] }

// Sum adds every series of the metric name, whatever their labels.
func (m Metrics) Sum(name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

// Metrics scrapes the node's /metrics (Prometheus text format).
func (n *Node) Metrics() (Metrics, error) {
	resp, err := metricsClient.Get(n.HTTP + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("/metrics: HTTP %d: %s", resp.StatusCode, b)
	}
	return parseMetrics(resp.Body)
}

// MustMetrics is Metrics that fails the test on error.
func (n *Node) MustMetrics(t testing.TB) Metrics {
	t.Helper()
	m, err := n.Metrics()
	if err != nil {
		t.Fatalf("harness: scrape %s: %v", n.ID, err)
	}
	return m
}

func parseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		// The value is the last field; label values may hold spaces.
		i := bytes.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(string(line[i+1:]), 64)
		if err != nil {
			continue
		}
		m[string(line[:i])] = v
	}
	return m, sc.Err()
}

// RaiseFileLimit raises this process's soft RLIMIT_NOFILE to want (at
// most the hard limit) and returns the soft limit now in force. Node
// processes started afterwards inherit it.
func RaiseFileLimit(t testing.TB, want uint64) uint64 {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("harness: getrlimit: %v", err)
	}
	if rl.Cur >= want {
		return rl.Cur
	}
	rl.Cur = min(want, rl.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("harness: setrlimit NOFILE %d: %v", rl.Cur, err)
	}
	return rl.Cur
}

// NodeRaceBuilt reports whether roomcast-node was built with -race
// (ROOMCAST_E2E_RACE=1, or a -race build in ROOMCAST_E2E_BIN). The race
// detector's shadow memory grows with every allocation and is not given
// back, so memory figures of such a node say nothing about the node.
func NodeRaceBuilt(t testing.TB) bool {
	t.Helper()
	info, err := buildinfo.ReadFile(NodeBin(t))
	if err != nil {
		t.Fatalf("harness: build info of roomcast-node: %v", err)
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// Poll calls cond every 20ms until it returns true or d passes, and
// reports whether it held: for tests that measure how long something took
// rather than fail at once.
func Poll(d time.Duration, cond func() bool) bool { return poll(d, cond) }
