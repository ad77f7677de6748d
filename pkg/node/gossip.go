package node

import (
	"fmt"
	"strings"

	"github.com/roomcast/roomcast/pkg/gossip"
	"github.com/roomcast/roomcast/pkg/metrics"
)

// Node liveness. Presence always watches the other nodes' heartbeats over
// NATS (rc.presence.$hb): a node silent for 3 s has its sessions reported
// session:disconnected everywhere. With --gossip-bind the node also joins
// the memberlist cluster of --gossip-join, whose failure detector (about
// 3 s), graceful leaves and incarnations feed the same tracker; see
// pkg/presence/liveness.go for how the two agree. --gossip-key keeps
// nodes without the key out of that cluster (pkg/gossip/keys.go). Each
// detector reports its own view: roomcast_peers{source} and
// roomcast_peer_events_total{source,event}, source heartbeat or gossip.

// startGossip joins the gossip cluster when --gossip-bind is set. It does
// not wait for the seeds: the first node of a cluster starts alone, and the
// others are retried in the background.
func (n *Node) startGossip() error {
	if n.opts.GossipBind == "" {
		var ignored []string
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"--gossip-join", len(n.opts.GossipJoin) > 0},
			{"--gossip-advertise", n.opts.GossipAdvertise != ""},
			{"--gossip-key", n.opts.GossipKey != ""},
		} {
			if f.set {
				ignored = append(ignored, f.name)
			}
		}
		if len(ignored) > 0 {
			n.log.Warn(strings.Join(ignored, ", ") + " ignored without --gossip-bind; node liveness relies on NATS heartbeats alone")
		}
		return nil
	}
	keys, err := gossip.ParseKeys(n.opts.GossipKey) // checked by validate
	if err != nil {
		return fmt.Errorf("--gossip-key: %w", err)
	}
	c, err := gossip.Start(gossip.Options{
		Node:        n.opts.NodeID,
		Incarnation: n.tracker.Incarnation(),
		Bind:        n.opts.GossipBind,
		Advertise:   n.opts.GossipAdvertise,
		Join:        n.opts.GossipJoin,
		Keys:        keys,
		Listener:    n.tracker,
		Logger:      n.log,
		Metrics:     n.metrics,
	})
	if err != nil {
		where := "--gossip-bind " + n.opts.GossipBind
		if n.opts.GossipAdvertise != "" {
			where += ", --gossip-advertise " + n.opts.GossipAdvertise
		}
		return fmt.Errorf("cannot start gossip on %s: %w", where, err)
	}
	n.gossip = c
	n.metrics.SetPeers(metrics.SourceGossip, c.Peers)
	// How many keys, never which.
	n.log.Info("gossip started", "addr", c.Addr(), "join", strings.Join(n.opts.GossipJoin, ","),
		"encrypted", len(keys) > 0, "keys", len(keys))
	return nil
}

// stopGossip leaves the gossip cluster: the others drop this node at once.
// It runs after the tracker closed, so every presence leave is already out.
func (n *Node) stopGossip() {
	if n.gossip == nil {
		return
	}
	if err := n.gossip.Close(); err != nil {
		n.log.Warn("gossip leave", "err", err)
	}
}

// presenceCountOnlyAbove maps --presence-count-only-above (0 = never) to
// presence.Options.CountOnlyAbove (0 = its default, negative = never).
func (n *Node) presenceCountOnlyAbove() int {
	if n.opts.PresenceCountOnlyAbove <= 0 {
		return -1
	}
	return n.opts.PresenceCountOnlyAbove
}
