// Package history keeps the recent messages of configured rooms in NATS
// JetStream, so that a client that lost its connection gets what it missed
// when it comes back, and nodes never deliver a room with a hole in it.
//
// # Streams
//
// Each `history` entry ({rooms: "chat.>", size: 100, ttl: 10m}) is one
// stream, named rc-history-<hash of its subject>, capturing
// rc.room.<pattern> with per-room limits: MaxMsgsPerSubject = size,
// MaxAge = ttl, file storage, AllowDirect. Publishers change nothing: the
// plain NATS publish to rc.room.<room> of any service is stored. Patterns of
// two entries may not overlap (JetStream refuses two streams on one
// subject, and a room keeps one history). Every node creates the streams it
// is configured with at start (updating their limits) and checks them every
// few seconds, recreating a stream someone deleted.
//
// # Sequence: no round trip per message
//
// A room's sequence is the stream sequence of its messages: increasing
// within the room, not dense (other rooms of the stream take numbers in
// between). Nodes do not ask JetStream for it. The stream republishes every
// stored message to rc.stored.<room> (RePublish), with headers
// Nats-Sequence (its sequence) and Nats-Last-Sequence (the sequence of the
// previous message stored for the same room, 0 if none). A node subscribes
// to rc.stored.<room> instead of rc.room.<room> for a room with history, so
// each message arrives once, already numbered, and says which message came
// before it in the room. That is all gap detection needs.
//
// # Epoch
//
// A sequence means something only within one incarnation of a stream. The
// epoch is the stream's creation time in nanoseconds, base 36 (from stream
// info, which survives server restarts with file storage, and changes when
// the stream is deleted and created again). Events carry it next to seq; a
// position from another epoch is refused.
//
// # Feed: gap-free delivery on a node
//
// A Feed (one per room with local members) takes the room's live messages
// in arrival order and keeps last, the sequence it delivered last:
//
//   - Nats-Last-Sequence = last: deliver.
//   - Nats-Last-Sequence > last: messages in between never arrived (NATS
//     dropped them as a slow consumer, or the room's shard queue was full).
//     Read them from the stream (one batched direct get, sequences in
//     (last, seq)) and deliver them first. Members never see the hole.
//   - seq <= last: right after the feed started, a message its starting
//     position already covers: drop it. Later, impossible unless the stream
//     was reset: look the stream up (rate-limited), and if the epoch
//     changed, start over at 0 in the new epoch.
//   - Nats-Last-Sequence = 0 with last > 0: the room's earlier messages aged
//     out, or the stream is new: the same epoch check.
//
// A feed starts at the room's last stored sequence (one lookup, when the
// first member attaches) or, if a live message comes first, just before it.
//
// A gap is seen when the next message arrives. Messages lost at the tail of
// a room that then goes quiet would wait for the room's next message, so
// the node catches its feeds up when it knows messages may have been lost:
// after its NATS connection came back, and shortly after a subscription was
// a slow consumer. Feed.CatchUp asks the stream for the room's last
// sequence (one direct get) and, if it is past last, reads and delivers
// what is in between; copies still on their way live are then dropped as
// duplicates. A tail lost with no such signal is still noticed only with
// the room's next message.
//
// # Recovery: the seam
//
// A client keeps, per room, the seq and epoch of the last event it got (or
// of the join's ack) and re-joins with since: {seq, epoch}. The node:
//
//  1. registers the joiner as pending before it becomes a member, so the
//     fan-out holds its live events instead of sending them;
//  2. attaches it to the room's feed: under the feed's lock it reads the
//     position P; every event delivered before is <= P, every one after
//     is > P (and held);
//  3. reads the stream for (since, P] (Stream.Replay) and answers the join
//     with an ack {seq: P, epoch, recovered}, the session:list, then the
//     replayed events;
//  4. under the feed's lock, sends the held events above P and makes the
//     joiner an ordinary member.
//
// No event is missed (everything <= P is replayed, everything > P held or
// live) and none is repeated (the held events at or below P are dropped).
// If since is above P (the client saw, on another node, messages this one
// has not delivered yet), nothing is replayed and events up to since are
// skipped.
//
// recovered is false, and nothing is replayed, when since is from another
// epoch, or when messages after since may be gone: removal is oldest first
// within a room (by size) and across the stream (by age), so everything
// after since is still stored if since itself is; failing that (since was
// removed, or the client saw an empty room: since 0), if the stream removed
// nothing after since by age (its first sequence <= since+1) and the room
// has fewer than size messages after since. Otherwise the client refetches
// its state (a `history` page, or its own back-end).
//
// # Reads
//
// All reads use direct get batches ($JS.API.DIRECT.GET.<stream> with
// next_by_subj and batch): up to 512 messages of one room per round trip,
// served by any replica, no consumer to create. Query (the `history`
// message and rc.history.<room>) reads a page forward from `after`, or the
// newest messages below `before`, which scans the room (at most size
// messages).
//
// # Costs and limits
//
// Every message of a history room is stored and republished: one more hop
// inside the NATS server, file I/O, and about 40 bytes of headers on the
// way to each node; BenchmarkThroughput measures it. A history room
// delivers only what the stream stored: while JetStream is down or the
// stream is missing, its members get nothing live (and recover once it is
// back, within the history's limits). A refill runs on the room's shard
// goroutine and is bounded (2 s); a refill that fails leaves the gap and is
// counted (roomcast_history_refill_failures_total).
package history
