package harness

import (
	"fmt"
	"testing"
)

// Ports of a node inside its namespace.
const (
	// NodePort is --listen's port when LaunchNode picks the address.
	NodePort = 8080
	// GossipPort is the memberlist port of GossipArgs.
	GossipPort = 7946
)

// LaunchNode starts a roomcast-node inside ns and returns once it listens
// (call WaitReady next; launching several first and then waiting for all
// overlaps their starts). cfg.Listen defaults to <ns.IP>:8080. Node.Addr is
// that address on the Net; Node.HTTP and Node.WS point at a loopback port
// forward into the namespace, so every Node method (MintKey, Dial, Get,
// WaitReady, …) works from the test process. Clients that must stay on the
// node's side of a partition dial Addr from inside the namespace
// (NS.Client).
func (ns *NS) LaunchNode(t testing.TB, cfg NodeConfig) *Node {
	t.Helper()
	// Build (if needed) outside the namespace: the go command should see
	// the machine's network, and not run on a locked thread.
	NodeBin(t)
	if cfg.Listen == "" {
		cfg.Listen = fmt.Sprintf("%s:%d", ns.IP, NodePort)
	}
	var n *Node
	if err := ns.Do(func() { n = start(t, cfg) }); err != nil {
		t.Fatal(err)
	}
	n.waitListening()
	fwd := NewProxy(t, ns.net.Dial, n.Addr)
	n.HTTP = "http://" + fwd.Addr
	n.WS = "ws://" + fwd.Addr
	return n
}

// GossipKey encrypts the gossip of every network-namespace cluster, so the
// kill and partition tests run memberlist as production should.
const GossipKey = "cm9vbWNhc3QtZTJlLWdvc3NpcC1rZXktMzJieXRlcyE="

// GossipArgs returns --gossip-bind, --gossip-join and --gossip-key flags
// for a node in ns whose peers are in peers (ns itself is skipped):
// memberlist on GossipPort of every namespace.
func GossipArgs(ns *NS, peers []*NS) []string {
	args := []string{"--gossip-bind", fmt.Sprintf("%s:%d", ns.IP, GossipPort), "--gossip-key", GossipKey}
	var join string
	for _, p := range peers {
		if p == ns {
			continue
		}
		if join != "" {
			join += ","
		}
		join += fmt.Sprintf("%s:%d", p.IP, GossipPort)
	}
	if join != "" {
		args = append(args, "--gossip-join", join)
	}
	return args
}
