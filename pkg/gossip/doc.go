// Package gossip is the node membership of a roomcast cluster: which nodes
// are alive, found with hashicorp/memberlist (SWIM gossip over UDP and TCP).
//
// A Cluster joins the other nodes (seed addresses or DNS names, such as a
// Kubernetes headless Service, retried until they answer), publishes this
// node's id and incarnation in its memberlist metadata, and tells a
// Listener, one call at a time and never on memberlist's own goroutines,
// when a node joins or restarts (NodeAlive), fails (NodeFailed) or leaves
// gracefully (NodeGone). presence.Tracker is that Listener.
//
// memberlist is tuned to find a dead node in about 3 s on a LAN: the
// arithmetic is in config.go. After a partition heals, memberlist's halves
// do not merge by themselves: the rejoin loop (join.go) keeps trying the
// failed nodes and the seeds.
//
// With Options.Keys, gossip is encrypted and authenticated (AES-GCM):
// only nodes that share a key are members; keys.go says what that guards
// and how keys rotate. Options.Advertise gives the address other nodes
// reach this one at, when it is not the bound one (NAT, containers).
//
// Where to start: gossip.go (Start, Close, Shutdown), config.go (timing),
// events.go (the delegate that copies memberlist's events and never
// blocks it), join.go (seeds, DNS and rejoining), keys.go (encryption).
package gossip
