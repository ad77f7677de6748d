package history

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// refillTimeout bounds one gap refill. The refill runs on the fan-out
// goroutine of the room's shard, so it must not hold it for long; past it
// the live message is delivered anyway (the gap stays, counted).
const refillTimeout = 2 * time.Second

// Feed turns one room's live messages on one node (rc.stored.<room>, in
// arrival order) into a stream with no hole, no duplicate and no reordering,
// which it passes to Emit. It refills gaps from the stream, drops duplicates
// and notices a reset stream. One Feed per room with local members.
//
// Emit and the functions given to Attach and Do run with the feed's lock
// held, so a member can join at an exact position: whatever Emit has passed
// on before Attach's function ran is at or below the position it is given,
// everything after is above it.
type Feed struct {
	st      *Stream
	room    string
	subject string // rc.room.<room>
	emit    func(m Msg, epoch string)

	mu      sync.Mutex
	ready   bool   // last is known: from the first Attach or live message
	settled bool   // a live message above the initial position was seen
	last    uint64 // sequence of the last message emitted (or the initial position)
	epoch   string
}

// NewFeed returns the feed of room, which must be a room of st. emit
// receives each message to deliver, in order, with the epoch to show.
func (st *Stream) NewFeed(room string, emit func(m Msg, epoch string)) *Feed {
	return &Feed{st: st, room: room, subject: st.s.o.Subjects.Room(room), emit: emit}
}

// Stream returns the stream the feed reads.
func (f *Feed) Stream() *Stream { return f.st }

