package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
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

	"github.com/roomcast/roomcast/e2e/harness"
	"github.com/roomcast/roomcast/pkg/bus/bustest"
	"github.com/roomcast/roomcast/pkg/client"
)

// EnvSkipNodeBackend=1 skips the Node.js example (machines without node and
// npm, or without access to the npm registry); nothing else skips it.
const EnvSkipNodeBackend = "ROOMCAST_E2E_SKIP_NODE_BACKEND"

// TestExamples runs examples/go-backend and examples/node-backend as
// processes against two nodes and drives the same chat through each: a
// per-request socket on each node, send, rpc post and history, errors.
func TestExamples(t *testing.T) {
	t.Parallel()
	ns := bustest.RunServer(t)
	nodes := harness.StartNodes(t,
		harness.NodeConfig{ID: "ex-a", NATS: ns.ClientURL()},
		harness.NodeConfig{ID: "ex-b", NATS: ns.ClientURL()},
	)
	a, b := nodes[0], nodes[1]
	root := repoRoot(t)

	t.Run("go-backend", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "go-backend")
		build := exec.Command("go", "build", "-o", bin, "./examples/go-backend")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build ./examples/go-backend: %v\n%s", err, out)
		}
		p := startExample(t, exec.Command(bin, "--nats", ns.ClientURL(), "--listen", "127.0.0.1:0", "--public-url", a.WS))
		chat(t, p, a, b)
	})

	t.Run("node-backend", func(t *testing.T) {
		if os.Getenv(EnvSkipNodeBackend) == "1" {
			t.Skip(EnvSkipNodeBackend + "=1")
		}
		dir := t.TempDir()
		for _, f := range []string{"package.json", "package-lock.json", "server.mjs"} {
			b, err := os.ReadFile(filepath.Join(root, "examples", "node-backend", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		install := exec.Command("npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline")
		install.Dir = dir
		if out, err := install.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in a copy of examples/node-backend: %v\n%s\n(set %s=1 to skip on machines without npm or the registry)", err, out, EnvSkipNodeBackend)
		}
		cmd := exec.Command("node", "server.mjs")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NATS_URL="+ns.ClientURL(), "LISTEN=127.0.0.1:0", "PUBLIC_URL="+a.WS)
		p := startExample(t, cmd)
		chat(t, p, a, b)
	})
}

// example is a running example back-end.
type example struct {
	base string // http://host:port
	mu   sync.Mutex
	out  bytes.Buffer
}

func (e *example) log() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.out.String()
}

var listenAddr = regexp.MustCompile(`listening.*addr=([0-9.]+:[0-9]+)`)

// startExample starts cmd, waits for its "listening addr=host:port" line
// and stops it with SIGTERM when the test ends; its output is shown if the
// test fails.
func startExample(t *testing.T, cmd *exec.Cmd) *example {
	t.Helper()
	e := &example{}
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); w.Close(); close(exited) }()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			e.mu.Lock()
			e.out.Write(sc.Bytes())
			e.out.WriteByte('\n')
			e.mu.Unlock()
			if m := listenAddr.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("---- %s output ----\n%s---- end ----", filepath.Base(cmd.Path), e.log())
		}
	})
	select {
	case a := <-addr:
		e.base = "http://" + a
	case <-exited:
		t.Fatalf("%s exited before listening:\n%s", cmd.Path, e.log())
	case <-time.After(harness.StartTimeout):
		t.Fatalf("%s did not listen within %v:\n%s", cmd.Path, harness.StartTimeout, e.log())
	}
	return e
}

// connect asks the example for a socket URL for name and dials it on node
// n (keys redeem on any node, so the URL's host is swapped).
func (e *example) connect(t *testing.T, name string, n *harness.Node) *client.Client {
	t.Helper()
	hc := http.Client{Timeout: wait}
	resp, err := hc.Post(e.base+"/connect", "application/json", strings.NewReader(`{"name":"`+name+`"}`))
	if err != nil {
		t.Fatalf("POST /connect: %v", err)
	}
	defer resp.Body.Close()
	var got struct {
		URL string `json:"url"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 || !strings.Contains(got.URL, "/_/connect/") {
		t.Fatalf("POST /connect: HTTP %d %+v %v", resp.StatusCode, got, err)
	}
	path := got.URL[strings.Index(got.URL, "/_/connect/"):]
	return dialURL(t, n.URL(path))
}

// chat is the example's flow, the same for every language.
func chat(t *testing.T, e *example, a, b *harness.Node) {
	ctx := harness.Ctx(t, 2*time.Minute)
	alice := e.connect(t, "Alice", a)
	bob := e.connect(t, "Bob", b)
	for _, c := range []*client.Client{alice, bob} {
		// Both come, in no set order: the list from the node at once, the
		// greeting once the back-end heard of the connection.
		var greeted, joined bool
		harness.WaitEvent(t, c, wait, "Connected! and the session:list of chat.lobby", func(ev client.Event) bool {
			switch {
			case harness.IsEvent("", "message")(ev):
				if string(ev.Data) != `"Connected!"` {
					t.Fatalf("first message %s", ev.Raw)
				}
				greeted = true
			case ev.Type == client.TypeSessionList && ev.Room == "chat.lobby":
				joined = true
			}
			return greeted && joined
		})
	}
	type msg struct {
		ID   int    `json:"id"`
		User string `json:"user"`
		Name string `json:"name"`
		Text string `json:"text"`
	}
	expectChat := func(what, from, user, text string) {
		t.Helper()
		for _, c := range []*client.Client{alice, bob} {
			ev := harness.WaitEvent(t, c, wait, what, harness.IsEvent("chat.lobby", "chat"))
			var m msg
			if err := json.Unmarshal(ev.Data, &m); err != nil || m.User != user || m.Text != text || ev.From != from {
				t.Fatalf("%s: %s; want text %q by %s from session %q", what, ev.Raw, text, user, from)
			}
		}
	}
	// A client send: the back-end stores it and broadcasts it as alice.
	if err := alice.Send(ctx, "chat", map[string]string{"text": "hello"}); err != nil {
		t.Fatal(err)
	}
	expectChat("sent message", alice.Welcome().Session, "alice", "hello")
	// An rpc: answered with the stored message, broadcast by the server.
	r, err := bob.RPC(ctx, "chat.post", map[string]string{"text": "hi from rpc"})
	var posted msg
	if err != nil || json.Unmarshal(r, &posted) != nil || posted.User != "bob" || posted.Name != "Bob" || posted.ID == 0 {
		t.Fatalf("chat.post: %s %v", r, err)
	}
	expectChat("posted message", "", "bob", "hi from rpc")
	r, err = alice.RPC(ctx, "chat.history", nil)
	var hist []msg
	if err != nil || json.Unmarshal(r, &hist) != nil || len(hist) != 2 || hist[0].Text != "hello" || hist[1].Text != "hi from rpc" {
		t.Fatalf("chat.history: %s %v", r, err)
	}
	_, err = bob.RPC(ctx, "chat.post", map[string]string{"text": "  "})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != "bad_request" {
		t.Fatalf("empty post: %v; want bad_request", err)
	}
	alice.Close()
	harness.Eventually(t, wait, func() bool { return strings.Contains(e.log(), "closed") }, "the back-end did not hear of the close")
}

// repoRoot is the module root (go test runs in e2e/).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s", dir)
	}
	return dir
}
