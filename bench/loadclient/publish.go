package main

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/bench/internal/proto"
	"github.com/roomcast/roomcast/bench/internal/wsload"
)

// stallLimit: a run stops waiting for deliveries after this long without
// progress; what is missing was lost.
const stallLimit = 2 * time.Second

// publisher sends one message to one target.
type publisher interface {
	publish(target string, data []byte) error
	close()
}

// publish runs one Publish command: traffic for p.Duration, then a drain
// until every expected delivery arrived or deliveries stalled.
func (lc *loadClient) publish(p *proto.Publish) (*proto.PublishResult, error) {
	if len(p.Targets) == 0 || p.PerMsg <= 0 || (p.Window <= 0 && p.Rate <= 0) {
		return nil, errorf("publish needs targets, per_msg and a window or a rate")
	}
	pub, err := lc.newPublisher(p)
	if err != nil {
		return nil, err
	}
	defer pub.close()

	pl := newPayload(p.Size)
	before := lc.c.Stats()
	lc.c.ResetLatency()
	lc.c.SetLatency(p.Latency)
	defer lc.c.SetLatency(false)
	delivered := func() uint64 { return lc.c.Stats().Delivered - before.Delivered }

	rng := rand.New(rand.NewPCG(1, 2))
	next := 0
	target := func() string {
		if p.Random {
			return p.Targets[rng.IntN(len(p.Targets))]
		}
		t := p.Targets[next%len(p.Targets)]
		next++
		return t
	}
	var published uint64
	send := func() error {
		if err := pub.publish(target(), pl.stamp(time.Now())); err != nil {
			return err
		}
		published++
		return nil
	}

	start := time.Now()
	end := start.Add(p.Duration)
	perMsg := uint64(p.PerMsg)
	if p.Window > 0 {
		window := uint64(p.Window)
		for time.Now().Before(end) {
			done := delivered() / perMsg
			if published-done >= window {
				// Deliveries take at least tens of µs; a short sleep keeps
				// the publisher off the CPU the server needs.
				time.Sleep(100 * time.Microsecond)
				continue
			}
			for range window - (published - done) {
				if err := send(); err != nil {
					return nil, err
				}
			}
		}
	} else {
		for now := time.Now(); now.Before(end); now = time.Now() {
			due := uint64(now.Sub(start).Seconds() * p.Rate)
			for published < due {
				if err := send(); err != nil {
					return nil, err
				}
			}
			time.Sleep(time.Millisecond)
		}
	}

	// Drain: wait for what is in flight.
	expected := published * perMsg
	last, lastAt := delivered(), time.Now()
	for {
		d := delivered()
		if d >= expected {
			lastAt = time.Now()
			break
		}
		if d != last {
			last, lastAt = d, time.Now()
		} else if time.Since(lastAt) > stallLimit {
			break
		}
		time.Sleep(time.Millisecond)
	}
	after := lc.c.Stats()
	res := &proto.PublishResult{
		Published: published,
		Expected:  expected,
		Delivered: after.Delivered - before.Delivered,
		Elapsed:   lastAt.Sub(start),
		Drained:   after.Delivered-before.Delivered >= expected,
		Stats:     diffStats(after, before),
		Latency:   lc.c.Latency(),
	}
	return res, nil
}

func diffStats(a, b wsload.Stats) wsload.Stats {
	return wsload.Stats{
		Delivered: a.Delivered - b.Delivered, Compressed: a.Compressed - b.Compressed,
		Acks: a.Acks - b.Acks, Frames: a.Frames - b.Frames, Bytes: a.Bytes - b.Bytes,
		Reads: a.Reads - b.Reads, Pings: a.Pings - b.Pings, Closed: a.Closed - b.Closed,
		Close4009: a.Close4009 - b.Close4009, WriteFails: a.WriteFails - b.WriteFails,
	}
}

