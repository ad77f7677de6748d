package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts sized for a loaded 2-core machine; polling returns as soon as
// the condition holds, so they only matter when something is wrong.
const (
	// StartTimeout bounds a node's start: process up, listening, /readyz.
	StartTimeout = 60 * time.Second
	// StopTimeout is how long a node may drain after SIGTERM before it is
	// killed.
	StopTimeout = 15 * time.Second
)

// APIKey is the --api-key every harness node gets unless NodeConfig says
// otherwise.
const APIKey = "e2e-api-key"

// NodeConfig says how to start one roomcast-node. Zero fields get test
// defaults.
type NodeConfig struct {
	// ID is --node-id; empty means "node-<n>".
	ID string
	// NATS is --nats; empty starts the node's embedded NATS.
	NATS string
	// NATSListen is --nats-listen for an embedded node; empty means
	// "none" (in-process only). "127.0.0.1:0" lets local services in on a
	// random port, reported as Node.NATSURL.
	NATSListen string
	// Listen is --listen; empty means "127.0.0.1:0", the port read back
	// from the node's "listening" log line.
	Listen string
	// APIKey is --api-key; empty means the package's APIKey, "-" none.
	APIKey string
	// Config is the content of a YAML file passed as --config, if set.
	Config string
	// Args are extra flags, appended last.
	Args []string
	// Env is added to the process environment.
	Env []string
}

// Node is one running roomcast-node process.
type Node struct {
	ID      string
	Addr    string // host:port it listens on
	HTTP    string // http://host:port
	WS      string // ws://host:port
	NATSURL string // client URL of its NATS, as logged (embedded: "" if none)
	APIKey  string
	LogPath string

	t         testing.TB
	args      []string
	cmd       *exec.Cmd
	listening chan listenLine
	exited    chan struct{} // closed when the process has exited
	exitErr   error         // valid after exited
	stopped   bool          // Stop or Kill was called
	mu        sync.Mutex
}

var nodeSeq struct {
	sync.Mutex
	n int
}

// StartNode starts a node, waits until it listens and /readyz answers 200,
// and stops it with SIGTERM when the test ends. Its log is printed if the
// test fails.
func StartNode(t testing.TB, cfg NodeConfig) *Node {
	t.Helper()
	return StartNodes(t, cfg)[0]
}

// StartNodes starts several nodes at once and waits until all are ready.
func StartNodes(t testing.TB, cfgs ...NodeConfig) []*Node {
	t.Helper()
	nodes := make([]*Node, len(cfgs))
	for i, cfg := range cfgs {
		nodes[i] = start(t, cfg)
	}
	for _, n := range nodes {
		n.waitListening()
	}
	for _, n := range nodes {
		n.WaitReady(StartTimeout)
	}
	return nodes
}

// Launch starts a node and waits until it listens, not until it is ready
// (for tests of readiness itself); StartNode is what tests usually want.
func Launch(t testing.TB, cfg NodeConfig) *Node {
	t.Helper()
	n := start(t, cfg)
	n.waitListening()
	return n
}

