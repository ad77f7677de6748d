package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/roomcast/roomcast/pkg/client"
)

// Network namespaces, for tests that need several hosts on one machine:
// scale-out behind a load balancer, partitions, a node's death.
//
// Layout of one Net (every name begins rc-<pid>-<n>-, so concurrent test
// binaries never collide and a later run can tell leftovers of dead ones):
//
//	rc-<pid>-<n>-hub    br0 10.213.<n>.1/24, the switch; ports p2, p3, …
//	rc-<pid>-<n>-<x>    eth0 10.213.<n>.2/24 ─ veth ─ p2 (master br0)
//	rc-<pid>-<n>-<y>    eth0 10.213.<n>.3/24 ─ veth ─ p3 (master br0)
//
// The bridge lives in a namespace of its own rather than in the root one,
// so a Net touches nothing of the machine it runs on: no interface, address
// or route appears in the root namespace (10.213.x.0/24 cannot shadow a
// real network, and nothing can be routed out: no namespace has a default
// route), the host's firewall and br_netfilter never see the bridged
// traffic, and deleting the namespaces deletes every veth and the bridge
// with them, even after a crash. The test process reaches into the network
// through sockets it creates inside the hub namespace (Net.Dial), and
// Proxy puts loopback listeners in front of those for code that dials
// normally (pkg/client, net/http).
//
// Partitions are made at the switch: Block sets a member's port down, which
// drops every frame to and from it (its own eth0 loses carrier; TCP
// connections stall rather than reset, as on a pulled cable), and Unblock
// sets it up again.

// EnvNetns set to "require" turns the skip for a machine where network
// namespaces cannot be made (not root, no iproute2, no CAP_SYS_ADMIN) into
// a failure, for CI runs that must not skip them silently.
const EnvNetns = "ROOMCAST_E2E_NETNS"

// netnsDir is where `ip netns add` bind-mounts named namespaces.
const netnsDir = "/run/netns"

var (
	netSeq    atomic.Uint32
	staleOnce sync.Once
	// staleName matches the namespaces of any run: rc-<pid>-<n>-<label>.
	staleName = regexp.MustCompile(`^rc-([0-9]+)-[0-9]+-`)
)

// Net is a private IPv4 network of namespaces around a bridge. It and
// everything in it are removed by t.Cleanup, after the processes started
// inside (their cleanups are registered later, so they run first).
type Net struct {
	// Prefix begins every namespace name: rc-<pid>-<n>.
	Prefix string
	// Subnet is the network's /24, e.g. 10.213.7.0/24; it exists only
	// inside these namespaces.
	Subnet string

	t    testing.TB
	base string // "10.213.<n>."
	hub  *NS

	mu      sync.Mutex
	members []*NS
}

// NS is one network namespace of a Net.
type NS struct {
	// Name is the namespace's name, as in `ip netns exec Name ...`.
	Name string
	// IP is its address on the Net (on eth0; the hub's is on br0).
	IP string

	net  *Net
	port string // the veth end in the hub namespace: the switch port
}

// NewNet creates a Net with its hub namespace and bridge, or skips the
// test with the reason when this machine does not allow it (see EnvNetns).
// It first removes namespaces left by test binaries that are gone.
func NewNet(t testing.TB) *Net {
	t.Helper()
	requireNetns(t)
	staleOnce.Do(func() { removeStale(t) })
	n := netSeq.Add(1)
	nt := &Net{
		Prefix: fmt.Sprintf("rc-%d-%d", os.Getpid(), n),
		// Every Net is isolated from every other one, so the same /24
		// could serve them all; distinct ones just make logs unambiguous.
		base: fmt.Sprintf("10.213.%d.", n%250),
		t:    t,
	}
	nt.Subnet = nt.base + "0/24"
	nt.hub = &NS{Name: nt.Prefix + "-hub", IP: nt.base + "1", net: nt}
	// Registered before anything is created, so a failure half-way is
	// cleaned up too; deleting a namespace deletes its links.
	t.Cleanup(nt.remove)
	nt.must("netns", "add", nt.hub.Name)
	nt.must("-n", nt.hub.Name, "link", "set", "lo", "up")
	nt.must("-n", nt.hub.Name, "link", "add", "br0", "type", "bridge")
	nt.must("-n", nt.hub.Name, "addr", "add", nt.hub.IP+"/24", "dev", "br0")
	nt.must("-n", nt.hub.Name, "link", "set", "br0", "up")
	return nt
}

// Hub returns the namespace holding the bridge; the test process's sockets
// into the Net (Dial) live there.
func (nt *Net) Hub() *NS { return nt.hub }

// Add creates a namespace named Prefix-label, wires it to the bridge and
// gives it the next address (.2, .3, …). Loopback is up too.
func (nt *Net) Add(label string) *NS {
	nt.t.Helper()
	nt.mu.Lock()
	i := len(nt.members) + 2
	ns := &NS{Name: nt.Prefix + "-" + label, IP: nt.base + strconv.Itoa(i), net: nt, port: "p" + strconv.Itoa(i)}
	nt.members = append(nt.members, ns)
	nt.mu.Unlock()
	if i > 254 {
		nt.t.Fatalf("netns: %s is full", nt.Subnet)
	}
	nt.must("netns", "add", ns.Name)
	nt.must("-n", ns.Name, "link", "set", "lo", "up")
	// Both ends are created directly in their namespaces: the pair never
	// exists in the root namespace, not even for a moment.
	nt.must("link", "add", ns.port, "netns", nt.hub.Name, "type", "veth", "peer", "name", "eth0", "netns", ns.Name)
	nt.must("-n", ns.Name, "addr", "add", ns.IP+"/24", "dev", "eth0")
	nt.must("-n", ns.Name, "link", "set", "eth0", "up")
	// STP is off on a new bridge, so the port forwards as soon as it is up.
	nt.must("-n", nt.hub.Name, "link", "set", ns.port, "master", "br0", "up")
	return ns
}

