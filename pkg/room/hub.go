package room

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/pkg/bus"
	"github.com/roomcast/roomcast/pkg/frame"
	"github.com/roomcast/roomcast/pkg/history"
	"github.com/roomcast/roomcast/pkg/metrics"
	"github.com/roomcast/roomcast/pkg/presence"
)

// Conn is where a session's frames go: *loop.Conn in the node, a recorder in
// tests.
type Conn interface {
	// Send queues f and never blocks; f is shared by many connections and
	// must not be modified. An error means the connection is closing (slow
	// consumer, peer gone): the session is then released.
	Send(f *frame.Prepared) error
	// Close starts the close handshake; idempotent.
	Close(code uint16, reason string)
}

// NATS headers roomcast reads and writes on rc.room.<room> and friends.
const (
	// HeaderEvent names the event; absent means "message".
	HeaderEvent = "Rc-Event"
	// HeaderFrom is the sending session's id; absent for server publishes.
	HeaderFrom = "Rc-From"
	// HeaderNoEcho, set by a node for a client publish with "echo":false,
	// names the session that must not receive the message.
	HeaderNoEcho = "Rc-No-Echo"
	// HeaderUser, HeaderSession and HeaderMeta tell back-ends who sent a
	// `send` or `rpc` (rc.send.<session>, rc.rpc.<method>).
	HeaderUser    = "Rc-User"
	HeaderSession = "Rc-Session"
	HeaderMeta    = "Rc-Meta"
)

// Defaults for Options; each says why.
const (
	// DefaultMaxRooms per session: a tab rarely needs more than a handful;
	// 100 leaves room for apps that map documents to rooms.
	DefaultMaxRooms = 100
	// DefaultMaxMeta is the largest meta, in bytes (DESIGN.md: ≤ 4 KiB).
	DefaultMaxMeta = 4 << 10
	// DefaultRate and DefaultBurst: 20 messages/s sustained covers typing
	// indicators and cursors; a burst of 50 absorbs a reconnect's re-joins.
	DefaultRate  = 20
	DefaultBurst = 50
	// DefaultCloseAfter: after this many refused messages (net of accepted
	// ones, so the count decays while the client behaves) the session is
	// cut with 4008. At 10× the rate that is about 2.5 s of flooding.
	DefaultCloseAfter = 50
	// DefaultRPCTimeout is how long an rpc waits for the back-end.
	DefaultRPCTimeout = 5 * time.Second
	// DefaultMaxRPCInFlight bounds the rpc requests a node has open; each
	// holds one goroutine (~8 KiB) while it waits.
	DefaultMaxRPCInFlight = 1024
	// DefaultMaxReply is the largest rpc answer passed to a client, in
	// bytes: a quarter of the default per-connection queue (1 MiB), so one
	// answer cannot get its session cut as a slow consumer.
	DefaultMaxReply = 256 << 10
	// DefaultShards: room messages are delivered by this many goroutines
	// (shard = hash(room) % Shards), so a room's messages keep their order
	// and goroutines stay O(shards), not O(rooms). 4 keeps both cores busy
	// with headroom for a shard stalled on a big room.
	DefaultShards = 4
	// DefaultShardQueue is each shard channel's length. When a channel is
	// full nats.go drops the message for that room's subscription (counted
	// by Dropped). 8,192 pointers = 64 KiB per shard absorbs bursts of about
	// 100 ms at 80k msg/s.
	DefaultShardQueue = 8192
	// flushTimeout bounds the NATS round trip that makes a new room
	// subscription effective before the join is acknowledged.
	flushTimeout = 2 * time.Second
)

// RateLimit is a per-session token bucket over client messages.
type RateLimit struct {
	// PerSecond is the sustained rate; 0 means DefaultRate, negative means
	// no limit.
	PerSecond float64
	// Burst is the bucket size; 0 means DefaultBurst.
	Burst int
	// CloseAfter refusals (net of accepted messages) close with 4008;
	// 0 means DefaultCloseAfter.
	CloseAfter int
}

