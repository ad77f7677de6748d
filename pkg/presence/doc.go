// Package presence keeps, on every node, a replicated view of who is in each
// room that has members on that node, cluster-wide, over NATS.
//
// Ownership: each node is the only authority on its own sessions. A node
// announces every local change as a small delta on rc.presence.<room>; other
// nodes with members in that room apply the deltas to their view. Nothing is
// stored centrally, so a view is rebuilt from the nodes themselves:
//
//   - First local join of a room: subscribe to the deltas, announce the join,
//     then scatter a snapshot request to rc.presence.$snap.<room>. Every node
//     with members answers with its own members; each answer also lists the
//     nodes its view knows, so the requester stops waiting as soon as all of
//     them answered (NATS "no responders" ends the wait at once for a room that
//     is empty elsewhere). The wait is bounded by Options.SnapshotWait; deltas
//     that race the snapshot are buffered and applied after it.
//   - Every delta carries the sender's node id, incarnation (its start time),
//     epoch (bumped each time the node re-enters the room) and a per-room
//     sequence. A gap, a new incarnation or a new epoch not starting at 1 makes
//     the receiver resync that node for that room: a request to
//     rc.presence.$node.<incarnation>. "No responders" there means that
//     incarnation is dead, and its members are dropped.
//   - Anti-entropy: every node publishes a digest (era, sequence, count) per
//     room with local members every Options.AntiEntropy; a mismatch triggers
//     a resync, and a node not heard from in a room for 3 intervals is
//     dropped from it (the last resort).
//   - Liveness: every node publishes a heartbeat on rc.presence.$hb every
//     second; a node silent for 3 s has its members dropped everywhere.
//     memberlist (pkg/gossip), when configured, calls NodeAlive, NodeFailed
//     and NodeGone; heartbeats stay on as its second opinion. A node dropped
//     and heard from again is asked for its digests and resynced.
//   - Close announces every local leave at once (one "bye" per room, and a
//     last heartbeat).
//
// Tokens beginning with '$' are not valid room-name characters, so the control
// subjects above can never collide with a room's delta subject.
//
// Where to start: view.go is the pure state machine (unit and fuzz tested
// without NATS); tracker.go is the public API (Join, Leave, Members);
// sync.go does the NATS side (snapshots, resyncs, digests); liveness.go
// decides when another node is gone; events.go turns view changes into
// Listener calls, in order per room, and implements the count-only mode for
// large rooms.
package presence
