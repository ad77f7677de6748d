package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/bus"
	"github.com/roomcast/roomcast/pkg/metrics"
)

// Defaults for Options; each comment says why.
const (
	// DefaultSnapshotWait bounds a first join's scatter-gather. Usually the
	// wait ends much sooner: at once when no other node has members (NATS
	// "no responders"), or when every node the answers name has answered
	// (one round trip). The full wait is only paid when a node listed by
	// others does not answer (it just died), and a joining client should
	// not stall longer than a blink for that.
	DefaultSnapshotWait = 250 * time.Millisecond
	// DefaultResyncTimeout bounds a resync request to one node. Resyncs do
	// not block anyone, so this can be generous enough for a loaded node.
	DefaultResyncTimeout = 2 * time.Second
	// DefaultAntiEntropy is the digest interval. A node silent in a room
	// is dropped from it after expiryIntervals × AntiEntropy = 15 s: the
	// last resort, as heartbeats and memberlist drop a dead node in ≤ 5 s.
	// With N rooms per node it costs N/AntiEntropy small messages a second
	// (10,000 rooms: 2,000 msg/s per node).
	DefaultAntiEntropy = 5 * time.Second
	// DefaultCountOnlyAbove is the room size above which presence turns
	// count-only: past it, one join or leave would cost one message per
	// member on every churn, and a list is too long for a person to read.
	DefaultCountOnlyAbove = 1000
	// DefaultCountInterval is the least time between two Counted calls for
	// a room: a counter on screen needs no more than about one update a
	// second.
	DefaultCountInterval = time.Second
	// DefaultQueueLen is the channel every presence subscription feeds.
	// nats.go drops what does not fit; a drop is a sequence gap, repaired
	// by a resync, so this only needs to absorb bursts (8 KiB of pointers
	// per 1,024 entries).
	DefaultQueueLen = 8192
	// DefaultHeartbeat is the heartbeat period. With deadBeats = 3 a node
	// that stops (SIGKILL, partition) is dropped 3–3.25 s after its last
	// heartbeat, so within 2–3.25 s of dying (its last beat was up to one
	// period before): inside the 5 s goal with NATS alone. Cost: one
	// ~50-byte message per node per second, received by every node (N²
	// deliveries a second cluster-wide: 2,500 for 50 nodes).
	DefaultHeartbeat = time.Second

	// expiryIntervals: a node silent in a room for this many digest
	// intervals is dropped from it. 3 tolerates one lost digest and jitter.
	expiryIntervals = 3
	// resyncWorkers bound the resync requests in flight: a restarted node
	// may need a resync in every room it shares with us at once.
	resyncWorkers = 2

	// deadBeats: a node whose heartbeats are silent this many periods is
	// gone. 3 tolerates one lost heartbeat and a second of scheduling
	// jitter on a loaded machine.
	deadBeats = 3
	// deafBeats: when our own heartbeat has not come back for this many
	// periods, the silence is ours (NATS is down or slow for us), and no
	// other node is declared dead for it.
	deafBeats = 2
	// hbQueueLen is the channel of the heartbeat subscription: N nodes send
	// N heartbeats a second, handled at once, so 1,024 absorbs any burst.
	hbQueueLen = 1024
	// forgetAfter: a gone node's liveness record is dropped after this
	// long; one that comes back later is resynced by its digests instead
	// of at once.
	forgetAfter = 10 * time.Minute
)

// ErrClosed is returned by Join after Close.
var ErrClosed = errors.New("presence: tracker closed")