// Options configure a Hub. Node and NC are required.
type Options struct {
	// Node is this node's id, shown in welcome and used by presence.
	Node string
	// NC is the node's NATS connection.
	NC *nats.Conn
	// Subjects names the NATS subjects; the zero value uses prefix "rc".
	Subjects bus.Subjects
	// Logger; nil discards. Nothing is logged per message above debug.
	Logger *slog.Logger
	// Metrics; nil means an unregistered set.
	Metrics *metrics.Metrics
	// Presence is the node's presence tracker. The Hub becomes its
	// Listener and owns its lifecycle (Start, Close). Nil: the Hub makes
	// one with default options.
	Presence *presence.Tracker
	// PingInterval is only reported in welcome (the loop pings).
	PingInterval time.Duration
	// MaxRoomsPerSession; 0 means DefaultMaxRooms.
	MaxRoomsPerSession int
	// MaxMeta is the largest join meta in bytes; 0 means DefaultMaxMeta.
	MaxMeta int
	// RateLimit applies to every client message of a session.
	RateLimit RateLimit
	// RPCTimeout; 0 means DefaultRPCTimeout.
	RPCTimeout time.Duration
	// MaxRPCInFlight per node; 0 means DefaultMaxRPCInFlight. Past it,
	// rpc answers `unavailable` at once.
	MaxRPCInFlight int
	// MaxReply is the largest rpc answer in bytes; a larger one reaches the
	// client as error too_large. 0 means DefaultMaxReply.
	MaxReply int
	// Events says when lifecycle events are published (events.go); the
	// zero value is EventsAuto.
	Events EventsMode
	// Shards and ShardQueue size the room fan-out; 0 means the defaults.
	Shards, ShardQueue int
	// History says which rooms keep history (history.go); nil: none.
	History *history.Store
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New(nil)
	}
	if o.MaxRoomsPerSession <= 0 {
		o.MaxRoomsPerSession = DefaultMaxRooms
	}
	if o.MaxMeta <= 0 {
		o.MaxMeta = DefaultMaxMeta
	}
	if o.RateLimit.PerSecond == 0 {
		o.RateLimit.PerSecond = DefaultRate
	}
	if o.RateLimit.Burst <= 0 {
		o.RateLimit.Burst = DefaultBurst
	}
	if o.RateLimit.CloseAfter <= 0 {
		o.RateLimit.CloseAfter = DefaultCloseAfter
	}
	if o.RPCTimeout <= 0 {
		o.RPCTimeout = DefaultRPCTimeout
	}
	if o.MaxRPCInFlight <= 0 {
		o.MaxRPCInFlight = DefaultMaxRPCInFlight
	}
	if o.MaxReply <= 0 {
		o.MaxReply = DefaultMaxReply
	}
	if o.Shards <= 0 {
		o.Shards = DefaultShards
	}
	if o.ShardQueue <= 0 {
		o.ShardQueue = DefaultShardQueue
	}
}

// ErrUnavailable is returned by Publish while NATS is down.
var ErrUnavailable = errors.New("room: NATS is unavailable")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("room: hub closed")

// Hub holds a node's sessions and rooms. Safe for concurrent use.
type Hub struct {
	o    Options
	log  *slog.Logger
	nc   *nats.Conn
	pres *presence.Tracker

	start time.Time // base of the monotonic clock used by rate limits

	shards   []chan *nats.Msg
	direct   chan *nats.Msg
	rpcSlots chan struct{}
	events   *eventPub
	rpcWarn  [3]logLimiter // rpc answers not passed on as they came: bad Rc-Error, too large, not UTF-8

	ctx    context.Context // ends with Close; parent of rpc requests
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup

	// mu guards the maps and room membership changes. The fan-out only
	// takes it (read) to find a room; member lists are copy-on-write.
	mu         sync.RWMutex
	rooms      map[string]*room
	sessions   map[string]*Session
	users      map[string][]*Session // values are replaced, never modified
	directSubs []*nats.Subscription
	dropped    int // drops counted on room subscriptions since removed
	started    bool
	closed     atomic.Bool
	hist       hubHistory    // joiners of history rooms (history.go)
	catchUpSig chan struct{} // a catch-up pass is asked for (catchup.go)

	// Sessions whose connection is gone wait here for the reaper, so that
	// Closed never takes a lock its caller may hold (see Session.Closed).
	reapMu  sync.Mutex
	reapQ   []*Session
	reapSig chan struct{}

	// Collectors resolved once: WithLabelValues per message would hash.
	in          map[string]prometheus.Counter
	inInvalid   prometheus.Counter
	errs        map[string]prometheus.Counter
	outEvent    prometheus.Counter
	outPresence prometheus.Counter
	outReply    prometheus.Counter

	perNano    float64 // tokens per ns
	burst      float64
	closeAfter int32
	noLimit    bool
}

