package presence

// Listener calls are queued per room under Tracker.mu, in the order the view
// changed, and made by whichever goroutine finds the queue idle ("draining"),
// with no lock held. So one room's calls never overlap or reorder, the
// Listener may call back into the Tracker, and no goroutine exists per room.

type eventKind uint8

const (
	evJoined            = eventKind(joined)
	evLeft              = eventKind(left)
	evUpdated           = eventKind(updated)
	evCounted eventKind = iota + 10
	evReset
)

type event struct {
	kind      eventKind
	m         Member
	count     int
	countOnly bool
}

// emitLocked turns view changes into queued Listener calls, applying the
// count-only mode, and reports whether the caller must drain r (after
// unlocking). Nothing is reported while r is building: its members get a
// full list when their join returns.
//
// Count-only: above CountOnlyAbove members a room reports only its size,
// throttled to one Counted per CountInterval (the timers goroutine sends the
// last one of a burst), and goes back to per-member calls below 3/4 of the
// threshold. Each switch is a Reset: clients need a new list.
func (t *Tracker) emitLocked(r *roomState, out []change) bool {
	if r.building || len(out) == 0 {
		return false
	}
	count := r.v.count
	switch {
	case r.countOnly && count*4 <= t.o.CountOnlyAbove*3:
		r.countOnly, r.countDirty = false, false
		r.queue = append(r.queue, event{kind: evReset, count: count})
	case r.countOnly:
		r.countDirty = true
		if now := t.now(); now-r.lastCount >= int64(t.o.CountInterval) {
			r.queue = append(r.queue, event{kind: evCounted, count: count})
			r.countDirty, r.lastCount = false, now
		}
	case t.o.CountOnlyAbove > 0 && count > t.o.CountOnlyAbove:
		r.countOnly, r.lastCount = true, t.now()
		r.queue = append(r.queue, event{kind: evReset, count: count, countOnly: true})
	default:
		for _, c := range out {
			r.queue = append(r.queue, event{kind: eventKind(c.kind), m: c.m, count: c.count})
		}
	}
	if len(r.queue) > 0 && !r.draining {
		r.draining = true
		return true
	}
	return false
}

// drain makes r's queued Listener calls until the queue is empty.
func (t *Tracker) drain(r *roomState) {
	for {
		t.mu.Lock()
		if len(r.queue) == 0 {
			r.queue, r.draining = nil, false
			t.mu.Unlock()
			return
		}
		ev := r.queue[0]
		r.queue[0] = event{}
		r.queue = r.queue[1:]
		l := t.listener
		t.mu.Unlock()
		if l == nil {
			continue
		}
		switch ev.kind {
		case evJoined:
			l.Joined(r.name, ev.m, ev.count)
		case evLeft:
			l.Left(r.name, ev.m, ev.count)
		case evUpdated:
			l.Updated(r.name, ev.m, ev.count)
		case evCounted:
			l.Counted(r.name, ev.count)
		case evReset:
			l.Reset(r.name, ev.count, ev.countOnly)
		}
	}
}

// flushCounts queues the Counted calls that throttling held back.
func (t *Tracker) flushCounts() {
	now := t.now()
	var drains []*roomState
	t.mu.Lock()
	for _, r := range t.rooms {
		if !r.countDirty || now-r.lastCount < int64(t.o.CountInterval) {
			continue
		}
		r.queue = append(r.queue, event{kind: evCounted, count: r.v.count})
		r.countDirty, r.lastCount = false, now
		if !r.draining {
			r.draining = true
			drains = append(drains, r)
		}
	}
	t.mu.Unlock()
	for _, r := range drains {
		t.drain(r)
	}
}
