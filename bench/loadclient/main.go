// Command loadclient is the bench harness's load generator: a separate
// process holding thousands of WebSocket connections (bench/internal/wsload)
// and, when asked, publishing over NATS, Centrifugo's HTTP API or the
// roomcast client protocol. It reads proto.Command lines on stdin and answers
// each with one proto.Reply line on stdout; the harness decides what runs
// when, so it can sample the server between phases.
//
// It exits when stdin closes, or after -max-life whatever happens, so a
// crashed harness never leaves load running.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/roomcast/roomcast/bench/internal/proto"
	"github.com/roomcast/roomcast/bench/internal/wsload"
)

func main() {
	server := flag.String("server", "127.0.0.1:8080", "default server address (host:port)")
	sources := flag.Int("sources", 8, "source addresses 127.0.0.2 … 127.0.0.(1+n), used round robin")
	shards := flag.Int("shards", 2, "reader goroutines (each one epoll)")
	deflate := flag.Bool("deflate", false, "offer permessage-deflate")
	protocol := flag.String("protocol", proto.Roomcast, "roomcast or centrifugo")
	maxLife := flag.Duration("max-life", 10*time.Minute, "exit after this long whatever happens")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("loadclient: ")

	raiseNofile()
	go func() {
		time.Sleep(*maxLife)
		log.Printf("-max-life %s reached: exiting", *maxLife)
		os.Exit(3)
	}()

	addr, err := netip.ParseAddrPort(*server)
	if err != nil {
		log.Fatalf("-server %q: %v", *server, err)
	}
	o := wsload.Options{Server: addr, Shards: *shards, Deflate: *deflate}
	for i := range *sources {
		o.Sources = append(o.Sources, netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)}))
	}
	if *protocol == proto.Centrifugo {
		o.AckMarker = `"subscribe":{`
		o.AppPing = `{}`
	}
	c, err := wsload.New(o)
	if err != nil {
		log.Fatal(err)
	}
	lc := &loadClient{c: c, protocol: *protocol}

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20) // key lists can be long
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var cmd proto.Command
		var r proto.Reply
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			r.Error = "bad command: " + err.Error()
		} else if cmd.Cmd == "quit" {
			r.OK = true
			_ = out.Encode(&r)
			break
		} else {
			r = lc.do(&cmd)
		}
		r.Conns = c.Len()
		if err := out.Encode(&r); err != nil {
			log.Fatal(err)
		}
	}
	c.Close()
}

// raiseNofile lifts the soft fd limit to the hard one: 15,000 connections
// need it, and the hard limit (20,000 here) is the real bound.
func raiseNofile() {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err == nil && r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}

type loadClient struct {
	c        *wsload.Client
	protocol string
	dialed   int // connections dialed so far, for Ring numbering
}

func (lc *loadClient) do(cmd *proto.Command) proto.Reply {
	switch {
	case cmd.Cmd == "dial" && cmd.Dial != nil:
		return lc.dial(cmd.Dial)
	case cmd.Cmd == "wait" && cmd.Wait != nil:
		return lc.wait(cmd.Wait)
	case cmd.Cmd == "stats":
		st := lc.c.Stats()
		return proto.Reply{OK: true, Stats: &st}
	case cmd.Cmd == "publish" && cmd.Publish != nil:
		res, err := lc.publish(cmd.Publish)
		if err != nil {
			return proto.Reply{Error: err.Error()}
		}
		return proto.Reply{OK: true, Publish: res}
	case cmd.Cmd == "close":
		lc.c.CloseConns()
		return proto.Reply{OK: true}
	}
	return proto.Reply{Error: fmt.Sprintf("unknown command %q", cmd.Cmd)}
}

func (lc *loadClient) dial(d *proto.Dial) proto.Reply {
	spec := wsload.DialSpec{N: d.N, Concurrency: d.Concurrency, Group: d.Group}
	if d.Server != "" {
		a, err := netip.ParseAddrPort(d.Server)
		if err != nil {
			return proto.Reply{Error: "server: " + err.Error()}
		}
		spec.Server = a
	}
	if len(d.Paths) > 0 {
		spec.N = len(d.Paths)
		spec.Path = func(i int) string { return d.Paths[i] }
	} else {
		spec.Path = func(int) string { return d.Path }
	}
	base := lc.dialed
	lc.dialed += spec.N
	switch {
	case lc.protocol == proto.Centrifugo:
		room := d.Room
		spec.After = func(k *wsload.Conn, _ int) error {
			if err := k.Write([]byte(`{"id":1,"connect":{}}`)); err != nil {
				return err
			}
			if room == "" {
				return nil
			}
			return k.Write([]byte(`{"id":2,"subscribe":{"channel":"` + room + `"}}`))
		}
	case d.Ring > 0:
		ring := d.Ring
		spec.After = func(k *wsload.Conn, i int) error {
			n := base + i
			for j, r := range []int{n % ring, (n + 1) % ring} {
				msg := fmt.Sprintf(`{"type":"join","room":"r.%d","id":%d}`, r, j+1)
				if err := k.Write([]byte(msg)); err != nil {
					return err
				}
			}
			return nil
		}
	case d.Room != "":
		msg := []byte(`{"type":"join","room":"` + d.Room + `","id":1}`)
		spec.After = func(k *wsload.Conn, _ int) error { return k.Write(msg) }
	}
	res := lc.c.Dial(spec)
	return proto.Reply{OK: true, Dial: &res}
}

func (lc *loadClient) wait(w *proto.Wait) proto.Reply {
	deadline := time.Now().Add(w.Timeout)
	for {
		st := lc.c.Stats()
		if st.Acks >= w.Acks {
			return proto.Reply{OK: true, Stats: &st}
		}
		if time.Now().After(deadline) {
			return proto.Reply{Error: fmt.Sprintf("%d of %d acks after %s (closed by server: %d)",
				st.Acks, w.Acks, w.Timeout, st.Closed), Stats: &st}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// errorf is fmt.Errorf with the command name, for replies.
func errorf(format string, args ...any) error {
	return fmt.Errorf("loadclient: "+format, args...)
}
