package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Control of the nodes (rc.control.*). NATS permissions decide who may use
// it: give app services publish rights on rc.room.> and friends but not on
// rc.control.> (docs/nats-permissions.conf), and use a separate user for
// the services that do.

// Kick selects sessions to close: by Session, by User, or both (both must
// match). Code 0 means 4003; Reason is shown to the client.
type Kick struct {
	Session string `json:"session,omitempty"`
	User    string `json:"user,omitempty"`
	Code    int    `json:"code,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// CloseRoom removes every member of Room; with Close, their connections
// are closed with Code (0 means 4003) and Reason.
type CloseRoom struct {
	Room   string `json:"room"`
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	Close  bool   `json:"close,omitempty"`
}

// controlAnswer is what a node that acted answers.
type controlAnswer struct {
	OK       bool   `json:"ok"`
	Affected int    `json:"affected"`
	Error    *Error `json:"error"`
}

// Kick closes the matching sessions on every node and returns how many
// were closed, counted from the answers that arrived within
// Options.Gather (a kick of one session returns at its first answer).
func (b *Backend) Kick(ctx context.Context, k Kick) (int, error) {
	return b.gather(ctx, "kick", k, k.Session != "")
}

// CloseRoom removes every member of the room on every node and returns
// how many there were (see Kick for the counting).
func (b *Backend) CloseRoom(ctx context.Context, c CloseRoom) (int, error) {
	return b.gather(ctx, "close-room", c, false)
}

// Join joins session to room (rc.control.join) with meta (nil: its own),
// whatever its allow patterns say; it returns once the node holding the
// session did. An *Error with code timeout means no node holds it.
func (b *Backend) Join(ctx context.Context, session, room string, meta any) error {
	req := map[string]any{"session": session, "room": room}
	if meta != nil {
		m, err := encode(meta)
		if err != nil {
			return err
		}
		req["meta"] = json.RawMessage(m)
	}
	var a controlAnswer
	return b.request(ctx, b.subject("control", "join"), req, &a)
}

// Leave takes session out of room (rc.control.leave).
func (b *Backend) Leave(ctx context.Context, session, room string) error {
	var a controlAnswer
	return b.request(ctx, b.subject("control", "leave"), map[string]any{"session": session, "room": room}, &a)
}

// Drain makes node drain as on SIGTERM (rc.control.drain) and returns the
// number of connections it is closing.
func (b *Backend) Drain(ctx context.Context, node string) (int, error) {
	var a controlAnswer
	err := b.request(ctx, b.subject("control", "drain"), map[string]any{"node": node}, &a)
	return a.Affected, err
}

// gather publishes a control request with a reply subject and sums the
// answers that come within Options.Gather (or until ctx ends); with first,
// it returns at the first answer.
func (b *Backend) gather(ctx context.Context, action string, req any, first bool) (int, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	inbox := b.nc.NewRespInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, fmt.Errorf("backend: %s: %w", action, err)
	}
	defer sub.Unsubscribe()
	if err := b.nc.PublishRequest(b.subject("control", action), inbox, data); err != nil {
		return 0, fmt.Errorf("backend: %s: %w", action, err)
	}
	deadline := time.Now().Add(b.o.Gather)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	total := 0
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return total, nil
		}
		m, err := sub.NextMsgWithContext(withTimeout(ctx, wait))
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return total, nil
		}
		if err != nil {
			return total, ctx.Err()
		}
		var a controlAnswer
		if err := json.Unmarshal(m.Data, &a); err != nil {
			continue
		}
		if a.Error != nil {
			return total, a.Error
		}
		total += a.Affected
		if first {
			return total, nil
		}
	}
}

// withTimeout is ctx bounded by d; the timer goes with the context's end,
// which NextMsgWithContext waits for at most d.
func withTimeout(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	context.AfterFunc(c, cancel)
	return c
}
