// Command go-backend is a chat back-end for roomcast in Go: per-request
// sockets (POST /connect returns a WebSocket URL for one browser), a room
// everyone joins, and two rpc methods that keep the messages in memory.
// It talks to the nodes over NATS only; examples/node-backend is the same
// back-end in Node.js.
//
//	go run ./cmd/node &                  # a node with embedded NATS on 127.0.0.1:4222
//	go run ./examples/go-backend         # this back-end on :3000
//	curl -d '{"name":"ada"}' localhost:3000/connect
//	# {"url":"ws://127.0.0.1:8080/_/connect/…"}: open it with any WebSocket client
//
// What a client sees and may do:
//   - on connect: a direct "message" event "Connected!", and the room
//     chat.lobby (auto-joined), where messages arrive as "chat" events
//     {id, user, name, text, at};
//   - send event "chat" {text}: the back-end stores and broadcasts it;
//   - rpc "chat.post" {text}: the same, answering the stored message;
//   - rpc "chat.history": the last 50 messages, oldest first.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomcast/roomcast/pkg/backend"
)

const room = "chat.lobby"

func main() {
	natsURL := flag.String("nats", envOr("NATS_URL", nats.DefaultURL), "NATS URL of the roomcast nodes")
	listen := flag.String("listen", envOr("LISTEN", "127.0.0.1:3000"), "HTTP address of POST /connect (port 0 picks one, logged)")
	public := flag.String("public-url", envOr("PUBLIC_URL", "ws://127.0.0.1:8080"), "where browsers reach the nodes")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*natsURL, *listen, *public, log); err != nil {
		log.Error("go-backend", "err", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// message is one stored chat message.
type message struct {
	ID   int    `json:"id"`
	User string `json:"user"`
	Name string `json:"name"`
	Text string `json:"text"`
	At   int64  `json:"at"`
}

// store keeps the last messages in memory.
type store struct {
	mu   sync.Mutex
	msgs []message
	next int
}

const keep = 1000

func (s *store) add(user, name, text string) message {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	m := message{ID: s.next, User: user, Name: name, Text: text, At: time.Now().UnixMilli()}
	s.msgs = append(s.msgs, m)
	if len(s.msgs) > keep {
		s.msgs = s.msgs[len(s.msgs)-keep:]
	}
	return m
}

func (s *store) last(n int) []message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]message{}, s.msgs[max(0, len(s.msgs)-n):]...)
}

func run(natsURL, listen, public string, log *slog.Logger) error {
	nc, err := nats.Connect(natsURL, nats.Name("roomcast go-backend example"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("NATS %s: %w", natsURL, err)
	}
	defer nc.Close()
	b, err := backend.New(nc, backend.Options{PublicURL: public, Logger: log})
	if err != nil {
		return err
	}
	defer b.Close()
	st := &store{}

	// post stores a message and broadcasts it to the room as the sender.
	post := func(from *backend.Socket, user, name, text string) (message, error) {
		text = strings.TrimSpace(text)
		if text == "" || len(text) > 2000 {
			return message{}, &backend.Error{Code: "bad_request", Message: "text must be 1–2000 characters"}
		}
		m := st.add(user, name, text)
		if from != nil {
			return m, from.Publish(room, "chat", m)
		}
		return m, b.Publish(room, "chat", m)
	}

	posting, err := b.Serve("chat.post", func(_ context.Context, r *backend.Request) (any, error) {
		var in struct {
			Text string `json:"text"`
		}
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
		var meta struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(r.Meta, &meta)
		return post(nil, r.User, meta.Name, in.Text)
	})
	if err != nil {
		return err
	}
	defer posting.Stop()
	history, err := b.Serve("chat.history", func(context.Context, *backend.Request) (any, error) {
		return st.last(50), nil
	})
	if err != nil {
		return err
	}
	defer history.Stop()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /connect", func(w http.ResponseWriter, r *http.Request) {
		var form struct {
			Name string `json:"name"`
		}
		_ = json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&form)
		user := userID(form.Name)
		if user == "" {
			http.Error(w, `{"error":"name: use letters and digits"}`, http.StatusBadRequest)
			return
		}
		url, err := b.Use(r.Context(), backend.Claims{User: user, Meta: map[string]string{"name": form.Name}, Rooms: []string{room}},
			func(s *backend.Socket) {
				_ = s.Send("Connected!") // queued until the browser connects
				s.OnOpen(func(ev backend.ConnectEvent) {
					log.Info("connected", "session", s.ID(), "user", user, "node", ev.Node)
				})
				s.OnMessage(func(m backend.Message) {
					if m.Event != "chat" {
						return
					}
					var in struct {
						Text string `json:"text"`
					}
					if m.Decode(&in) != nil {
						return
					}
					if _, err := post(s, user, form.Name, in.Text); err != nil {
						_ = s.Emit("chat:error", err.Error())
					}
				})
				s.OnClose(func(code int, reason string) {
					log.Info("closed", "session", s.ID(), "user", user, "code", code, "reason", reason)
				})
			})
		if err != nil {
			log.Warn("use", "err", err)
			http.Error(w, `{"error":"no socket: is a roomcast node running?"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"url": url})
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	log.Info("go-backend listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// userID turns a display name into a user id (a NATS subject token).
func userID(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	if b.Len() > 64 {
		return b.String()[:64]
	}
	return b.String()
}
