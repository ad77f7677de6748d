package room

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomcast/roomcast/pkg/history"
)

// Catch-up of history rooms (pkg/history: Feed.CatchUp). A feed sees a gap
// when the room's next message arrives; messages lost at the tail of a room
// that then goes quiet would wait for that next message. So when the node
// knows messages may have been lost on their way to it (its NATS connection
// came back, a room subscription was a slow consumer), the owner calls
// Hub.CatchUp, and one goroutine catches up every history room with local
// members, a few rooms at a time.
//
// Where the emits run: a feed's emit (roomHistory.emit) usually runs on the
// room's shard goroutine (Feed.Live); a catch-up runs it on a catch-up
// worker. Both hold the feed's lock, so a room's events still go out one at
// a time and in order, and the joiners' state is guarded as before. The
// rest of what emit touches is safe from any goroutine: the member list is
// a copy-on-write snapshot (room.members), the pending joiners a locked map
// (hubHistory), and Session.deliver queues on a Conn, which takes frames
// from many goroutines (shards, sessions, the direct drain).

const (
	// catchUpDelay: a pass starts this long after it is asked for, so that
	// messages already on their way (queued in a shard behind the burst
	// that overflowed it, in flight right after a reconnect) land first:
	// the pass then reads only what is really missing. Triggers during the
	// delay join the pass.
	catchUpDelay = 300 * time.Millisecond
	// catchUpWorkers rooms are caught up at a time: each is one direct get
	// (and a read when something is missing), so a node with 10,000 rooms
	// has a handful of requests open after a reconnect, not 10,000.
	catchUpWorkers = 8
	// catchUpTimeout bounds one room's catch-up; catchUpLookupTimeout the
	// lookup of a stream before a pass (an answer takes milliseconds; a
	// stream that does not answer holds up every room of the pass).
	catchUpTimeout       = historyTimeout
	catchUpLookupTimeout = 2 * time.Second
	// catchUpRetries passes follow one in which some rooms could not be
	// read (JetStream still electing a leader after a NATS restart),
	// catchUpRetryDelay, then twice that, and so on, apart.
	catchUpRetries    = 3
	catchUpRetryDelay = time.Second
)

// CatchUp asks for a pass over the history rooms with local members that
// delivers the messages this node missed at their tail, with no later
// message to reveal them. Call it when messages may have been lost on their
// way to the node: after the NATS connection came back, after a room
// subscription was a slow consumer. It returns at once; the pass starts
// catchUpDelay later. A trigger while a pass is pending joins it; one while
// a pass runs makes one more pass, however many there are. A no-op without
// Options.History.
func (h *Hub) CatchUp() {
	select {
	case h.catchUpSig <- struct{}{}:
	default: // a pass is pending already
	}
}

// catchUpLoop runs the passes CatchUp asks for until Close.
func (h *Hub) catchUpLoop() {
	defer h.wg.Done()
	runPasses(h.done, h.catchUpSig, catchUpDelay, catchUpRetryDelay, func() bool {
		p := h.catchUpPass(h.ctx)
		// With NATS gone, the reconnect asks for a pass of its own.
		return p.failed > 0 && h.natsUp()
	})
}

// runPasses runs pass, one at a time, delay after each request on sig,
// until done is closed. Requests that come during the delay join the
// pass; requests that come while it runs (sig holds one at most) make one
// more. When pass asks for a retry, it runs again retryDelay later, then
// twice that, up to catchUpRetries times, unless asked for meanwhile.
func runPasses(done, sig <-chan struct{}, delay, retryDelay time.Duration, pass func() (retry bool)) {
	var retry <-chan time.Time
	attempt := 0
	for {
		select {
		case <-done:
			return
		case <-sig:
			attempt = 0
		case <-retry:
		}
		retry = nil
		t := time.NewTimer(delay)
		select {
		case <-done:
			t.Stop()
			return
		case <-t.C:
		}
		select {
		case <-sig: // asked for during the delay: this pass covers it
		default:
		}
		if pass() && attempt < catchUpRetries {
			retry = time.After(retryDelay << attempt)
			attempt++
		}
	}
}

// catchUpResult sums up one pass.
type catchUpResult struct {
	rooms, msgs, failed int
	took                time.Duration
}

// catchUpPass catches up every history room with local members, at most
// catchUpWorkers at a time, and logs what it delivered. It stops handing
// out rooms when NATS goes away (the reconnect asks for another pass) or
// ctx ends.
func (h *Hub) catchUpPass(ctx context.Context) catchUpResult {
	var res catchUpResult
	if h.o.History == nil {
		return res
	}
	start := time.Now()
	h.mu.RLock()
	list := make([]*roomHistory, 0, len(h.rooms))
	for _, r := range h.rooms {
		if r.hist != nil {
			list = append(list, r.hist)
		}
	}
	h.mu.RUnlock()
	if len(list) == 0 {
		return res
	}
	var msgs, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	// The stream may have been deleted and created again while messages
	// did not reach the node: look each up once (a few streams, not one
	// request per room), so that feeds start over in a new one. The rooms
	// of a stream that does not answer are left for the retry: reading
	// them one by one would take a timeout each.
	reachable := make(map[*history.Stream]bool)
	for _, rh := range list {
		if _, seen := reachable[rh.st]; seen {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, catchUpLookupTimeout)
		err := rh.st.Refresh(sctx)
		cancel()
		reachable[rh.st] = err == nil
		if err != nil {
			firstErr.CompareAndSwap(nil, &err)
		}
	}
	work := make(chan *roomHistory)
	var wg sync.WaitGroup
	for range min(catchUpWorkers, len(list)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rh := range work {
				rctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
				n, err := rh.feed.CatchUp(rctx)
				cancel()
				msgs.Add(int64(n))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	for _, rh := range list {
		if ctx.Err() != nil || !h.natsUp() {
			break
		}
		res.rooms++
		if !reachable[rh.st] {
			failed.Add(1)
			continue
		}
		work <- rh
	}
	close(work)
	wg.Wait()
	res.msgs, res.failed, res.took = int(msgs.Load()), int(failed.Load()), time.Since(start)
	switch {
	case res.failed > 0 && (ctx.Err() != nil || !h.natsUp()):
		// Closing, or NATS went away (the reconnect asks for a pass).
		h.log.Debug("history catch-up interrupted", "rooms", res.rooms, "failed", res.failed, "messages", res.msgs)
	case res.failed > 0:
		h.log.Warn("history catch-up: some rooms could not be read; their members may miss messages until the next one",
			"rooms", res.rooms, "failed", res.failed, "messages", res.msgs, "err", *firstErr.Load())
	case res.msgs > 0:
		h.log.Info("history catch-up: delivered messages lost on the way to this node",
			"rooms", res.rooms, "messages", res.msgs, "took", res.took.Round(time.Millisecond))
	default:
		h.log.Debug("history catch-up: nothing missing", "rooms", res.rooms, "took", res.took.Round(time.Millisecond))
	}
	return res
}