func (lc *loadClient) newPublisher(p *proto.Publish) (publisher, error) {
	switch p.Via {
	case "nats":
		nc, err := nats.Connect(p.NATS, nats.Name("bench publisher"))
		if err != nil {
			return nil, errorf("nats: %v", err)
		}
		return &natsPub{nc: nc, prefix: p.Prefix}, nil
	case "http":
		return &httpPub{url: p.HTTP + "/api/publish", key: p.APIKey, hc: &http.Client{Timeout: 5 * time.Second}}, nil
	case "ws":
		conns := lc.c.Conns()
		var ws wsPub
		for _, i := range p.PubConns {
			if i < 0 || i >= len(conns) {
				return nil, errorf("pub_conns: no connection %d (have %d)", i, len(conns))
			}
			ws.conns = append(ws.conns, conns[i])
		}
		if len(ws.conns) == 0 {
			return nil, errorf("via ws needs pub_conns")
		}
		return &ws, nil
	}
	return nil, errorf("unknown via %q: use nats, http or ws", p.Via)
}

type natsPub struct {
	nc     *nats.Conn
	prefix string
	subj   map[string]string
}

func (n *natsPub) publish(target string, data []byte) error {
	if n.subj == nil {
		n.subj = map[string]string{}
	}
	s, ok := n.subj[target]
	if !ok {
		s = n.prefix + target
		n.subj[target] = s
	}
	return n.nc.Publish(s, data)
}

func (n *natsPub) close() {
	_ = n.nc.Flush()
	n.nc.Close()
}

// httpPub publishes through Centrifugo's server API, one request at a time.
type httpPub struct {
	url, key string
	hc       *http.Client
	buf      bytes.Buffer
}

func (h *httpPub) publish(target string, data []byte) error {
	h.buf.Reset()
	h.buf.WriteString(`{"channel":`)
	h.buf.WriteString(strconv.Quote(target))
	h.buf.WriteString(`,"data":`)
	h.buf.Write(data)
	h.buf.WriteString(`}`)
	req, err := http.NewRequest("POST", h.url, bytes.NewReader(h.buf.Bytes()))
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", h.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.hc.Do(req)
	if err != nil {
		return errorf("http publish: %v", err)
	}
	defer resp.Body.Close()
	var sink [512]byte
	for {
		if _, err := resp.Body.Read(sink[:]); err != nil {
			break
		}
	}
	if resp.StatusCode != 200 {
		return errorf("http publish: status %d", resp.StatusCode)
	}
	return nil
}

func (h *httpPub) close() {}

// wsPub publishes as roomcast clients, round robin over its connections.
type wsPub struct {
	conns []*wsload.Conn
	next  int
	buf   []byte
}

func (w *wsPub) publish(target string, data []byte) error {
	w.buf = append(w.buf[:0], `{"type":"publish","room":"`...)
	w.buf = append(w.buf, target...)
	w.buf = append(w.buf, `","data":`...)
	w.buf = append(w.buf, data...)
	w.buf = append(w.buf, '}')
	k := w.conns[w.next%len(w.conns)]
	w.next++
	return k.Write(w.buf)
}

func (w *wsPub) close() {}

// payload builds message data: {"t":<unix ns>,"p":"<padding>"} of a fixed
// size. The padding is words from a small vocabulary, so that it compresses
// like chat text (about 3:1), not like a run of one letter.
type payload struct {
	buf  []byte
	tOff int // where the 19 timestamp digits go
}

var vocabulary = []string{"the", "room", "message", "hello", "user", "typing", "cursor", "moved",
	"joined", "left", "update", "value", "count", "score", "ready", "done", "light", "blue", "green",
	"seven", "alpha", "beta", "delta", "omega", "quick", "brown", "fox", "lazy", "dog", "ok", "yes", "no"}

func newPayload(size int) *payload {
	head := `{"t":0000000000000000000,"p":"`
	b := []byte(head)
	rng := rand.New(rand.NewPCG(7, 7))
	for len(b) < size-2 {
		b = append(b, vocabulary[rng.IntN(len(vocabulary))]...)
		b = append(b, ' ')
	}
	b = b[:max(size-2, len(head))]
	b = append(b, '"', '}')
	return &payload{buf: b, tOff: len(`{"t":`)}
}

// stamp writes t into the payload and returns it; the result is valid until
// the next call (every publisher copies it before returning).
func (p *payload) stamp(t time.Time) []byte {
	v := t.UnixNano()
	for i := p.tOff + 18; i >= p.tOff; i-- {
		p.buf[i] = byte('0' + v%10)
		v /= 10
	}
	return p.buf
}