// Members returns the namespaces made by Add, in order.
func (nt *Net) Members() []*NS {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	return append([]*NS(nil), nt.members...)
}

// Dial connects from the hub namespace to addr (an address on this Net).
// The socket is created inside the namespace, so it stays there whichever
// goroutine uses it afterwards.
func (nt *Net) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	var derr error
	if err := nt.hub.Do(func() {
		var d net.Dialer
		c, derr = d.DialContext(ctx, network, addr)
	}); err != nil {
		return nil, err
	}
	return c, derr
}

// Block cuts the namespace off the network by setting its switch port
// down: frames to and from it are dropped, connections stall. Its own
// processes still reach each other.
func (ns *NS) Block() {
	ns.net.t.Helper()
	ns.net.must("-n", ns.net.hub.Name, "link", "set", ns.port, "down")
}

// Unblock sets the switch port up again.
func (ns *NS) Unblock() {
	ns.net.t.Helper()
	ns.net.must("-n", ns.net.hub.Name, "link", "set", ns.port, "up")
}

// Command returns a command that runs name inside the namespace, through
// `ip netns exec`.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Do runs fn on an OS thread that has joined the namespace, then puts the
// thread back. What fn creates on that thread stays in the namespace:
// sockets (net.Dial, net.Listen) and child processes (exec.Cmd.Start forks
// from the calling thread, and a child inherits its network namespace).
// Goroutines fn starts run elsewhere, in the test's own namespace. fn may
// call t.Fatal: the thread is put back on the way out.
func (ns *NS) Do(fn func()) error {
	runtime.LockOSThread()
	// This thread's namespace, not the process's: another goroutine's Do
	// may have moved the main thread.
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(netnsDir + "/" + ns.Name)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: %w", err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: enter %s: %w", ns.Name, err)
	}
	defer func() {
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread must never run another goroutine
			// in the wrong namespace. It cannot happen (we just left
			// that namespace), so stop loudly.
			panic(fmt.Sprintf("netns: cannot return from %s: %v", ns.Name, err))
		}
		runtime.UnlockOSThread()
	}()
	fn()
	return nil
}

// Client dials a roomcast client from inside the namespace (a "local"
// client of a node there, which a partition at the switch does not cut
// off) and closes it when the test ends.
func (ns *NS) Client(t testing.TB, url string, o *client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var c *client.Client
	var derr error
	if err := ns.Do(func() { c, derr = client.Dial(ctx, url, o) }); err != nil {
		t.Fatal(err)
	}
	if derr != nil {
		t.Fatalf("dial %s from %s: %v", client.RedactURL(url), ns.Name, derr)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// must runs ip with args and fails the test on error, with ip's output.
func (nt *Net) must(args ...string) {
	nt.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		nt.t.Fatalf("netns: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

// remove deletes every namespace of the Net, members first. Processes still
// inside keep a deleted namespace alive until they exit; the harness stops
// them before this runs.
func (nt *Net) remove() {
	for _, ns := range nt.Members() {
		delNetns(nt.t, ns.Name)
	}
	delNetns(nt.t, nt.hub.Name)
}

func delNetns(t testing.TB, name string) {
	if _, err := os.Stat(netnsDir + "/" + name); err != nil {
		return // never created
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		t.Errorf("netns: ip netns del %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
}

// requireNetns skips (or, with EnvNetns=require, fails) unless this
// process can create network namespaces: root, iproute2, and `ip netns
// add` permitted (a container may deny it even to root). The probe runs
// once per test binary; parallel tests share its answer.
func requireNetns(t testing.TB) {
	t.Helper()
	probeOnce.Do(func() { probeReason = probeNetns() })
	if probeReason == "" {
		return
	}
	if os.Getenv(EnvNetns) == "require" {
		t.Fatalf("netns: %s (%s=require)", probeReason, EnvNetns)
	}
	t.Skipf("netns: skipped: %s (CI runs as root with iproute2; %s=require makes this a failure)", probeReason, EnvNetns)
}

var (
	probeOnce   sync.Once
	probeReason string // why namespaces cannot be made here; "" = they can
)

func probeNetns() string {
	if os.Geteuid() != 0 {
		return "creating network namespaces needs root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "no `ip` command: install iproute2 (.ci/run does)"
	}
	probe := fmt.Sprintf("rc-%d-0-probe", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Sprintf("`ip netns add` is not permitted here: %v: %s", err, strings.TrimSpace(string(out)))
	}
	_ = exec.Command("ip", "netns", "del", probe).Run()
	return ""
}

// removeStale deletes the namespaces of earlier test binaries that died
// without cleaning up (SIGKILL, a panic in another test). A name whose pid
// is alive belongs to a running binary and is left alone; pid reuse can
// only make us keep a leftover, never remove a live one.
func removeStale(t testing.TB) {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return // no namespaces at all yet
	}
	for _, e := range entries {
		m := staleName.FindStringSubmatch(e.Name())
		if m == nil || m[1] == strconv.Itoa(os.Getpid()) {
			continue
		}
		if _, err := os.Stat("/proc/" + m[1]); err == nil {
			continue
		}
		t.Logf("netns: removing %s, left by a test binary that is gone", e.Name())
		delNetns(t, e.Name())
	}
}