// Options configure a Tracker. Node and NC are required.
type Options struct {
	// Node is this node's id, unique in the cluster.
	Node string
	// NC is the node's NATS connection.
	NC *nats.Conn
	// Subjects names the NATS subjects; the zero value uses prefix "rc".
	Subjects bus.Subjects
	// Logger receives faults and resyncs at debug/warn; nil discards.
	Logger *slog.Logger
	// Metrics counts resyncs (PresenceResyncs) and what the heartbeats see
	// of other nodes (PeerEvents, source heartbeat); nil means an
	// unregistered set. The count of nodes alive is Peers.
	Metrics *metrics.Metrics
	// SnapshotWait bounds the snapshot gathering of a first local join;
	// 0 means DefaultSnapshotWait.
	SnapshotWait time.Duration
	// ResyncTimeout bounds a resync request; 0 means DefaultResyncTimeout.
	ResyncTimeout time.Duration
	// AntiEntropy is the digest interval; 0 means DefaultAntiEntropy.
	AntiEntropy time.Duration
	// CountOnlyAbove is the room size past which a room turns count-only:
	// the Listener hears Counted instead of Joined/Left/Updated, and View
	// returns no members. The room turns back below 3/4 of it (hysteresis,
	// so a room hovering at the threshold does not flap). 0 means
	// DefaultCountOnlyAbove; a negative value never turns count-only.
	CountOnlyAbove int
	// CountInterval is the least time between Counted calls for a room;
	// 0 means DefaultCountInterval.
	CountInterval time.Duration
	// QueueLen is the length of the channel fed by every presence
	// subscription; 0 means DefaultQueueLen.
	QueueLen int
	// Heartbeat is the period of this node's heartbeat on
	// rc.presence.$hb, the NATS-based liveness signal (see liveness.go);
	// 0 means DefaultHeartbeat, a negative value sends and watches none
	// (liveness then comes only from NodeFailed/NodeGone callers and the
	// anti-entropy expiry).
	Heartbeat time.Duration
	// DeadAfter is how long a node's heartbeats may stay silent before its
	// members are dropped; 0 means deadBeats × Heartbeat. It is raised to
	// at least (deafBeats+1) × Heartbeat, so that our own missing heartbeat
	// (we are cut off, not them) is always noticed first.
	DeadAfter time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New(nil)
	}
	if o.SnapshotWait <= 0 {
		o.SnapshotWait = DefaultSnapshotWait
	}
	if o.ResyncTimeout <= 0 {
		o.ResyncTimeout = DefaultResyncTimeout
	}
	if o.AntiEntropy <= 0 {
		o.AntiEntropy = DefaultAntiEntropy
	}
	if o.CountOnlyAbove == 0 {
		o.CountOnlyAbove = DefaultCountOnlyAbove
	}
	if o.CountInterval <= 0 {
		o.CountInterval = DefaultCountInterval
	}
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.Heartbeat > 0 {
		if o.DeadAfter <= 0 {
			o.DeadAfter = deadBeats * o.Heartbeat
		}
		o.DeadAfter = max(o.DeadAfter, (deafBeats+1)*o.Heartbeat)
	}
}

// Tracker is a node's presence: its local members, and for each room with
// local members a replicated view of the room's members on every node. Safe
// for concurrent use.
//
// It holds a fixed number of goroutines (one applies NATS messages, one runs
// the digest and count timers, resyncWorkers ask for resyncs, one sends and
// watches heartbeats) and one NATS subscription per room per kind, all
// feeding one channel: no goroutine per room or per member.
type Tracker struct {
	o     Options
	log   *slog.Logger
	nc    *nats.Conn
	inc   uint64
	start time.Time

	// Subject prefixes, built once.
	deltaPrefix string // rc.presence.
	snapPrefix  string // rc.presence.$snap.
	nodeSubject string // rc.presence.$node.<inc>: resyncs aimed at this incarnation

	msgs    chan *nats.Msg
	resyncs chan resyncReq
	done    chan struct{}
	// ctx ends with Close; resync requests use it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Liveness (liveness.go): heartbeats come on their own subscription and
	// goroutine, so a backlog of deltas never delays them.
	hbSubject string // rc.presence.$hb
	hbBeat    []byte // this node's heartbeat body, built once
	hbs       chan *nats.Msg

	// epochs numbers this node's eras in rooms; read and bumped under mu so
	// that an empty snapshot answer seals every era before it.
	epochs atomic.Uint64

	mu       sync.Mutex
	rooms    map[string]*roomState
	listener Listener
	nodeSub  *nats.Subscription
	hbSub    *nats.Subscription
	started  bool
	closed   bool

	// peers is what liveness knows of every other node; selfHeard is when
	// our own heartbeat last came back (tracker clock; 0 = never).
	peers     map[string]*peer
	selfHeard int64
	// hbEvents count what the heartbeats see of other nodes (unregistered
	// without heartbeats).
	hbEvents metrics.PeerCounters
}

// roomState is one room with local members. Guarded by Tracker.mu.
type roomState struct {
	name  string
	v     *view
	epoch uint64 // this node's era in the room
	seq   uint64 // last delta sequence this node sent in the era

	deltaSub, snapSub *nats.Subscription

	building bool          // the first snapshot is being gathered
	ready    chan struct{} // closed when building ends
	early    []delta       // deltas that raced the snapshot

	// Listener calls not yet made, in order; draining: someone is making them.
	queue    []event
	draining bool

	countOnly  bool
	countDirty bool  // the count changed since the last Counted
	lastCount  int64 // when Counted was last queued (tracker clock)
}

