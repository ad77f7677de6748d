package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/bus"
)

// Reads use JetStream's direct get API ($JS.API.DIRECT.GET.<stream>) in
// batch mode: one request returns up to scanBatch messages of one subject,
// in sequence order, then an end-of-batch status; AllowDirect lets any
// replica answer. A replay of 5,000 messages is about ten round trips, with
// no consumer to create and delete.

const (
	// scanBatch messages per direct-get request: large enough that a
	// replay is a few round trips, small enough that one answer is not a
	// burst the node's NATS connection would have to buffer.
	scanBatch = 512
	// scanBytes caps one batch answer, whatever the message sizes.
	scanBytes = 1 << 20
)

// Headers JetStream sets on republished messages and direct-get answers.
const (
	hdrStream   = "Nats-Stream"
	hdrSequence = "Nats-Sequence"
	hdrLastSeq  = "Nats-Last-Sequence"
	hdrTime     = "Nats-Time-Stamp"
	hdrPending  = "Nats-Num-Pending"
	hdrStatus   = "Status"
	hdrDescr    = "Description"
)

// ErrUnavailable means the stream could not be read: NATS or JetStream is
// down, or the stream does not exist (yet).
var ErrUnavailable = errors.New("history: stream unavailable")

// Msg is one stored room message.
type Msg struct {
	// Seq is the stream sequence: increasing within a room, not dense.
	Seq uint64
	// Header holds the publisher's headers (Rc-Event, Rc-From, Rc-No-Echo)
	// and JetStream's Nats-* headers.
	Header nats.Header
	Data   []byte
	// Time is when the stream stored the message; zero for live messages.
	Time time.Time
}

// Position is a place in a room's history: everything up to Seq was seen,
// in the stream incarnation Epoch. It is what clients send as `since`.
type Position struct {
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch"`
}

// getRequest is the direct-get request body (nats-server JSApiMsgGetRequest).
type getRequest struct {
	Seq      uint64 `json:"seq,omitempty"`
	NextFor  string `json:"next_by_subj,omitempty"`
	Batch    int    `json:"batch,omitempty"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// request publishes body to subj and hands every answer to fn until fn
// says it is done, an error occurs, or ctx ends. answers is the most
// answers the request can bring.
//
// A request that reached no responder (status 503 as the first answer) is
// sent again, on bus.RetryNoResponders's schedule: in a NATS cluster that
// is what a node sees for a moment after a replicated stream is created or
// moves. Nothing was read, so fn has not been called and the retry is safe.
func (st *Stream) request(ctx context.Context, subj string, body []byte, answers int, fn func(*nats.Msg) (more bool, err error)) error {
	return bus.RetryNoResponders(ctx, func(err error) bool { return errors.Is(err, errNoResponders) }, func() error {
		return st.requestOnce(ctx, subj, body, answers, fn)
	})
}

// errNoResponders marks a request nobody answered; request retries it.
var errNoResponders = errors.New("no responders")

func (st *Stream) requestOnce(ctx context.Context, subj string, body []byte, answers int, fn func(*nats.Msg) (more bool, err error)) error {
	nc := st.s.nc
	noResponders := func() error {
		return fmt.Errorf("%w: %s does not answer (no JetStream, or the stream is missing): %w", ErrUnavailable, st.name, errNoResponders)
	}
	if answers == 1 {
		// One answer: the connection's shared response subscription
		// takes it, no subscription of our own to create and remove.
		m, err := nc.RequestWithContext(ctx, subj, body)
		if errors.Is(err, nats.ErrNoResponders) {
			return noResponders()
		}
		if err != nil {
			return fmt.Errorf("%w: reading %s: %v", ErrUnavailable, st.name, err)
		}
		_, err = fn(m)
		return err
	}
	// A channel sized for the answers one request can bring: a
	// subscription's default is 64k entries, 512 KiB to allocate and clear
	// per request, which made reads cost more in garbage collection than in
	// NATS.
	ch := make(chan *nats.Msg, answers)
	sub, err := nc.ChanSubscribe(nats.NewInbox(), ch)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subj, sub.Subject, body); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	for first := true; ; first = false {
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: reading %s: %v", ErrUnavailable, st.name, ctx.Err())
		}
		if first && m.Header.Get(hdrStatus) == "503" {
			return noResponders()
		}
		more, err := fn(m)
		if err != nil || !more {
			return err
		}
	}
}

// statusError turns a status answer that is not 204/404 into an error.
func (st *Stream) statusError(m *nats.Msg) error {
	code := m.Header.Get(hdrStatus)
	if code == "503" {
		return fmt.Errorf("%w: %s does not answer (no JetStream, or the stream is missing)", ErrUnavailable, st.name)
	}
	return fmt.Errorf("history: direct get on %s: status %s %s", st.name, code, m.Header.Get(hdrDescr))
}

// scan calls fn for each stored message of subject with a sequence ≥ from,
// in order, until fn returns false or there are no more.
func (st *Stream) scan(ctx context.Context, subject string, from uint64, fn func(Msg) bool) error {
	from = max(from, 1)
	for {
		body, _ := json.Marshal(getRequest{Seq: from, NextFor: subject, Batch: scanBatch, MaxBytes: scanBytes})
		var got int
		var pending uint64
		stopped, end := false, false
		// Up to scanBatch messages, then the end-of-batch status.
		err := st.request(ctx, st.api, body, scanBatch+1, func(m *nats.Msg) (bool, error) {
			switch m.Header.Get(hdrStatus) {
			case "":
				msg, err := parseStored(m)
				if err != nil {
					return false, fmt.Errorf("history: %s: %w", st.name, err)
				}
				got++
				from = msg.Seq + 1
				if !fn(msg) {
					stopped = true
					return false, nil
				}
				return true, nil
			case "204": // end of batch
				pending, _ = strconv.ParseUint(m.Header.Get(hdrPending), 10, 64)
				return false, nil
			case "404": // nothing (more) at or after from
				end = true
				return false, nil
			}
			return false, st.statusError(m)
		})
		if err != nil || stopped || end || got == 0 || pending == 0 {
			return err
		}
	}
}

// lastSeq is the sequence of the last stored message of subject, 0 if none.
func (st *Stream) lastSeq(ctx context.Context, subject string) (uint64, error) {
	var seq uint64
	err := st.request(ctx, st.api+"."+subject, nil, 1, func(m *nats.Msg) (bool, error) {
		switch m.Header.Get(hdrStatus) {
		case "":
			msg, err := parseStored(m)
			seq = msg.Seq
			return false, err
		case "404":
			return false, nil
		}
		return false, st.statusError(m)
	})
	return seq, err
}

// parseStored reads a direct-get answer.
func parseStored(m *nats.Msg) (Msg, error) {
	seq, err := strconv.ParseUint(m.Header.Get(hdrSequence), 10, 64)
	if err != nil || seq == 0 {
		return Msg{}, fmt.Errorf("answer without a valid %s header", hdrSequence)
	}
	t, _ := time.Parse(time.RFC3339Nano, m.Header.Get(hdrTime))
	return Msg{Seq: seq, Header: m.Header, Data: m.Data, Time: t}, nil
}

// parseLive reads the sequence headers of a republished message: its own
// stream sequence and that of the previous message stored for the same
// subject (0 if none is stored).
func parseLive(m *nats.Msg) (seq, prev uint64, ok bool) {
	seq, err := strconv.ParseUint(m.Header.Get(hdrSequence), 10, 64)
	if err != nil || seq == 0 {
		return 0, 0, false
	}
	prev, err = strconv.ParseUint(m.Header.Get(hdrLastSeq), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return seq, prev, true
}
