package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/e2e/harness"
	"github.com/roomcast/roomcast/pkg/client"
)

// nginxBin is Debian's nginx (package nginx-light; .ci/run installs it).
const nginxBin = "/usr/sbin/nginx"

// nginxRoutes is the node's config: one public route, so every connection
// is an upgrade with nothing to mint.
const nginxRoutes = `
routes:
  - path: /chat
    auth: public
`

// TestBehindNginx checks --trusted-proxies behind the nginx config we ship
// (deploy/nginx/nginx.conf, the compose file's balancer), with one process
// per namespace so every party has an address of its own: NATS, a node
// trusting only nginx's address, nginx, and two client hosts a and b. The
// node limits each client address to one connection. Through nginx, a and
// b each get their slot (the node counts the clients, not nginx) and the
// connect events name them; a second connection from a is refused; b
// forging X-Forwarded-For (and X-Real-IP) to be a is still counted as b,
// since nginx appends the address it saw and the node reads from the
// right; and a's direct connection to the node with a forged header is a,
// because headers from a peer that is not a trusted proxy are ignored.
// A third client host c checks an upgrade after a plain request through
// nginx (UpgradeOnReusedUpstream): nginx's upstream keepalive sends it on
// the connection the plain request used.
func TestBehindNginx(t *testing.T) {
	t.Parallel()
	requireNginx(t)
	begin := time.Now()
	nt := harness.NewNet(t)
	natsNS, nodeNS, lbNS := nt.Add("nats"), nt.Add("node"), nt.Add("nginx")
	aNS, bNS, cNS := nt.Add("ca"), nt.Add("cb"), nt.Add("cc")
	servers := harness.StartNATSCluster(t, natsNS)
	node := nodeNS.LaunchNode(t, harness.NodeConfig{ID: "nx", NATS: harness.URLs(servers), Config: nginxRoutes,
		Args: []string{"--trusted-proxies", lbNS.IP, "--max-conns-per-ip", "1", "--events", "on"}})
	node.WaitReady(harness.StartTimeout)
	lb := startNginx(t, nt, lbNS, node.Addr)
	t.Logf("NATS, node and nginx ready in %v", time.Since(begin).Round(time.Millisecond))

	nc, err := nats.Connect(harness.URLs(servers), nats.SetCustomDialer(netDialer{nt}), nats.Name("e2e nginx test"))
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	evs := &lifecycle{}
	if _, err := nc.Subscribe("rc.events.>", evs.add); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	viaLB := "ws://" + lb + "/chat"
	direct := "ws://" + node.Addr + "/chat"
	forgeA := http.Header{"X-Forwarded-For": {aNS.IP}, "X-Real-Ip": {aNS.IP}}

	// a and b through nginx: one slot each, and the node names each.
	a1 := connectFrom(t, "a1", aNS, viaLB, nil)
	evs.expectRemote(t, "a1", a1, aNS.IP)
	b1 := connectFrom(t, "b1", bNS, viaLB, nil)
	evs.expectRemote(t, "b1", b1, bNS.IP)

	// a's second connection through nginx: a holds its one slot.
	refusedFrom(t, "a2 through nginx", aNS, viaLB, nil)

	// a straight to the node, claiming to be someone else: a is not a
	// trusted proxy, so the header is ignored and a is counted (were it
	// believed, 198.51.100.7 would have a free slot).
	refusedFrom(t, "a direct with a forged X-Forwarded-For", aNS, direct,
		http.Header{"X-Forwarded-For": {"198.51.100.7"}, "X-Real-Ip": {"198.51.100.7"}})

	// b forging a's address through nginx: nginx appends b's address and
	// overwrites X-Real-IP, so the node counts b, which holds its slot.
	refusedFrom(t, "b through nginx with a forged X-Forwarded-For", bNS, viaLB, forgeA)

	// b's slot freed, the same forgery is accepted, as b (a's slot is still
	// taken by a1: counted as a, it would be refused).
	if err := b1.Close(); err != nil {
		t.Logf("b1 close: %v", err)
	}
	evs.wait(t, "close", b1.Welcome().Session)
	b2 := connectFrom(t, "b2 (forging a)", bNS, viaLB, forgeA)
	evs.expectRemote(t, "b2 (forging a)", b2, bNS.IP)
	select {
	case <-a1.Done():
		t.Errorf("a1 ended: %v", a1.Err())
	default:
	}
	t.Logf("nginx checks done %v after start", time.Since(begin).Round(time.Millisecond))

	// nginx keeps idle connections to the nodes (keepalive 32; the
	// Connection map sends "" for plain requests so they stay open) and
	// sends the next request over one of them, an upgrade too. So after a
	// plain request through nginx (the demo page, /_/keys, a probe), the
	// next WebSocket arrives on a connection the node already handed to
	// net/http, which has no WebSocket routes.
	t.Run("UpgradeOnReusedUpstream", func(t *testing.T) {
		hc := &http.Client{Timeout: wait, Transport: &http.Transport{DialContext: nt.Dial}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get("http://" + lb + "/readyz")
		if err != nil {
			t.Fatalf("GET /readyz through nginx: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /readyz through nginx: HTTP %d", resp.StatusCode)
		}
		c, err := dialFrom(cNS, viaLB, nil)
		if err != nil {
			t.Fatalf("c through nginx after a plain request: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		evs.expectRemote(t, "c", c, cNS.IP)
	})
}

// requireNginx skips the test without nginx, or fails it when namespace
// tests are required (CI installs nginx-light).
func requireNginx(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(nginxBin); err == nil {
		return
	}
	if os.Getenv(harness.EnvNetns) == "require" {
		t.Fatalf("nginx: no %s: apt-get install nginx-light (%s=require)", nginxBin, harness.EnvNetns)
	}
	t.Skipf("nginx: skipped: no %s (apt-get install nginx-light; %s=require makes this a failure)", nginxBin, harness.EnvNetns)
}

// dialFrom connects a client to url with the TCP connection made inside
// ns, so the node or nginx sees ns's address.
func dialFrom(ns *harness.NS, url string, h http.Header) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return client.Dial(ctx, url, &client.Options{Header: h,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			var derr error
			if err := ns.Do(func() {
				var d net.Dialer
				c, derr = d.DialContext(ctx, network, addr)
			}); err != nil {
				return nil, err
			}
			return c, derr
		}})
}

// connectFrom dials from ns and fails the test unless it connects; the
// client is closed when the test ends.
func connectFrom(t *testing.T, name string, ns *harness.NS, url string, h http.Header) *client.Client {
	t.Helper()
	c, err := dialFrom(ns, url, h)
	if err != nil {
		t.Fatalf("%s from %s to %s: %v", name, ns.IP, url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refusedFrom dials from ns and fails the test unless the node refuses
// the upgrade for the per-IP limit: HTTP 429 with the node's own body.
func refusedFrom(t *testing.T, name string, ns *harness.NS, url string, h http.Header) {
	t.Helper()
	c, err := dialFrom(ns, url, h)
	if err == nil {
		c.Close()
		t.Fatalf("%s from %s to %s: connected as session %s; want HTTP 429 (per-IP limit)", name, ns.IP, url, c.Welcome().Session)
	}
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.Status != http.StatusTooManyRequests ||
		!strings.Contains(string(he.Body), "too many connections from this address") {
		t.Fatalf("%s from %s to %s: %v; want HTTP 429 from the node's per-IP limit", name, ns.IP, url, err)
	}
}

// lifecycle keeps the rc.events.* messages the test has seen.
type lifecycle struct {
	mu   sync.Mutex
	list []lifeEvent
}

type lifeEvent struct {
	Type    string `json:"type"`
	Session string `json:"session"`
	Remote  string `json:"remote"`
	raw     string
}

func (l *lifecycle) add(m *nats.Msg) {
	e := lifeEvent{raw: m.Subject + " " + string(m.Data)}
	_ = json.Unmarshal(m.Data, &e)
	l.mu.Lock()
	l.list = append(l.list, e)
	l.mu.Unlock()
}

func (l *lifecycle) find(kind, session string) (lifeEvent, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.list {
		if e.Type == kind && e.Session == session {
			return e, true
		}
	}
	return lifeEvent{}, false
}

func (l *lifecycle) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s []string
	for _, e := range l.list {
		s = append(s, e.raw)
	}
	return fmt.Sprintf("%d events:\n  %s", len(s), strings.Join(s, "\n  "))
}

// wait returns the first event of kind for session, waiting for it.
func (l *lifecycle) wait(t *testing.T, kind, session string) lifeEvent {
	t.Helper()
	var e lifeEvent
	waitUntil(t, wait, fmt.Sprintf("rc.events.%s of session %s", kind, session), func() bool {
		var ok bool
		e, ok = l.find(kind, session)
		return ok
	}, l.String)
	return e
}

// expectRemote waits for c's connect event and checks that it names ip
// as the client: through a trusted proxy the node gives the address alone.
func (l *lifecycle) expectRemote(t *testing.T, name string, c *client.Client, ip string) {
	t.Helper()
	e := l.wait(t, "connect", c.Welcome().Session)
	if e.Remote != ip {
		t.Errorf("%s: rc.events.connect remote %q; want %q: %s", name, e.Remote, ip, e.raw)
	}
}

// startNginx runs nginx in ns with deploy/nginx/nginx.conf, rewritten to
// proxy to the node at upstream and listen on ns's address, and returns
// that address once a request through nginx reaches the node. nginx is
// stopped when the test ends; its logs are printed if the test failed.
func startNginx(t *testing.T, nt *harness.Net, ns *harness.NS, upstream string) string {
	t.Helper()
	real, err := os.ReadFile(filepath.Join("..", "deploy", "nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	vv, err := exec.Command(nginxBin, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -V: %v: %s", nginxBin, err, vv)
	}
	dir := t.TempDir()
	listen := fmt.Sprintf("%s:%d", ns.IP, 8080)
	conf := nginxConfig(t, string(real), dir, listen, upstream, string(vv))
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	outPath := filepath.Join(dir, "nginx.out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginxBin, "-p", dir+"/", "-c", confPath, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so a master that must be killed takes its
	// worker with it; Pdeathsig for a test binary that dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var startErr error
	if err := ns.Do(func() { startErr = cmd.Start() }); err != nil {
		startErr = err
	}
	if startErr != nil {
		out.Close()
		t.Fatalf("start nginx in %s: %v", ns.Name, startErr)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() {
		exitErr = cmd.Wait()
		out.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		t.Logf("---- nginx config (%s) ----\n%s", confPath, conf)
		for _, f := range []string{"nginx.out", "error.log", "access.log"} {
			t.Logf("---- nginx %s, last 16 KiB ----\n%s", f, harness.Tail(filepath.Join(dir, f), 16<<10))
		}
		t.Logf("---- end of nginx logs ----")
	})
	t.Cleanup(func() {
		select {
		case <-exited:
			t.Errorf("nginx had exited by itself: %v", exitErr)
			return
		default:
		}
		// SIGTERM: fast shutdown, the master stops its worker and exits.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(harness.StopTimeout):
			t.Logf("nginx still running %v after SIGTERM; killing its process group", harness.StopTimeout)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})

	// Ready when it accepts a connection. Not a request through it: that
	// would leave an idle upstream connection in nginx's keepalive cache,
	// and the next upgrade would reuse it (see UpgradeOnReusedUpstream).
	var last string
	waitUntil(t, harness.StartTimeout, "nginx listens on "+listen, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := nt.Dial(ctx, "tcp", listen)
		if err != nil {
			last = err.Error()
			return false
		}
		c.Close()
		return true
	}, func() string { return "last: " + last })
	select {
	case <-exited:
		t.Fatalf("nginx exited while starting: %v: %s", exitErr, harness.Tail(outPath, 4<<10))
	default:
	}
	return listen
}

// nginxConfig rewrites the shipped config for a test run, by substitutions
// that must each find their target, so the test follows the real file:
// one upstream server, the node (with a single server nginx never marks it
// failed nor retries a 503 elsewhere, so refusals are the node's own
// answers); listen on listen; logs, pid and temp files in dir; one worker,
// run as root (the workers must reach dir, which only root may enter).
// Everything else (headers, timeouts, maps) is the shipped file's.
func nginxConfig(t *testing.T, real, dir, listen, upstream, version string) string {
	t.Helper()
	conf := real
	sub := func(what, pattern string, want int, repl func(m []string) string) {
		t.Helper()
		re := regexp.MustCompile(pattern)
		n := 0
		conf = re.ReplaceAllStringFunc(conf, func(s string) string {
			n++
			return repl(re.FindStringSubmatch(s))
		})
		if n < 1 || (want > 0 && n != want) {
			t.Fatalf("nginx config: %s: %d matches of %q in deploy/nginx/nginx.conf; want %d (did the file change? update this test)", what, n, pattern, want)
		}
	}
	sub("worker_processes", `(?m)^([ \t]*)worker_processes[ \t]+[^;]+;`, 1, func(m []string) string {
		return m[1] + "worker_processes 1;\n" + m[1] + "user root;\n" + m[1] + "pid " + filepath.Join(dir, "nginx.pid") + ";"
	})
	sub("error_log", `(?m)^([ \t]*)error_log[ \t]+[^;\s]+([^;\n]*);`, 1, func(m []string) string {
		return m[1] + "error_log " + filepath.Join(dir, "error.log") + m[2] + ";"
	})
	sub("access_log", `(?m)^([ \t]*)access_log[ \t]+[^;\s]+([^;\n]*);`, 1, func(m []string) string {
		return m[1] + "access_log " + filepath.Join(dir, "access.log") + m[2] + ";"
	})
	first := true
	sub("upstream servers", `(?m)^([ \t]*)server[ \t]+roomcast-[0-9]+:8080([^;\n]*);\n`, 0, func(m []string) string {
		if !first {
			return ""
		}
		first = false
		return m[1] + "server " + upstream + m[2] + ";\n"
	})
	sub("listen", `(?m)^([ \t]*)listen[ \t]+8080;`, 1, func(m []string) string {
		return m[1] + "listen " + listen + ";"
	})
	sub("temp paths", `(?m)^http[ \t]*\{\n`, 1, func(m []string) string {
		s := m[0]
		for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
			// A module built without has no such directive.
			if strings.Contains(version, "--without-http_"+p+"_module") {
				continue
			}
			s += "    " + p + "_temp_path " + filepath.Join(dir, p+"_temp") + ";\n"
		}
		return s
	})
	return conf
}