// Live takes the next message of the room's live subscription. Call it from
// one goroutine, in arrival order. It may block for a refill (at most
// refillTimeout) when a message shows that earlier ones never arrived.
func (f *Feed) Live(m *nats.Msg) {
	seq, prev, ok := parseLive(m)
	if !ok || m.Header.Get(hdrStream) != f.st.name {
		// Not from our stream: someone published on rc.stored.<room>
		// by hand. Delivering it would break the sequence.
		f.st.s.m.Foreign.Inc()
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready {
		// No member has attached yet (members joined without a position:
		// auto-joined rooms, a back-end's join): the room starts here.
		f.start(prev)
	}
	f.accept(seq, prev, m)
}

// start makes the feed ready at position last; f.mu is held.
func (f *Feed) start(last uint64) {
	if f.st.Epoch() == "" {
		// The stream was not reachable when the node started.
		ctx, cancel := context.WithTimeout(context.Background(), refillTimeout)
		f.st.refresh(ctx)
		cancel()
	}
	f.ready, f.last, f.epoch = true, last, f.st.Epoch()
}

// accept delivers one live message; f.mu is held.
func (f *Feed) accept(seq, prev uint64, m *nats.Msg) {
	switch e := f.st.Epoch(); {
	case f.epoch == "":
		f.epoch = e // learnt late: not a reset
	case e != "" && e != f.epoch:
		f.reset(e)
	}
	if seq <= f.last {
		// Before the first new message, these are messages the initial
		// position already covers. After it, NATS does not deliver twice
		// or out of order: the stream was reset under us.
		if !f.settled || !f.checkReset() {
			return
		}
	}
	switch {
	case prev > f.last:
		f.refill(seq)
	case prev == 0 && f.last != 0:
		// Every earlier message of the room is gone: aged out, or this
		// is a new stream whose sequences happen to be higher.
		// After a reset last is 0 = prev: nothing to refill.
		f.checkReset()
	}
	f.emit(Msg{Seq: seq, Header: m.Header, Data: m.Data}, f.epoch)
	f.last = seq
	f.settled = true
}

// checkReset looks the stream up (rate-limited) and resets the feed if the
// stream is a new one; it reports whether it did.
func (f *Feed) checkReset() bool {
	ctx, cancel := context.WithTimeout(context.Background(), refillTimeout)
	defer cancel()
	f.st.refresh(ctx)
	switch e := f.st.Epoch(); {
	case f.epoch == "":
		f.epoch = e
	case e != "" && e != f.epoch:
		f.reset(e)
		return true
	}
	return false
}

// reset starts the feed over in a new stream incarnation: every message of
// the new stream is new to the members.
func (f *Feed) reset(epoch string) {
	f.epoch = epoch
	f.last = 0
	f.settled = false
}

// refill emits the stored messages between f.last and seq (both excluded).
// It reads them all first, so that the time members take to be sent to
// does not count against the read's deadline.
func (f *Feed) refill(seq uint64) {
	m := f.st.s.m
	ctx, cancel := context.WithTimeout(context.Background(), refillTimeout)
	defer cancel()
	var missed []Msg
	err := f.st.scan(ctx, f.subject, f.last+1, func(msg Msg) bool {
		if msg.Seq >= seq {
			return false
		}
		missed = append(missed, msg)
		return true
	})
	for _, msg := range missed { // on error, what could be read
		f.emit(msg, f.epoch)
		f.last = msg.Seq
	}
	m.Refills.Inc()
	m.Refilled.Add(float64(len(missed)))
	if err != nil {
		m.RefillFailures.Inc()
		f.st.s.log.Warn("history: gap refill failed; members miss messages", "room", f.room, "after", f.last, "before", seq, "err", err)
	}
}

// CatchUp emits the room's stored messages that never reached this node and
// that no later live message has revealed: those lost at the tail of the
// room before it went quiet (published while the node's NATS connection
// was down, or dropped by a subscription that fell behind). Nothing else
// would show them until the room's next message. It returns how many
// messages it emitted.
//
// It costs one direct get (the room's last sequence) when nothing is
// missing, and a read of the missing messages otherwise. Both happen
// without the feed's lock, so the room's live delivery waits only while
// the missed messages are emitted. Live messages at or below what it
// emitted that arrive afterwards (they were on their way) are dropped, as
// after Attach's lookup. A feed that is not ready has no position to catch
// up from (its members joined without one; the feed starts at the next
// live message): nothing to do.
//
// CatchUp trusts the stream's epoch as last looked up (Store's check, every
// few seconds): when the stream may have been reset meanwhile, such as
// after a reconnect, call Stream.Refresh first. If the epoch changed, the
// feed starts over in the new stream, as Live does, and every message of
// the room stored there is emitted. Safe to call from any goroutine,
// concurrently with Live, Attach and Do.
func (f *Feed) CatchUp(ctx context.Context) (int, error) {
	m := f.st.s.m
	f.mu.Lock()
	if !f.ready {
		f.mu.Unlock()
		return 0, nil
	}
	switch e := f.st.Epoch(); {
	case f.epoch == "":
		f.epoch = e
	case e != "" && e != f.epoch:
		f.reset(e)
	}
	from, epoch := f.last, f.epoch
	f.mu.Unlock()
	if epoch == "" {
		m.CatchUps.WithLabelValues("error").Inc()
		return 0, fmt.Errorf("%w: catch-up of room %s: stream %s not seen yet", ErrUnavailable, f.room, f.st.name)
	}

	last, err := f.st.lastSeq(ctx, f.subject)
	if err != nil {
		m.CatchUps.WithLabelValues("error").Inc()
		return 0, fmt.Errorf("history: catch-up of room %s: %w", f.room, err)
	}
	if last <= from {
		m.CatchUps.WithLabelValues("up_to_date").Inc()
		return 0, nil
	}
	var missed []Msg
	err = f.st.scan(ctx, f.subject, from+1, func(msg Msg) bool {
		if msg.Seq > last {
			return false // stored after the lookup: it arrives live
		}
		missed = append(missed, msg)
		return msg.Seq < last
	})
	if err != nil {
		err = fmt.Errorf("history: catch-up of room %s after seq %d: %w", f.room, from, err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.epoch != epoch {
		// The feed started over in a new stream meanwhile: what was read
		// belongs to the old one.
		return 0, err
	}
	n := 0
	for _, msg := range missed { // on error, what could be read
		if msg.Seq <= f.last {
			continue // delivered live (or refilled) while we read
		}
		f.emit(msg, f.epoch)
		f.last = msg.Seq
		n++
	}
	if n > 0 {
		// Copies of what was just emitted may still be on their way live:
		// like those an initial position covers, they are duplicates to
		// drop, not a sign that the stream was reset.
		f.settled = false
	}
	switch {
	case err != nil:
		m.CatchUps.WithLabelValues("error").Inc()
	case n > 0:
		m.CatchUps.WithLabelValues("caught_up").Inc()
	default:
		m.CatchUps.WithLabelValues("up_to_date").Inc()
	}
	m.CaughtUp.Add(float64(n))
	return n, err
}

// Attach calls fn with the room's current position, under the feed's lock:
// every message emitted before fn runs is at or below that position, every
// message emitted after it is above. The first Attach of a feed that has
// seen no live message asks the stream for the room's last sequence (one
// round trip); later ones do not. Live messages stored before that lookup
// but arriving after it are dropped as duplicates.
func (f *Feed) Attach(ctx context.Context, fn func(Position)) error {
	f.mu.Lock()
	if f.ready {
		fn(Position{Seq: f.last, Epoch: f.epoch})
		f.mu.Unlock()
		return nil
	}
	f.mu.Unlock()
	// The room's subscription is active (the caller subscribed before),
	// so whatever is stored after this lookup arrives live.
	epoch := f.st.Epoch()
	if epoch == "" {
		if err := f.st.ensure(ctx, false); err != nil {
			return err
		}
		epoch = f.st.Epoch()
	}
	last, err := f.st.lastSeq(ctx, f.subject)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready {
		f.ready, f.last, f.epoch = true, last, epoch
	}
	fn(Position{Seq: f.last, Epoch: f.epoch})
	return nil
}

// Do runs fn under the feed's lock: no message is emitted meanwhile.
func (f *Feed) Do(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}