// New makes a Tracker. Call Listen, then Start.
func New(o Options) (*Tracker, error) {
	if o.Node == "" {
		return nil, errors.New("presence: Options.Node is required")
	}
	if o.NC == nil {
		return nil, errors.New("presence: Options.NC is required")
	}
	o.setDefaults()
	t := &Tracker{
		o:     o,
		log:   o.Logger,
		nc:    o.NC,
		inc:   uint64(time.Now().UnixNano()),
		start: time.Now(),
		msgs:  make(chan *nats.Msg, o.QueueLen),
		// Resyncs beyond this backlog are dropped; the next digest retries.
		resyncs: make(chan resyncReq, 1024),
		done:    make(chan struct{}),
		rooms:   make(map[string]*roomState),
		hbs:     make(chan *nats.Msg, hbQueueLen),
		peers:   make(map[string]*peer),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	base := o.Subjects.Presence("")
	t.deltaPrefix = base + "."
	t.snapPrefix = base + ".$snap."
	t.nodeSubject = base + ".$node." + strconv.FormatUint(t.inc, 10)
	t.hbSubject = base + ".$hb"
	t.hbBeat, _ = json.Marshal(heartbeat{Node: o.Node, Inc: t.inc})
	events := o.Metrics
	if o.Heartbeat < 0 {
		events = metrics.New(nil) // no heartbeats: export no heartbeat series
	}
	t.hbEvents = events.PeerEventsOf(metrics.SourceHeartbeat)
	return t, nil
}

// Listen sets the Listener. The room.Hub calls it when it is given the
// Tracker; changes before Listen are not reported.
func (t *Tracker) Listen(l Listener) {
	t.mu.Lock()
	t.listener = l
	t.mu.Unlock()
}

// Node is this node's id.
func (t *Tracker) Node() string { return t.o.Node }

// Incarnation identifies this run of the node (its start time, unix ns).
func (t *Tracker) Incarnation() uint64 { return t.inc }

// Start subscribes to resync requests for this incarnation and starts the
// tracker's goroutines. Idempotent; ctx is not retained (use Close to stop).
func (t *Tracker) Start(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.started || t.closed {
		return nil
	}
	sub, err := t.nc.ChanSubscribe(t.nodeSubject, t.msgs)
	if err != nil {
		return fmt.Errorf("presence: subscribe %s: %w", t.nodeSubject, err)
	}
	t.nodeSub = sub
	if t.o.Heartbeat > 0 {
		hb, err := t.nc.ChanSubscribe(t.hbSubject, t.hbs)
		if err != nil {
			_ = sub.Unsubscribe()
			return fmt.Errorf("presence: subscribe %s: %w", t.hbSubject, err)
		}
		t.hbSub = hb
		t.wg.Add(1)
		go t.liveness()
	}
	t.started = true
	t.wg.Add(2 + resyncWorkers)
	go t.process()
	go t.timers()
	for range resyncWorkers {
		go t.resyncWorker()
	}
	return nil
}

// Close announces that every local member left (one "bye" per room, so
// other nodes drop them at once), unsubscribes and stops the goroutines.
// Idempotent. The Listener hears nothing about the local leaves.
func (t *Tracker) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for _, r := range t.rooms {
		if len(r.v.local().members) > 0 {
			r.seq++
			t.sendLocked(r, &delta{Op: opBye, Seq: r.seq})
		}
		t.unsubscribeLocked(r)
	}
	t.rooms = make(map[string]*roomState)
	if t.nodeSub != nil {
		_ = t.nodeSub.Unsubscribe()
	}
	if t.hbSub != nil {
		_ = t.hbSub.Unsubscribe()
		// A last heartbeat saying goodbye: other nodes stop watching this
		// incarnation instead of declaring it dead in a few seconds.
		t.heartbeatLocked(true)
	}
	t.mu.Unlock()
	// Push the byes out before the caller closes the connection.
	if t.nc.IsConnected() {
		_ = t.nc.FlushTimeout(time.Second)
	}
	close(t.done)
	t.cancel()
	t.wg.Wait()
	return nil
}