// start starts the process and returns at once.
func start(t testing.TB, cfg NodeConfig) *Node {
	t.Helper()
	bin := NodeBin(t)
	if cfg.ID == "" {
		nodeSeq.Lock()
		nodeSeq.n++
		cfg.ID = fmt.Sprintf("node-%d", nodeSeq.n)
		nodeSeq.Unlock()
	}
	dir := t.TempDir()
	args := []string{"--node-id", cfg.ID, "--listen", or(cfg.Listen, "127.0.0.1:0")}
	if cfg.NATS != "" {
		args = append(args, "--nats", cfg.NATS)
	} else {
		args = append(args, "--nats-listen", or(cfg.NATSListen, "none"), "--data-dir", filepath.Join(dir, "jetstream"))
	}
	apiKey := or(cfg.APIKey, APIKey)
	if apiKey != "-" {
		args = append(args, "--api-key", apiKey)
	} else {
		apiKey = ""
	}
	if cfg.Config != "" {
		path := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(path, []byte(cfg.Config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	args = append(args, cfg.Args...)

	n := &Node{ID: cfg.ID, APIKey: apiKey, LogPath: filepath.Join(dir, cfg.ID+".log"), t: t,
		exited: make(chan struct{}), listening: make(chan listenLine, 1), args: args}
	logFile, err := os.Create(n.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bin, args...)
	n.cmd.Env = append(os.Environ(), cfg.Env...)
	n.cmd.Stdout = logFile
	// The node dies with the test binary even if cleanup never runs.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("harness: start %s: %v", cfg.ID, err)
	}
	go n.copyLog(stderr, logFile, n.listening)
	go func() {
		n.exitErr = n.cmd.Wait()
		logFile.Close()
		close(n.exited)
	}()
	// Registered before anything can fail, so the log is printed for
	// every failure below too; runs after the stop registered next.
	t.Cleanup(func() {
		if t.Failed() {
			n.dumpLog()
		}
	})
	t.Cleanup(n.Stop)
	return n
}

// waitListening reads the bound address from the node's log.
func (n *Node) waitListening() {
	n.t.Helper()
	select {
	case l := <-n.listening:
		n.Addr, n.NATSURL = l.Addr, l.NATS
	case <-n.exited:
		n.t.Fatalf("harness: node %s exited before listening: %v (args %q)", n.ID, n.exitErr, n.args)
	case <-time.After(StartTimeout):
		n.t.Fatalf("harness: node %s logged no \"listening\" line within %v", n.ID, StartTimeout)
	}
	n.HTTP = "http://" + n.Addr
	n.WS = "ws://" + n.Addr
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// listenLine is the node's startup log line: msg="listening" addr=... .
type listenLine struct {
	Msg  string `json:"msg"`
	Addr string `json:"addr"`
	NATS string `json:"nats"`
}

// copyLog tees the node's stderr into its log file and reports the first
// "listening" line.
func (n *Node) copyLog(r io.Reader, w io.Writer, listening chan<- listenLine) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	found := false
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = w.Write(line)
		_, _ = w.Write([]byte{'\n'})
		if found || !bytes.Contains(line, []byte(`"listening"`)) {
			continue
		}
		var l listenLine
		if json.Unmarshal(line, &l) == nil && l.Msg == "listening" && l.Addr != "" {
			found = true
			listening <- l
		}
	}
	_, _ = io.Copy(w, r)
}

// WaitReady polls /readyz until it answers 200.
func (n *Node) WaitReady(d time.Duration) {
	n.t.Helper()
	var last string
	ok := poll(d, func() bool {
		select {
		case <-n.exited:
			return true
		default:
		}
		code, body, err := n.get("/readyz")
		last = fmt.Sprintf("%d %s %v", code, body, err)
		return code == 200
	})
	select {
	case <-n.exited:
		n.t.Fatalf("harness: node %s exited while starting: %v", n.ID, n.exitErr)
	default:
	}
	if !ok {
		n.t.Fatalf("harness: node %s not ready within %v: last /readyz: %s", n.ID, d, last)
	}
}

func (n *Node) get(path string) (int, []byte, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(n.HTTP + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// Get fetches path from the node's HTTP side.
func (n *Node) Get(path string) (status int, body []byte, err error) { return n.get(path) }

// Alive reports whether the process is still running.
func (n *Node) Alive() bool {
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// ExitErr returns the process's exit error once it has exited.
func (n *Node) ExitErr() error {
	<-n.exited
	return n.exitErr
}

// Stop sends SIGTERM and waits up to StopTimeout for the drain, then kills
// the process. Calling it again does nothing.
func (n *Node) Stop() {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return
	}
	n.stopped = true
	n.mu.Unlock()
	if !n.Alive() {
		n.t.Errorf("harness: node %s had exited by itself: %v", n.ID, n.exitErr)
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		var ee *exec.ExitError
		if errors.As(n.exitErr, &ee) {
			n.t.Logf("harness: node %s exited after SIGTERM with %v", n.ID, n.exitErr)
		}
	case <-time.After(StopTimeout):
		n.t.Logf("harness: node %s still running %v after SIGTERM; killing it", n.ID, StopTimeout)
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
}

// Terminate sends SIGTERM and returns at once, for tests of the drain
// itself; WaitExit then waits for the process.
func (n *Node) Terminate() {
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
}

// WaitExit waits up to d for the process to exit and returns its exit
// error (nil for status 0); it fails the test if the process is still
// running after d.
func (n *Node) WaitExit(d time.Duration) error {
	n.t.Helper()
	select {
	case <-n.exited:
		return n.exitErr
	case <-time.After(d):
		n.t.Fatalf("harness: node %s still running after %v", n.ID, d)
		return nil
	}
}

// Kill sends SIGKILL and waits for the process to go.
func (n *Node) Kill() {
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	_ = n.cmd.Process.Kill()
	<-n.exited
}

// Log returns the node's log so far.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.LogPath)
	return string(b)
}

// dumpLog prints the last 64 KiB of the log into the test output.
func (n *Node) dumpLog() {
	b, err := os.ReadFile(n.LogPath)
	if err != nil {
		n.t.Logf("harness: node %s log: %v", n.ID, err)
		return
	}
	const max = 64 << 10
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	n.t.Logf("---- node %s log (%s) ----\n%s---- end of node %s log ----", n.ID, n.LogPath, strings.TrimLeft(string(b), "\n"), n.ID)
}

// poll calls cond every 20ms until it returns true (then poll returns
// true) or d passes.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Eventually polls cond until it holds or d passes, then fails the test
// with the message.
func Eventually(t testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !poll(d, cond) {
		t.Fatalf(format, args...)
	}
}
