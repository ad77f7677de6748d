package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// ResilientOptions configure DialResilient.
type ResilientOptions struct {
	// Options apply to every connection. OnEvent, EventBuffer and
	// BlockOnFullEvents are not used: events arrive on Resilient.Events.
	Options
	// URL returns where to connect. It is called before every attempt
	// (attempt 0 is the first), because a one-time key is spent by the
	// connection that uses it: mint a fresh one here, or return a
	// continuous route (ws://host/chat) every time. Returning an error
	// counts as a failed attempt; the context ends with Close.
	URL func(ctx context.Context, attempt int) (string, error)
	// MinBackoff and MaxBackoff bound the wait between failed attempts,
	// doubling with jitter; zero means 100ms and 5s. The first attempt
	// after a lost connection is immediate.
	MinBackoff, MaxBackoff time.Duration
	// EventBuffer is the capacity of the Events channel; zero means 1024.
	// When it is full the connection's reader waits (nothing is lost;
	// see Options.BlockOnFullEvents for what waiting costs).
	EventBuffer int
	// OnReconnect, if set, is called (on the Resilient's own goroutine)
	// after each reconnect with the new client and how the re-join of each
	// room went: refetch the state of rooms that were not recovered.
	OnReconnect func(c *Client, rejoined map[string]Rejoin)
}

// Rejoin is the outcome of re-joining one room after a reconnect.
type Rejoin struct {
	Joined
	Err error
}

// Resilient is a connection that comes back: when the socket is lost (a
// node drained or killed, the network gone), it dials again with a fresh
// URL, re-joins every room joined through it and asks for what was missed
// since the last event seen in rooms that keep history. Events of all the
// connections arrive on one channel, in order, with nothing lost or
// repeated across the reconnect when Joined.Recovered is true.
//
// Join and Leave go through the Resilient so that the rooms are known;
// everything else goes through Client, the current connection.
type Resilient struct {
	o       ResilientOptions
	events  chan Event
	closing chan struct{}
	done    chan struct{}
	ctx     context.Context // ends with Close
	cancel  context.CancelFunc

	mu         sync.Mutex
	cur        *Client
	rooms      []*resilientRoom // in join order
	reconnects int
	closeOnce  sync.Once
}

type resilientRoom struct {
	name string
	meta any
	pos  *Position // last known, for rooms with history
}

// DialResilient connects (retrying with backoff until ctx ends) and keeps
// the connection up until Close.
func DialResilient(ctx context.Context, o ResilientOptions) (*Resilient, error) {
	if o.URL == nil {
		return nil, errors.New("client: ResilientOptions.URL is required")
	}
	o.MinBackoff = orDefault(o.MinBackoff, 100*time.Millisecond)
	o.MaxBackoff = orDefault(o.MaxBackoff, 5*time.Second)
	r := &Resilient{
		o:       o,
		events:  make(chan Event, orDefault(o.EventBuffer, defaultEventBuffer)),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, r.cancel)
	c, err := r.connect()
	stop()
	if err != nil {
		r.cancel()
		return nil, err
	}
	r.cur = c
	go r.supervise(c)
	return r, nil
}

// connect dials until it succeeds or r.ctx ends.
func (r *Resilient) connect() (*Client, error) {
	wait := r.o.MinBackoff
	for attempt := 0; ; attempt++ {
		c, err := r.dial(attempt)
		if err == nil {
			return c, nil
		}
		if r.ctx.Err() != nil {
			return nil, fmt.Errorf("client: reconnect: %w (last error: %v)", r.ctx.Err(), err)
		}
		d := wait/2 + rand.N(wait/2+1)
		select {
		case <-r.ctx.Done():
			return nil, fmt.Errorf("client: reconnect: %w (last error: %v)", r.ctx.Err(), err)
		case <-time.After(d):
		}
		wait = min(2*wait, r.o.MaxBackoff)
	}
}

func (r *Resilient) dial(attempt int) (*Client, error) {
	url, err := r.o.URL(r.ctx, attempt)
	if err != nil {
		return nil, err
	}
	o := r.o.Options
	o.OnEvent = r.forward
	o.EventBuffer, o.BlockOnFullEvents = 0, false
	return Dial(r.ctx, url, &o)
}