// Join adds (or updates) a local member. On the first local join of a room
// it subscribes to the room's presence and gathers a snapshot from the
// other nodes before returning (bounded by Options.SnapshotWait and ctx), so
// that Members is complete when Join returns. Joins of the same room wait
// for that snapshot too. Joining again with other metadata keeps the
// original ConnectedAt and reports Updated.
func (t *Tracker) Join(ctx context.Context, room string, m Member) error {
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return ErrClosed
		}
		r := t.rooms[room]
		if r == nil {
			nr, err := t.openRoomLocked(room, m)
			t.mu.Unlock()
			if err != nil {
				return err
			}
			t.build(ctx, nr)
			return nil
		}
		if r.building {
			ready := r.ready
			t.mu.Unlock()
			select {
			case <-ready:
				continue
			case <-ctx.Done():
				return fmt.Errorf("presence: join %s: %w", room, ctx.Err())
			}
		}
		if old, ok := r.v.local().members[m.Session]; ok {
			m.ConnectedAt = old.ConnectedAt
		}
		var out []change
		r.v.setLocal(m, &out)
		if len(out) == 0 {
			t.mu.Unlock()
			return nil
		}
		op := opJoin
		if out[0].kind == updated {
			op = opUpdate
		}
		r.seq++
		t.sendLocked(r, &delta{Op: op, Seq: r.seq, Member: &m})
		drain := t.emitLocked(r, out)
		t.mu.Unlock()
		if drain {
			t.drain(r)
		}
		return nil
	}
}

// openRoomLocked starts tracking room with its first local member m: it
// subscribes to the deltas, then announces m (so that a node building the
// same view concurrently sees us at least through the delta).
func (t *Tracker) openRoomLocked(room string, m Member) (*roomState, error) {
	r := &roomState{
		name:     room,
		v:        newView(t.o.Node),
		epoch:    t.epochs.Add(1),
		building: true,
		ready:    make(chan struct{}),
	}
	sub, err := t.nc.ChanSubscribe(t.o.Subjects.Presence(room), t.msgs)
	if err != nil {
		return nil, fmt.Errorf("presence: join %s: subscribe: %w", room, err)
	}
	r.deltaSub = sub
	t.rooms[room] = r
	var out []change
	r.v.setLocal(m, &out)
	r.seq = 1
	t.sendLocked(r, &delta{Op: opJoin, Seq: 1, Member: &m})
	return r, nil
}

// Leave removes a local member; a no-op if it is not there. The last local
// leave of a room drops the room's view and subscriptions.
func (t *Tracker) Leave(room, session string) {
	t.mu.Lock()
	r := t.rooms[room]
	if r == nil || t.closed {
		t.mu.Unlock()
		return
	}
	var out []change
	if !r.v.removeLocal(session, &out) {
		t.mu.Unlock()
		return
	}
	r.seq++
	t.sendLocked(r, &delta{Op: opLeave, Seq: r.seq, Session: session})
	if len(r.v.local().members) == 0 && !r.building {
		// Nobody here is left to tell.
		t.dropRoomLocked(r)
		t.mu.Unlock()
		return
	}
	drain := t.emitLocked(r, out)
	t.mu.Unlock()
	if drain {
		t.drain(r)
	}
}

func (t *Tracker) dropRoomLocked(r *roomState) {
	t.unsubscribeLocked(r)
	if t.rooms[r.name] == r {
		delete(t.rooms, r.name)
	}
	r.queue = nil
}

func (t *Tracker) unsubscribeLocked(r *roomState) {
	for _, s := range []*nats.Subscription{r.deltaSub, r.snapSub} {
		if s != nil {
			_ = s.Unsubscribe()
		}
	}
	r.deltaSub, r.snapSub = nil, nil
}

// Members returns every member of room on every node, ordered by
// connected_at then session; nil if room has no local members.
func (t *Tracker) Members(room string) []Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.rooms[room]; r != nil {
		return r.v.members()
	}
	return nil
}

// Count returns the number of members of room on every node; 0 if room has
// no local members.
func (t *Tracker) Count(room string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.rooms[room]; r != nil {
		return r.v.count
	}
	return 0
}

// View returns what a client should be shown for room, atomically: the
// members (nil in count-only mode), the count, and whether the room is
// count-only.
func (t *Tracker) View(room string) (members []Member, count int, countOnly bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.rooms[room]
	if r == nil {
		return nil, 0, false
	}
	if r.countOnly {
		return nil, r.v.count, true
	}
	return r.v.members(), r.v.count, false
}

// Rooms returns the number of rooms with local members.
func (t *Tracker) Rooms() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.rooms)
}

// now is the tracker's monotonic clock, in ns since New.
func (t *Tracker) now() int64 { return int64(time.Since(t.start)) }
