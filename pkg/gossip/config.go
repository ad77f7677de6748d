package gossip

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// config builds memberlist's configuration from the LAN defaults, tuned so
// that a dead node (SIGKILL, pulled cable) is found in about 3 s, within
// roomcast's 5 s presence goal. With P = ProbeInterval (500 ms) and N nodes:
//
//  1. Waiting for a probe of the dead node: each live node probes one peer
//     per P, round robin, so the N−1 live nodes probe it about once per P
//     between them: P/2 on average, rarely over 2P.
//  2. The probe fails: no direct ack within ProbeTimeout (2P/5 = 200 ms),
//     then IndirectChecks = 3 peers ping it for us while we try TCP, until
//     the probe's period ends: P = 0.5 s after it began.
//  3. Suspicion: timeout = SuspicionMult × max(1, log10(max(1, N))) × P
//     = 4 × 1 × 0.5 s = 2 s for N ≤ 10 (3 s at N = 32, 4 s at N = 100).
//     From N = 4 memberlist expects k = SuspicionMult − 2 = 2 other nodes
//     to confirm: the timer starts at SuspicionMaxTimeoutMult × 2 s = 4 s
//     and falls to 2 s as their probes (one P each) confirm it.
//  4. Dead: the node whose timer fires tells its Listener at once and
//     gossips it (GossipInterval = P/5 = 100 ms a hop, to 3 peers); the
//     others' timers, started a gossip hop after the first, fire about
//     together with it.
//
// Total for N ≤ 10: P/2 + P + 2 s + 0.1 s ≈ 2.9 s typically; ≈ 5.5 s at
// worst (a late probe, no confirmations), where the NATS heartbeats
// (presence, ≤ 3.25 s) have already acted. A graceful Close gossips the
// leave at once: the others hear it within a gossip hop or two.
//
// The rest, each scaled from P so that tests can shrink everything:
// PushPullInterval = GossipToTheDeadTime = 30P = 15 s (a full state
// exchange repairs missed gossip; memberlist's local-network value);
// DeadNodeReclaimTime = 2P: node ids are unique by configuration, so a dead
// node's id coming back from another address is its replacement (a pod
// restarted with a new IP), to be let in rather than refused. TCPTimeout
// (push/pull, joins) is 2 s: plenty on a LAN, and a join to a dead address
// gives up after it.
func (c *Cluster) config(host string, port int) (*memberlist.Config, error) {
	p := c.o.ProbeInterval
	mlog := log.New(logWriter{c.log}, "", 0)

	conf := memberlist.DefaultLANConfig()
	conf.Name = c.o.Node
	conf.Logger = mlog
	conf.Delegate = c.delegate
	conf.Events = c.delegate
	conf.Conflict = c.delegate

	conf.ProbeInterval = p
	conf.ProbeTimeout = p * 2 / 5
	conf.SuspicionMult = 4
	conf.SuspicionMaxTimeoutMult = 2
	conf.GossipInterval = p / 5
	conf.PushPullInterval = 30 * p
	conf.GossipToTheDeadTime = 30 * p
	conf.DeadNodeReclaimTime = 2 * p
	conf.TCPTimeout = 2 * time.Second

	if len(c.o.Keys) > 0 {
		kr, err := memberlist.NewKeyring(c.o.Keys[1:], c.o.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip: keys: %w", err)
		}
		conf.Keyring = kr
		// memberlist's defaults, said here because they are the point of
		// a key: drop what is not sealed with one of ours, and never send
		// in the clear. memberlist allows false to move a live cluster
		// onto encryption without a split; roomcast does not need it:
		// during a rolling restart that adds a key, old and new nodes
		// gossip apart, and the NATS heartbeats alone (which keep the 5 s
		// promise) watch the nodes across the two.
		conf.GossipVerifyIncoming = true
		conf.GossipVerifyOutgoing = true
	}

	// Our own transport (not memberlist's default) so that a port of 0
	// picks one and tests can wrap it.
	var nt *memberlist.NetTransport
	var err error
	for range 10 { // port 0: TCP and UDP must get the same free port; retry
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{host}, BindPort: port, Logger: mlog,
		})
		if err == nil || port != 0 {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("gossip: cannot listen on %s (is the port in use?): %w", c.o.Bind, err)
	}
	conf.BindAddr, conf.BindPort = host, nt.GetAutoBindPort()
	conf.AdvertisePort = conf.BindPort
	conf.Transport = nt
	if c.o.wrap != nil {
		conf.Transport = c.o.wrap(nt)
	}
	return conf, nil
}

// logWriter turns memberlist's log lines ("[WARN] memberlist: ...") into
// slog records at debug: its failures are expected during partitions and
// restarts, and the membership changes that matter are logged by the
// Cluster itself.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	if !w.log.Enabled(context.Background(), slog.LevelDebug) {
		return len(p), nil
	}
	msg := strings.TrimSpace(string(p))
	severity := ""
	if strings.HasPrefix(msg, "[") {
		if i := strings.IndexByte(msg, ']'); i > 0 {
			severity, msg = msg[1:i], strings.TrimSpace(msg[i+1:])
		}
	}
	if !strings.HasPrefix(msg, "memberlist:") {
		msg = "memberlist: " + msg
	}
	w.log.Debug(msg, "severity", severity)
	return len(p), nil
}