// room is one room with local members.
type room struct {
	name string
	// members is copy-on-write: writers replace the slice under Hub.mu,
	// the fan-out iterates a snapshot with no lock held.
	members atomic.Pointer[[]*Session]
	sub     *nats.Subscription
	// presMu orders presence output to the room's members: Listener calls
	// and the session:list sent to a joiner (see sendList).
	presMu sync.Mutex
	// hist is the room's history (history.go); nil if it keeps none.
	hist *roomHistory
}

// New makes a Hub; Start it before opening sessions.
func New(o Options) (*Hub, error) {
	if o.Node == "" {
		return nil, errors.New("room: Options.Node is required")
	}
	if o.NC == nil {
		return nil, errors.New("room: Options.NC is required")
	}
	o.setDefaults()
	h := &Hub{
		o:        o,
		log:      o.Logger,
		nc:       o.NC,
		pres:     o.Presence,
		start:    time.Now(),
		direct:   make(chan *nats.Msg, o.ShardQueue),
		rpcSlots: make(chan struct{}, o.MaxRPCInFlight),
		done:     make(chan struct{}),
		rooms:    make(map[string]*room),
		sessions: make(map[string]*Session),
		users:    make(map[string][]*Session),
		reapSig:  make(chan struct{}, 1),
		// One pending request at most: further ones join it.
		catchUpSig: make(chan struct{}, 1),
		in:         make(map[string]prometheus.Counter),
		errs:       make(map[string]prometheus.Counter),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if h.pres == nil {
		p, err := presence.New(presence.Options{Node: o.Node, NC: o.NC, Subjects: o.Subjects,
			Logger: o.Logger, Metrics: o.Metrics})
		if err != nil {
			return nil, fmt.Errorf("room: %w", err)
		}
		h.pres = p
	}
	h.pres.Listen(listener{h})
	h.events = newEventPub(h)
	o.Metrics.SetFanoutDropped(func() float64 { return float64(h.Dropped()) })
	for range o.Shards {
		h.shards = append(h.shards, make(chan *nats.Msg, o.ShardQueue))
	}
	m := o.Metrics
	for _, t := range []string{typeJoin, typeLeave, typePublish, typeSend, typeRPC, typePresence, typePing, typeHistory} {
		h.in[t] = m.MessagesIn.WithLabelValues(t)
	}
	h.inInvalid = m.MessagesIn.WithLabelValues("invalid")
	for _, c := range errorCodes {
		h.errs[c] = m.Errors.WithLabelValues(c)
	}
	h.outEvent = m.MessagesOut.WithLabelValues("event")
	h.outPresence = m.MessagesOut.WithLabelValues("presence")
	h.outReply = m.MessagesOut.WithLabelValues("reply")
	rl := o.RateLimit
	h.noLimit = rl.PerSecond < 0
	h.perNano = rl.PerSecond / 1e9
	h.burst = float64(rl.Burst)
	h.closeAfter = int32(rl.CloseAfter)
	return h, nil
}

// Start subscribes to direct messages (rc.session.*, rc.user.>), starts the
// delivery goroutines and the presence tracker. ctx is not retained: Close
// stops the Hub.
func (h *Hub) Start(ctx context.Context) error {
	if err := h.startLocked(ctx); err != nil {
		return err
	}
	// Direct messages published once Start returns reach this node.
	if err := h.nc.FlushTimeout(flushTimeout); err != nil {
		h.log.Warn("room: flush subscriptions", "err", err)
	}
	return nil
}

func (h *Hub) startLocked(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started {
		return nil
	}
	if h.closed.Load() {
		return ErrClosed
	}
	// Direct messages use two wildcard subscriptions for the whole node,
	// not one per session: a session costs no subscription (memory here and
	// in the server's interest graph, churn on every connect), at the price
	// of every node receiving every direct message and dropping those for
	// sessions it does not hold. Direct traffic is per-user and small next
	// to room traffic, so the trade is worth it; a deployment with heavy
	// direct traffic could switch to per-session subscriptions here.
	for _, subj := range []string{h.o.Subjects.Session("*"), h.o.Subjects.User(">")} {
		sub, err := h.nc.ChanSubscribe(subj, h.direct)
		if err != nil {
			return fmt.Errorf("room: subscribe %s: %w", subj, err)
		}
		h.directSubs = append(h.directSubs, sub)
	}
	if err := h.events.start(); err != nil {
		return err
	}
	if err := h.pres.Start(ctx); err != nil {
		return fmt.Errorf("room: %w", err)
	}
	h.started = true
	h.wg.Add(len(h.shards) + 2)
	for _, ch := range h.shards {
		go h.drainShard(ch)
	}
	go h.drainDirect()
	go h.reaper()
	if h.o.History != nil {
		h.wg.Add(1)
		go h.catchUpLoop()
	}
	return nil
}

// Close stops the Hub: room and direct subscriptions end, presence
// announces that every local member left, pending rpc requests are
// cancelled. Connections are left to the caller (the loop drains them).
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed.Swap(true) {
		h.mu.Unlock()
		return nil
	}
	for _, r := range h.rooms {
		_ = r.sub.Unsubscribe()
	}
	for _, s := range h.directSubs {
		_ = s.Unsubscribe()
	}
	h.events.stop()
	h.mu.Unlock()
	err := h.pres.Close()
	h.cancel()
	close(h.done)
	h.wg.Wait()
	return err
}

