package node

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roomcast/roomcast/pkg/demo"
	"github.com/roomcast/roomcast/pkg/keys"
	"github.com/roomcast/roomcast/pkg/names"
)

// routesHTTP is every non-WebSocket endpoint of the node.
func (n *Node) routesHTTP() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, map[string]any{"status": "ok", "node": n.opts.NodeID})
	})
	mux.HandleFunc("GET /readyz", n.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.registry, promhttp.HandlerOpts{}))
	if n.opts.APIKey != "" {
		mux.Handle("/_/keys", n.apiLimit.limit(n.proxies, keys.Handler(n.keys, n.opts.APIKey, n.opts.KeyTTL, maxKeyTTL)))
		mux.Handle("/_/publish", n.apiLimit.limit(n.proxies, http.HandlerFunc(n.publish)))
	} else {
		off := func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, 404, "not_found", "this endpoint is off: start the node with --api-key to enable it")
		}
		mux.HandleFunc("/_/keys", off)
		mux.HandleFunc("/_/publish", off)
	}
	if n.opts.Demo {
		mux.Handle("POST /_/demo/key", n.apiLimit.limit(n.proxies, http.HandlerFunc(n.demoKey)))
		mux.Handle("/", demo.Handler())
	} else {
		mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "roomcast node "+n.opts.NodeID+"\n")
		})
	}
	return mux
}

// maxKeyTTL caps what a minting request may ask for.
const maxKeyTTL = 24 * time.Hour

func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	if n.draining.Load() {
		writeError(w, 503, "unavailable", "draining")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := n.bus.Ready(ctx); err != nil {
		writeError(w, 503, "unavailable", err.Error())
		return
	}
	writeJSON(w, 200, map[string]any{"status": "ready", "node": n.opts.NodeID, "connections": n.loop.Conns()})
}

// publishRequest is the body of POST /_/publish.
type publishRequest struct {
	Room  string          `json:"room"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

func (n *Node) publish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, 405, "bad_request", "use POST with {\"room\",\"event\",\"data\"}")
		return
	}
	if !n.bearerOK(r) {
		writeError(w, 401, "unauthorized", "missing or wrong API key: send Authorization: Bearer <--api-key>")
		return
	}
	var req publishRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(n.opts.MaxMessage)))
	if err != nil {
		writeError(w, 413, "too_large", "body over the message limit")
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, 400, "bad_request", "body must be JSON {\"room\",\"event\",\"data\"}: "+err.Error())
		return
	}
	if err := names.CheckRoom(req.Room); err != nil {
		writeError(w, 400, "bad_request", err.Error())
		return
	}
	if req.Event == "" {
		req.Event = "message"
	}
	data := []byte(req.Data)
	if len(data) == 0 {
		data = []byte("null")
	}
	if err := n.hub.Publish(r.Context(), req.Room, req.Event, data); err != nil {
		writeError(w, 503, "unavailable", "publish failed: "+err.Error())
		return
	}
	writeJSON(w, 200, map[string]any{"ok": true})
}

func (n *Node) bearerOK(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(n.opts.APIKey)) == 1
}

// demoKey mints a key for the demo page: any name, any room. Only served
// with --demo, which is on by default only for an embedded (laptop) node.
func (n *Node) demoKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		User string          `json:"user"`
		Meta json.RawMessage `json:"meta"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 8<<10)).Decode(&req); err != nil {
		writeError(w, 400, "bad_request", "body must be JSON {\"user\": name}")
		return
	}
	if req.User == "" {
		req.User = "guest"
	}
	meta := req.Meta
	if len(meta) == 0 {
		meta, _ = json.Marshal(map[string]string{"name": req.User})
	}
	m, err := n.keys.Mint(r.Context(), keys.Claims{User: req.User, Meta: meta, Allow: []string{">"}}, n.opts.KeyTTL)
	if err != nil {
		var status = 503
		if errors.Is(err, keys.ErrBadRequest) {
			status = 400
		}
		writeError(w, status, "bad_request", err.Error())
		return
	}
	writeJSON(w, 200, m)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(errorBody(code, message), '\n'))
}
