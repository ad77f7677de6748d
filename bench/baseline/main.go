// Command baseline is the bench's goroutine-per-connection WebSocket server:
// what roomcast would be without its epoll loop, written the way a careful Go
// service usually is, so the side-by-side numbers compare designs rather
// than a straw man.
//
// Each connection has a reader goroutine (gobwas/ws wsutil, blocking reads)
// and a writer goroutine draining a 256-frame channel into the 4 KiB bufio
// writer net/http hands over on hijack, flushing when the channel is empty,
// so writes are batched under load exactly like roomcast's writev. Rooms have
// one NATS subscription per room per process; a broadcast is framed once and
// the same bytes are queued to every member (a full channel cuts the member,
// like roomcast's 4009). It speaks the subset of the roomcast wire protocol the
// load client uses: welcome, join → ack, events on rc.room.<room>.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"
)

// sendQueue is each connection's outgoing channel length, in frames.
const sendQueue = 256

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "HTTP and WebSocket address")
	natsURL := flag.String("nats", "nats://127.0.0.1:4222", "NATS URL")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("baseline: ")

	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err == nil && r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
	nc, err := nats.Connect(*natsURL, nats.Name("bench baseline"))
	if err != nil {
		log.Fatal(err)
	}
	h := &hub{nc: nc, rooms: map[string]*room{}}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	// The same JSON line the roomcast node logs, so the harness finds both
	// the same way.
	fmt.Fprintf(os.Stderr, `{"msg":"listening","addr":%q}`+"\n", ln.Addr().String())
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", h.metrics)
	mux.HandleFunc("/", h.serveWS)
	go func() { _ = http.Serve(ln, mux) }()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}

type hub struct {
	nc    *nats.Conn
	mu    sync.Mutex
	rooms map[string]*room
	conns atomic.Int64
}

type room struct {
	members atomic.Pointer[[]*client] // copy-on-write, like roomcast
}

type client struct {
	conn net.Conn
	send chan []byte
	once sync.Once
}

func (c *client) close() {
	c.once.Do(func() {
		close(c.send)
		c.conn.Close()
	})
}

// metrics reports, in the Prometheus text format, the runtime figures the
// harness reads from roomcast's /metrics too.
func (h *hub) metrics(w http.ResponseWriter, _ *http.Request) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	fmt.Fprintf(w, "go_goroutines %d\ngo_memstats_heap_inuse_bytes %d\ngo_memstats_stack_inuse_bytes %d\n"+
		"go_memstats_mallocs_total %d\nbench_connections %d\n",
		runtime.NumGoroutine(), m.HeapInuse, m.StackInuse, m.Mallocs, h.conns.Load())
}

func (h *hub) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	c := &client{conn: conn, send: make(chan []byte, sendQueue)}
	h.conns.Add(1)
	go c.writeLoop(rw.Writer)
	c.queue(ws.MustCompileFrame(ws.NewTextFrame([]byte(`{"type":"welcome"}`))))
	h.readLoop(c, rw.Reader)
	h.conns.Add(-1)
}

// queue hands a frame to the writer; a full queue cuts the connection.
func (c *client) queue(f []byte) (ok bool) {
	defer func() {
		if recover() != nil { // send on a closed channel: already gone
			ok = false
		}
	}()
	select {
	case c.send <- f:
		return true
	default:
		c.close()
		return false
	}
}

func (c *client) writeLoop(bw *bufio.Writer) {
	for f := range c.send {
		_, err := bw.Write(f)
		// Batch whatever else is already queued into the same flush.
		for more := true; more && err == nil; {
			select {
			case g, open := <-c.send:
				if !open {
					more = false
					break
				}
				_, err = bw.Write(g)
			default:
				more = false
			}
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			c.close()
			for range c.send {
			}
			return
		}
	}
}

func (h *hub) readLoop(c *client, br *bufio.Reader) {
	defer c.close()
	var joined []string
	defer func() {
		for _, name := range joined {
			h.leave(name, c)
		}
	}()
	for {
		// A plain blocking frame loop, one buffer per message as most
		// servers do; control replies go through the writer's queue so
		// frames never interleave.
		hdr, err := ws.ReadHeader(br)
		if err != nil || hdr.Length > 1<<20 {
			return
		}
		data := make([]byte, hdr.Length)
		if _, err := io.ReadFull(br, data); err != nil {
			return
		}
		if hdr.Masked {
			ws.Cipher(data, hdr.Mask, 0)
		}
		switch hdr.OpCode {
		case ws.OpPing:
			c.queue(ws.MustCompileFrame(ws.NewPongFrame(data)))
			continue
		case ws.OpClose:
			return
		case ws.OpText:
		default:
			continue
		}
		var m struct {
			Type string `json:"type"`
			Room string `json:"room"`
			ID   uint64 `json:"id"`
		}
		if json.Unmarshal(data, &m) != nil || m.Type != "join" || m.Room == "" || strings.ContainsAny(m.Room, " *>") {
			continue
		}
		if err := h.join(m.Room, c); err != nil {
			return
		}
		joined = append(joined, m.Room)
		c.queue(ws.MustCompileFrame(ws.NewTextFrame(fmt.Appendf(nil, `{"type":"ack","id":%d}`, m.ID))))
	}
}

func (h *hub) join(name string, c *client) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[name]
	if r == nil {
		r = &room{}
		r.members.Store(&[]*client{})
		if _, err := h.nc.Subscribe("rc.room."+name, func(m *nats.Msg) { r.broadcast(name, m.Data) }); err != nil {
			return err
		}
		if err := h.nc.Flush(); err != nil {
			return err
		}
		h.rooms[name] = r
	}
	old := *r.members.Load()
	next := append(append(make([]*client, 0, len(old)+1), old...), c)
	r.members.Store(&next)
	return nil
}

func (h *hub) leave(name string, c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[name]
	if r == nil {
		return
	}
	old := *r.members.Load()
	next := make([]*client, 0, len(old))
	for _, m := range old {
		if m != c {
			next = append(next, m)
		}
	}
	r.members.Store(&next)
}

// broadcast frames the event once and queues the same bytes to every member.
func (r *room) broadcast(name string, data []byte) {
	payload := make([]byte, 0, len(data)+64)
	payload = append(payload, `{"type":"event","room":`...)
	payload = append(payload, '"')
	payload = append(payload, name...)
	payload = append(payload, `","event":"message","data":`...)
	payload = append(payload, data...)
	payload = append(payload, '}')
	f := ws.MustCompileFrame(ws.NewTextFrame(payload))
	for _, c := range *r.members.Load() {
		c.queue(f)
	}
}
