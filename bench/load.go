package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/roomcast/roomcast/bench/internal/hist"
	"github.com/roomcast/roomcast/bench/internal/proto"
	"github.com/roomcast/roomcast/bench/internal/wsload"
)

// loader drives one load client process (bench/loadclient) over its
// stdin/stdout command protocol.
type loader struct {
	p *proc
}

// loaderOptions are a load client's command line settings.
type loaderOptions struct {
	server   string // default server host:port
	deflate  bool   // offer permessage-deflate
	protocol string // proto.Roomcast or proto.Centrifugo
	maxLife  time.Duration
}

func (r *run) startLoader(name string, o loaderOptions) (*loader, error) {
	if o.protocol == "" {
		o.protocol = proto.Roomcast
	}
	if o.maxLife == 0 {
		o.maxLife = 10 * time.Minute
	}
	p, err := r.procs.start(name, r.bins.loadclient, true, nil,
		"-server", o.server, "-deflate="+strconv.FormatBool(o.deflate), "-protocol", o.protocol,
		"-max-life", o.maxLife.String())
	if err != nil {
		return nil, err
	}
	return &loader{p: p}, nil
}

// call sends one command and waits for its reply, at most timeout.
func (l *loader) call(cmd proto.Command, timeout time.Duration) (proto.Reply, error) {
	b, _ := json.Marshal(cmd)
	if _, err := l.p.stdin.Write(append(b, '\n')); err != nil {
		return proto.Reply{}, fmt.Errorf("%s: %w\n%s", l.p.name, err, l.p.tail())
	}
	type answer struct {
		r   proto.Reply
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		line, err := l.p.stdout.ReadBytes('\n')
		if err != nil {
			ch <- answer{err: fmt.Errorf("%s: %w\n%s", l.p.name, err, l.p.tail())}
			return
		}
		var r proto.Reply
		if err := json.Unmarshal(line, &r); err != nil {
			ch <- answer{err: fmt.Errorf("%s: bad reply %q: %w", l.p.name, line, err)}
			return
		}
		ch <- answer{r: r}
	}()
	select {
	case a := <-ch:
		if a.err == nil && !a.r.OK {
			a.err = fmt.Errorf("%s %s: %s", l.p.name, cmd.Cmd, a.r.Error)
		}
		return a.r, a.err
	case <-time.After(timeout):
		l.p.stop(time.Second)
		return proto.Reply{}, fmt.Errorf("%s: %s took over %s; killed", l.p.name, cmd.Cmd, timeout)
	}
}

// dial opens connections; joins happen per d.Room / d.Ring.
func (l *loader) dial(d proto.Dial) (*wsload.DialResult, error) {
	r, err := l.call(proto.Command{Cmd: "dial", Dial: &d}, 5*time.Minute)
	if err != nil {
		return nil, err
	}
	if r.Dial.Failed > 0 {
		return r.Dial, fmt.Errorf("%s: %d of %d connections failed: %v", l.p.name, r.Dial.Failed, r.Dial.Failed+r.Dial.OK, r.Dial.Statuses)
	}
	return r.Dial, nil
}

// dialJoined opens n connections that each join room, in chunks of chunk
// with a wait for the acks after each. Joining in chunks keeps a big room's
// setup fast: roomcast queues presence events per join while the room is
// below its count-only threshold, and a burst of thousands of concurrent
// joins multiplies them (see bench/README.md, "Findings").
func (l *loader) dialJoined(d proto.Dial, n, chunk int, acksPerConn int) error {
	var acks uint64
	r, err := l.call(proto.Command{Cmd: "stats"}, 10*time.Second)
	if err != nil {
		return err
	}
	acks = r.Stats.Acks
	for done := 0; done < n; done += chunk {
		d.N = min(chunk, n-done)
		if _, err := l.dial(d); err != nil {
			return err
		}
		acks += uint64(d.N * acksPerConn)
		if _, err := l.call(proto.Command{Cmd: "wait", Wait: &proto.Wait{Acks: acks, Timeout: 2 * time.Minute}}, 3*time.Minute); err != nil {
			return err
		}
	}
	return nil
}

func (l *loader) publish(p proto.Publish) (*proto.PublishResult, error) {
	r, err := l.call(proto.Command{Cmd: "publish", Publish: &p}, p.Duration+2*time.Minute)
	if err != nil {
		return nil, err
	}
	return r.Publish, nil
}

func (l *loader) closeConns() error {
	_, err := l.call(proto.Command{Cmd: "close"}, time.Minute)
	return err
}

func (l *loader) quit() {
	_, _ = l.call(proto.Command{Cmd: "quit"}, 10*time.Second)
	l.p.stop(5 * time.Second)
}

// summary merges latency groups into one summary.
func summary(groups ...hist.Snapshot) hist.Summary {
	var h hist.H
	for _, g := range groups {
		h.Merge(g)
	}
	return h.Summarize()
}