// Sessions is the number of open sessions.
func (h *Hub) Sessions() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.sessions)
}

// Rooms is the number of rooms with local members.
func (h *Hub) Rooms() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.rooms)
}

// Dropped is the number of room messages nats.go dropped because a shard
// channel was full (a slow fan-out), since the Hub started.
func (h *Hub) Dropped() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := h.dropped
	for _, r := range h.rooms {
		if d, err := r.sub.Dropped(); err == nil {
			n += d
		}
	}
	return n
}

// Publish sends data to every session in room, on every node, as event
// (default "message") with no sender: the same NATS message any app service
// would publish (POST /_/publish uses it). Errors: an invalid room or event
// (a *names error or plain error, for a 400), ErrUnavailable.
func (h *Hub) Publish(ctx context.Context, room, event string, data []byte) error {
	if err := checkRoom(room); err != nil {
		return err
	}
	if event == "" {
		event = "message"
	}
	if err := checkEvent(event); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !h.natsUp() {
		return ErrUnavailable
	}
	msg := &nats.Msg{Subject: h.o.Subjects.Room(room), Data: data, Header: nats.Header{}}
	msg.Header.Set(HeaderEvent, event)
	if err := h.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("room: publish %s: %w", room, errors.Join(ErrUnavailable, err))
	}
	return nil
}

// natsUp reports whether NATS takes publishes now. While reconnecting,
// nats.go would buffer (or, as the node configures it, refuse): either way
// the client is better told `unavailable` at once.
func (h *Hub) natsUp() bool { return h.nc.Status() == nats.CONNECTED }

// clock is the Hub's monotonic time in ns, for rate limits.
func (h *Hub) clock() int64 { return int64(time.Since(h.start)) }

func (h *Hub) countError(code string) {
	if c := h.errs[code]; c != nil {
		c.Inc()
	}
}