// forward passes an event on, waiting for room in the channel: a dropped
// event would be a hole recovery cannot see.
func (r *Resilient) forward(ev Event) {
	select {
	case r.events <- ev:
	case <-r.closing:
	}
}

// supervise waits for each connection to end and replaces it.
func (r *Resilient) supervise(c *Client) {
	defer close(r.done)
	defer close(r.events)
	for {
		select {
		case <-c.Done():
		case <-r.closing:
			c.Close()
			return
		}
		// The reader is gone: every event of c has been forwarded, so its
		// positions are final.
		r.mu.Lock()
		for _, rm := range r.rooms {
			if p, ok := c.Position(rm.name); ok {
				rm.pos = &p
			}
		}
		r.mu.Unlock()
		for {
			next, err := r.connect()
			if err != nil {
				return // closed
			}
			rejoined, err := r.rejoin(next)
			if err != nil {
				next.Close()
				continue // that connection died too: dial again
			}
			r.mu.Lock()
			r.cur = next
			r.reconnects++
			r.mu.Unlock()
			if r.o.OnReconnect != nil {
				r.o.OnReconnect(next, rejoined)
			}
			c = next
			break
		}
	}
}

// rejoin joins every known room on c, with since where a position is
// known. It fails only if c is gone; a room the node refuses is reported
// in the map and dropped.
func (r *Resilient) rejoin(c *Client) (map[string]Rejoin, error) {
	r.mu.Lock()
	rooms := make([]resilientRoom, len(r.rooms))
	for i, rm := range r.rooms {
		rooms[i] = *rm
	}
	r.mu.Unlock()
	out := make(map[string]Rejoin, len(rooms))
	for _, rm := range rooms {
		ctx, cancel := context.WithTimeout(r.ctx, orDefault(r.o.HandshakeTimeout, defaultHandshakeTimeout))
		j, err := c.JoinSince(ctx, rm.name, rm.meta, rm.pos)
		cancel()
		if errors.Is(err, ErrClosed) || r.ctx.Err() != nil {
			return nil, fmt.Errorf("client: re-join %s: %w", rm.name, err)
		}
		if err != nil {
			r.forget(rm.name)
		}
		out[rm.name] = Rejoin{Joined: j, Err: err}
	}
	return out, nil
}

// Join joins room on the current connection and re-joins it after every
// reconnect, until Leave.
func (r *Resilient) Join(ctx context.Context, room string, meta any) (Joined, error) {
	r.mu.Lock()
	c := r.cur
	known := false
	for _, rm := range r.rooms {
		if rm.name == room {
			rm.meta, known = meta, true
		}
	}
	if !known {
		r.rooms = append(r.rooms, &resilientRoom{name: room, meta: meta})
	}
	r.mu.Unlock()
	j, err := c.JoinSince(ctx, room, meta, nil)
	var e *Error
	if errors.As(err, &e) {
		r.forget(room) // refused: retrying after a reconnect would fail too
	}
	return j, err
}

// Leave leaves room and stops re-joining it.
func (r *Resilient) Leave(ctx context.Context, room string) error {
	r.forget(room)
	return r.Client().Leave(ctx, room)
}

func (r *Resilient) forget(room string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, rm := range r.rooms {
		if rm.name == room {
			r.rooms = append(r.rooms[:i], r.rooms[i+1:]...)
			return
		}
	}
}

// Client returns the current connection (it changes after a reconnect).
func (r *Resilient) Client() *Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// Events returns the events of every connection, in order; it is closed
// after Close.
func (r *Resilient) Events() <-chan Event { return r.events }

// Reconnects is how many times the connection was replaced.
func (r *Resilient) Reconnects() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reconnects
}

// Close closes the current connection and stops reconnecting.
func (r *Resilient) Close() error {
	r.closeOnce.Do(func() {
		close(r.closing)
		r.cancel()
		<-r.done
	})
	return nil
}
