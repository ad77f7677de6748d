package presence

import "encoding/json"

// Member is one session in one room. The JSON form is the one clients see in
// session:list entries.
type Member struct {
	Session string `json:"session"`
	User    string `json:"user"`
	// Meta is the member's metadata in this room: compact JSON, or nil.
	Meta json.RawMessage `json:"meta"`
	// ConnectedAt is when the session joined the room, in unix milliseconds.
	ConnectedAt int64 `json:"connected_at"`
}

// Listener hears presence changes, for members on every node including the
// local one.
//
// Concurrency: calls for one room are serialized and in the order the view
// changed; calls for different rooms may run concurrently. The tracker holds
// none of its locks while calling, so a Listener may call Members, Count or
// View (but should not block: calls run on whichever goroutine made the
// change, including the one that applies NATS messages). m is a copy the
// Listener may keep; m.Meta must not be modified.
//
// A room that has no local members left hears nothing.
type Listener interface {
	// Joined: m is now in room; count is the room's size after the change.
	Joined(room string, m Member, count int)
	// Left: m is no longer in room.
	Left(room string, m Member, count int)
	// Updated: m, already in room, has new metadata.
	Updated(room string, m Member, count int)
	// Counted replaces the three calls above in count-only rooms: the size
	// of room changed. It comes at most once per Options.CountInterval.
	Counted(room string, count int)
	// Reset: room switched between full and count-only presence (View
	// tells which); clients need a fresh list.
	Reset(room string, count int, countOnly bool)
}

// Delta ops on rc.presence.<room>.
const (
	opJoin   = "join"
	opLeave  = "leave"
	opUpdate = "update"
	opDigest = "digest" // anti-entropy: the sender's era, seq and count
	opBye    = "bye"    // the sender leaves the room entirely (shutdown)
)

// delta is the JSON body of every message on rc.presence.<room>.
type delta struct {
	Op   string `json:"op"`
	Node string `json:"node"`
	// Inc is the sender's incarnation (its start time, unix ns); Epoch counts
	// the sender's entries into rooms, so (Inc, Epoch) orders its eras in a
	// room. Seq counts the deltas of one era from 1.
	Inc   uint64 `json:"inc"`
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
	// Member is set for join and update.
	Member *Member `json:"member,omitempty"`
	// Session is set for leave.
	Session string `json:"session,omitempty"`
	// Count is the sender's local member count, for digests.
	Count int `json:"count,omitempty"`
}

func (d *delta) gen() gen { return gen{d.Inc, d.Epoch} }

// snapRequest is the body of a snapshot request, scattered to
// rc.presence.$snap.<room> or aimed at rc.presence.$node.<inc>. With
// Digests set (and no Room) it is not a request but a plain message to
// rc.presence.$node.<inc>: "publish your digests now", sent by a node that
// just saw the receiver come back and has to find out where it has members.
type snapRequest struct {
	Node    string `json:"node"`
	Room    string `json:"room,omitempty"`
	Digests bool   `json:"digests,omitempty"`
}

// heartbeat is the body of rc.presence.$hb: one per node per
// Options.Heartbeat, and a last one with Bye set on Close.
type heartbeat struct {
	Node string `json:"node"`
	Inc  uint64 `json:"inc"`
	Bye  bool   `json:"bye,omitempty"`
}

// snapshot is one part of a node's answer to a snapshot request: its local
// members of the room as of (Inc, Epoch, Seq). Large answers are split in
// parts (NATS max payload); Last marks the final part.
type snapshot struct {
	Node  string `json:"node"`
	Inc   uint64 `json:"inc"`
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
	// Nodes lists the nodes with members in the room in the answering
	// node's view, so a requester knows whom else to wait for.
	Nodes   []string `json:"nodes,omitempty"`
	Part    int      `json:"part"`
	Last    bool     `json:"last"`
	Members []Member `json:"members"`
}

func (s *snapshot) gen() gen { return gen{s.Inc, s.Epoch} }

// sealed is the sequence of an answer from a node without members in the
// room: every delta of every era up to the answer's is then stale.
const sealed = ^uint64(0)
