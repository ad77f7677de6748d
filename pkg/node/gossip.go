package node

import (
	"fmt"
	"strings"

	"github.com/roomcast/roomcast/pkg/gossip"
)

// Node liveness. Presence always watches the other nodes' heartbeats over
// NATS (rc.presence.$hb): a node silent for 3 s has its sessions reported
// session:disconnected everywhere. With --gossip-bind the node also joins
// the memberlist cluster of --gossip-join, whose failure detector (about
// 3 s), graceful leaves and incarnations feed the same tracker; see
// pkg/presence/liveness.go for how the two agree.

// startGossip joins the gossip cluster when --gossip-bind is set. It does
// not wait for the seeds: the first node of a cluster starts alone, and the
// others are retried in the background.
func (n *Node) startGossip() error {
	if n.opts.GossipBind == "" {
		if len(n.opts.GossipJoin) > 0 {
			n.log.Warn("--gossip-join is ignored without --gossip-bind; node liveness relies on NATS heartbeats alone")
		}
		return nil
	}
	c, err := gossip.Start(gossip.Options{
		Node:        n.opts.NodeID,
		Incarnation: n.tracker.Incarnation(),
		Bind:        n.opts.GossipBind,
		Join:        n.opts.GossipJoin,
		Listener:    n.tracker,
		Logger:      n.log,
	})
	if err != nil {
		return fmt.Errorf("cannot start gossip on --gossip-bind %s: %w", n.opts.GossipBind, err)
	}
	n.gossip = c
	n.log.Info("gossip started", "addr", c.Addr(), "join", strings.Join(n.opts.GossipJoin, ","))
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
