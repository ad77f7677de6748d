package history

import (
	"context"
	"fmt"
)

// Limits of Query; each says why.
const (
	// DefaultLimit: one screen of chat.
	DefaultLimit = 100
	// MaxLimit bounds one page: it travels as one WebSocket message, which
	// must stay well under the per-connection queue (1 MiB by default).
	MaxLimit = 1000
)

// Replay returns room's messages after since, up to and including at.Seq,
// in order, for a member that joins at position at (see Feed.Attach).
//
// recovered says whether that is everything the member missed. It is
// false when since is from another epoch (the stream was reset) or ahead
// of the room's last stored message, and when messages after since may
// have been removed from
// the stream, by size or age: then msgs is nil and the client must refetch
// its state. Removal is oldest first within a room, so messages after since
// are all still stored when since itself still is (the usual case: since
// is the last event the client saw); failing that, when the stream has
// removed nothing after since by age (its first sequence is at most
// since+1) and the room holds fewer messages after since than its size.
//
// since may be above at.Seq when the client saw, on another node, messages
// this node has not delivered yet; recovered is then true with nothing to
// replay, and the caller must not deliver the member what is at or below
// since.
func (st *Stream) Replay(ctx context.Context, room string, since, at Position) (msgs []Msg, recovered bool, err error) {
	m := st.s.m
	defer func() {
		switch {
		case err != nil:
			m.Recoveries.WithLabelValues("error").Inc()
		case recovered:
			m.Recoveries.WithLabelValues("recovered").Inc()
			m.Replayed.Add(float64(len(msgs)))
		default:
			m.Recoveries.WithLabelValues("not_recovered").Inc()
		}
	}()
	if since.Epoch != at.Epoch {
		return nil, false, nil
	}
	if since.Seq == at.Seq {
		return nil, true, nil
	}
	if since.Seq > at.Seq {
		// This node has not delivered yet what the client saw on another
		// one: nothing to replay, as long as the client's position is a
		// real one (not past the room's last stored message).
		last, err := st.lastSeq(ctx, st.s.o.Subjects.Room(room))
		if err != nil {
			return nil, false, err
		}
		return nil, since.Seq <= last, nil
	}
	size := st.cfg.Size
	proven := false // since itself is still stored
	first := true
	count := 0 // messages after since, up to size
	err = st.scan(ctx, st.s.o.Subjects.Room(room), since.Seq, func(msg Msg) bool {
		if first {
			first = false
			if msg.Seq == since.Seq {
				proven = true
				return true
			}
		}
		count++
		if msg.Seq <= at.Seq {
			msgs = append(msgs, msg)
			return true
		}
		// Past at: only counting, for the second proof.
		return !proven && count < size
	})
	if err != nil {
		return nil, false, err
	}
	if !proven {
		if count >= size {
			return nil, false, nil
		}
		s, err := st.s.js.Stream(ctx, st.name)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if s.CachedInfo().State.FirstSeq > since.Seq+1 {
			return nil, false, nil
		}
	}
	return msgs, true, nil
}

// Query selects a page of a room's history (the `history` client message
// and rc.history.<room>).
type Query struct {
	// Limit is the most messages returned: 0 means DefaultLimit, more than
	// MaxLimit means MaxLimit.
	Limit int `json:"limit,omitempty"`
	// Before, if set, returns the newest messages with a lower sequence
	// (paging back from the oldest one a client has).
	Before uint64 `json:"before,omitempty"`
	// After, if set, returns the oldest messages with a higher sequence
	// (paging forward); with Before too, those between both.
	After uint64 `json:"after,omitempty"`
}

// Page is the answer to a Query.
type Page struct {
	// Msgs are in sequence order, oldest first.
	Msgs []Msg
	// Last is the room's newest sequence (0: nothing stored), so a client
	// knows whether it has everything.
	Last  uint64
	Epoch string
}

// Query reads a page of room's history. With After it reads forward from
// there; otherwise it returns the newest messages (below Before, if set),
// which takes a scan of the room's stored messages, at most its size.
func (st *Stream) Query(ctx context.Context, room string, q Query) (Page, error) {
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	st.s.m.Queries.Inc()
	subject := st.s.o.Subjects.Room(room)
	p := Page{Epoch: st.Epoch()}
	var err error
	if p.Last, err = st.lastSeq(ctx, subject); err != nil {
		return Page{}, err
	}
	if q.After > 0 {
		err = st.scan(ctx, subject, q.After+1, func(m Msg) bool {
			if q.Before > 0 && m.Seq >= q.Before {
				return false
			}
			p.Msgs = append(p.Msgs, m)
			return len(p.Msgs) < limit
		})
		return p, err
	}
	// The newest `limit` below Before: a ring over a forward scan.
	ring := make([]Msg, 0, min(limit, st.cfg.Size))
	next := 0
	err = st.scan(ctx, subject, 1, func(m Msg) bool {
		if q.Before > 0 && m.Seq >= q.Before {
			return false
		}
		if len(ring) < limit {
			ring = append(ring, m)
			return true
		}
		ring[next] = m
		next = (next + 1) % limit
		return true
	})
	if err != nil {
		return Page{}, err
	}
	p.Msgs = append(ring[next:len(ring):len(ring)], ring[:next]...)
	return p, nil
}
