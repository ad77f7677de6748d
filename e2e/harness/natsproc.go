package harness

import (
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

// NATS is one nats-server process (e2e/natsserver, nats-server's own main
// built from the module's nats-server version) inside a namespace.
type NATS struct {
	// Name is its server name (-n), e.g. "nats-a".
	Name string
	// URL is its client URL on the Net: nats://<ip>:4222.
	URL string
	// NS is the namespace it runs in.
	NS      *NS
	LogPath string

	cmd    *exec.Cmd
	exited chan struct{}
}

// Ports inside each namespace: every namespace has its own port space, so
// fixed well-known ports cannot collide.
const (
	natsClientPort  = 4222
	natsClusterPort = 6222
	natsMonitorPort = 8222
)

var natsBin struct {
	once sync.Once
	path string
	err  error
}

// NATSServerBin returns the path of the e2e/natsserver binary, building it
// on first use next to roomcast-node. With ROOMCAST_E2E_BIN it is taken
// from that directory as roomcast-e2e-nats if there (go build -o
// bin/roomcast-e2e-nats ./e2e/natsserver), else built for this test into
// t.TempDir, so nothing is left behind.
func NATSServerBin(t testing.TB) string {
	t.Helper()
	dir := binaries(t)
	const name = "roomcast-e2e-nats"
	if !ownDir {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		p = filepath.Join(t.TempDir(), name)
		if err := buildNATS(p); err != nil {
			t.Fatalf("harness: build: %v", err)
		}
		return p
	}
	natsBin.once.Do(func() {
		natsBin.path = filepath.Join(dir, name)
		natsBin.err = buildNATS(natsBin.path)
	})
	if natsBin.err != nil {
		t.Fatalf("harness: build: %v", natsBin.err)
	}
	return natsBin.path
}

func buildNATS(out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	start := time.Now()
	// Never -race: this is nats-server, not code under test.
	cmd := exec.Command("go", "build", "-o", out, "./e2e/natsserver")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./e2e/natsserver: %v\n%s", err, b)
	}
	fmt.Fprintf(os.Stderr, "harness: built %s in %v\n", filepath.Base(out), time.Since(start).Round(time.Millisecond))
	return nil
}

// StartNATSCluster starts one nats-server with JetStream in each namespace
// (named nats-a, nats-b, …), routed to each other as cluster "rc" when
// there are several, and waits until every one reports healthy, which for
// a cluster includes a JetStream meta leader, so a replicated bucket can be
// created at once. They are stopped when the test ends.
func StartNATSCluster(t testing.TB, nss ...*NS) []*NATS {
	t.Helper()
	if len(nss) == 0 || len(nss) > 26 {
		t.Fatalf("harness: a NATS cluster of %d", len(nss))
	}
	bin := NATSServerBin(t)
	var routes []string
	for _, ns := range nss {
		routes = append(routes, fmt.Sprintf("nats://%s:%d", ns.IP, natsClusterPort))
	}
	servers := make([]*NATS, len(nss))
	for i, ns := range nss {
		name := "nats-" + string(rune('a'+i))
		args := []string{"-a", ns.IP, "-p", fmt.Sprint(natsClientPort), "-n", name,
			"-m", fmt.Sprint(natsMonitorPort), "-js", "-sd", t.TempDir()}
		if len(nss) > 1 {
			args = append(args, "--cluster_name", "rc",
				"--cluster", routes[i], "--routes", strings.Join(routes, ","))
		}
		servers[i] = startNATS(t, bin, name, ns, args)
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: nss[0].net.Dial}}
	defer hc.CloseIdleConnections()
	for _, s := range servers {
		var last string
		ok := poll(StartTimeout, func() bool {
			if !s.Alive() {
				last = "exited"
				return true
			}
			resp, err := hc.Get(fmt.Sprintf("http://%s:%d/healthz", s.NS.IP, natsMonitorPort))
			if err != nil {
				last = err.Error()
				return false
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			last = fmt.Sprintf("HTTP %d %s", resp.StatusCode, b)
			return resp.StatusCode == 200
		})
		if !ok || !s.Alive() {
			t.Fatalf("harness: %s not healthy within %v: last /healthz: %s", s.Name, StartTimeout, last)
		}
	}
	return servers
}

// URLs returns the client URLs of servers as one --nats list.
func URLs(servers []*NATS) string {
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.URL)
	}
	return strings.Join(urls, ",")
}

func startNATS(t testing.TB, bin, name string, ns *NS, args []string) *NATS {
	t.Helper()
	s := &NATS{Name: name, URL: fmt.Sprintf("nats://%s:%d", ns.IP, natsClientPort), NS: ns,
		LogPath: filepath.Join(t.TempDir(), name+".log"), exited: make(chan struct{})}
	logFile, err := os.Create(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var startErr error
	if err := ns.Do(func() { startErr = s.cmd.Start() }); err != nil {
		startErr = err
	}
	if startErr != nil {
		logFile.Close()
		t.Fatalf("harness: start %s in %s: %v", name, ns.Name, startErr)
	}
	go func() {
		_ = s.cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- %s log (%s), last 8 KiB ----\n%s---- end of %s log ----", name, s.LogPath, Tail(s.LogPath, 8<<10), name)
		}
	})
	t.Cleanup(s.Stop)
	return s
}

// Alive reports whether the process is still running.
func (s *NATS) Alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits up to StopTimeout, then kills.
func (s *NATS) Stop() {
	if !s.Alive() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(StopTimeout):
		s.Kill()
	}
}

// Kill sends SIGKILL and waits for the process to go.
func (s *NATS) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Tail returns up to the last n bytes of a file, from a line start, for
// logs printed when a test fails.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error() + "\n"
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}
