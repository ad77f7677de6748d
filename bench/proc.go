package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process the harness started. Children die with the
// harness (Pdeathsig) and are stopped by the run's cleanup, so no load or
// server outlives a run.
type proc struct {
	name   string
	cmd    *exec.Cmd
	errLog string // stderr goes here, for the listening line and for post-mortems
	stdin  io.WriteCloser
	stdout *bufio.Reader
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

// procs tracks every child of a run, for cleanup.
type procs struct {
	dir  string
	mu   sync.Mutex
	list []*proc
}

// start runs bin with args; with pipes, stdin and stdout are connected to
// the harness (the load client's command channel), else stdout joins stderr.
func (ps *procs) start(name, bin string, pipes bool, env []string, args ...string) (*proc, error) {
	p := &proc{name: name, done: make(chan struct{})}
	p.errLog = filepath.Join(ps.dir, name+".log")
	f, err := os.Create(p.errLog)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if pipes {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		p.stdout = bufio.NewReaderSize(out, 1<<20)
	} else {
		cmd.Stdout = f
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.cmd = cmd
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	if p.stdin != nil {
		p.stdin.Close()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.errLog)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

// stopAll stops every child, newest first (clients before servers).
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop(5 * time.Second)
	}
}

// waitListening waits for the JSON log line {"msg":"listening","addr":...}
// that roomcast-node (and the baseline) print once they accept connections.
func (p *proc) waitListening(timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(p.errLog)
		for _, line := range bytes.Split(b, []byte("\n")) {
			var l struct{ Msg, Addr string }
			if json.Unmarshal(line, &l) == nil && l.Msg == "listening" && l.Addr != "" {
				return l.Addr, nil
			}
		}
		if p.exited() {
			return "", fmt.Errorf("%s exited before listening:\n%s", p.name, p.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", fmt.Errorf("%s not listening after %s:\n%s", p.name, timeout, p.tail())
}

// waitHTTP polls url until it answers 200.
func waitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %v", url, timeout, last)
}

// freePort asks the kernel for an unused loopback port. Another process
// could take it before it is used; on this machine that has not happened,
// and a clash fails loudly at startup.
func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// sample is one reading of a server process, from /proc and its /metrics.
type sample struct {
	at       time.Time
	cpu      float64 // user+system CPU seconds
	rss      int64   // VmRSS, bytes
	rssAnon  int64   // RssAnon, bytes: heap, stacks, mmaps of the process
	threads  int
	syscw    int64 // write-class syscalls (write, writev, ...)
	syscr    int64
	wchar    int64 // bytes passed to write-class syscalls
	metrics  map[string]float64
	sockMem  int64 // /proc/net/sockstat TCP mem, bytes, system-wide
	slab     int64 // /proc/meminfo Slab, bytes, system-wide
	tcpInuse int64
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every
// Linux configuration Go supports.
const clockTick = 100

func takeSample(pid int, metricsURL string) sample {
	s := sample{at: time.Now()}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the parenthesized command name; utime and stime are
		// fields 14 and 15, num_threads 20 (1-based).
		if i := bytes.LastIndexByte(b, ')'); i > 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 17 {
				ut, _ := strconv.ParseFloat(f[11], 64)
				st, _ := strconv.ParseFloat(f[12], 64)
				s.cpu = (ut + st) / clockTick
				s.threads, _ = strconv.Atoi(f[17])
			}
		}
	}
	for k, v := range procKV(fmt.Sprintf("/proc/%d/status", pid)) {
		switch k {
		case "VmRSS":
			s.rss = v << 10
		case "RssAnon":
			s.rssAnon = v << 10
		}
	}
	io := procKV(fmt.Sprintf("/proc/%d/io", pid))
	s.syscw, s.syscr, s.wchar = io["syscw"], io["syscr"], io["wchar"]
	if metricsURL != "" {
		s.metrics = scrape(metricsURL)
	}
	if b, err := os.ReadFile("/proc/net/sockstat"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "TCP:") {
				continue
			}
			f := strings.Fields(line)
			for i := 1; i+1 < len(f); i += 2 {
				v, _ := strconv.ParseInt(f[i+1], 10, 64)
				switch f[i] {
				case "mem":
					s.sockMem = v * int64(os.Getpagesize())
				case "inuse":
					s.tcpInuse = v
				}
			}
		}
	}
	s.slab = meminfo()["Slab"]
	return s
}

// procKV reads "Key: value ..." files (/proc/<pid>/status, /proc/<pid>/io).
func procKV(path string) map[string]int64 {
	m := map[string]int64{}
	b, err := os.ReadFile(path)
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if f := strings.Fields(v); len(f) > 0 {
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err == nil {
				m[k] = n
			}
		}
	}
	return m
}

var scrapeClient = &http.Client{Timeout: 5 * time.Second}

// scrape reads a Prometheus text endpoint into name{labels} → value.
func scrape(url string) map[string]float64 {
	m := map[string]float64{}
	resp, err := scrapeClient.Get(url)
	if err != nil {
		return m
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		line := s.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// delta is what happened between two samples of one process.
type delta struct {
	secs    float64
	cpu     float64 // CPU seconds
	syscw   int64
	mallocs float64 // go_memstats_mallocs_total difference (0 if not exported)
}

func diff(a, b sample) delta {
	return delta{
		secs:    b.at.Sub(a.at).Seconds(),
		cpu:     b.cpu - a.cpu,
		syscw:   b.syscw - a.syscw,
		mallocs: b.metrics["go_memstats_mallocs_total"] - a.metrics["go_memstats_mallocs_total"],
	}
}

// syscallCounter counts write and writev syscalls of a process with
// `perf stat` on the syscall tracepoints: exact, and far cheaper than
// strace. Unavailable (nil) without perf or tracepoint access.
type syscallCounter struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

func countSyscalls(pids ...int) *syscallCounter {
	if _, err := exec.LookPath("perf"); err != nil {
		return nil
	}
	c := &syscallCounter{}
	c.cmd = exec.Command("perf", "stat", "-x", ",", "-e", "syscalls:sys_enter_write,syscalls:sys_enter_writev", "-p", joinPIDs(pids))
	c.cmd.Stderr = &c.out
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return nil
	}
	return c
}

// stop ends the count and returns (write, writev) calls.
func (c *syscallCounter) stop() (writes, writevs int64, err error) {
	if c == nil {
		return 0, 0, errors.New("perf unavailable")
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	_ = c.cmd.Wait()
	found := 0
	for _, line := range strings.Split(c.out.String(), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		n, perr := strconv.ParseInt(f[0], 10, 64)
		if perr != nil {
			continue
		}
		switch f[2] {
		case "syscalls:sys_enter_write":
			writes, found = n, found+1
		case "syscalls:sys_enter_writev":
			writevs, found = n, found+1
		}
	}
	if found < 2 {
		return 0, 0, fmt.Errorf("perf stat gave no counts: %s", strings.TrimSpace(c.out.String()))
	}
	return writes, writevs, nil
}
