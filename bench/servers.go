package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// server is a running WebSocket server under test (roomcast, the baseline
// or Centrifugo) with what the harness needs to load and sample it.
type server struct {
	kind    string // roomcast, baseline, centrifugo
	p       *proc
	addr    string // host:port of HTTP and WebSocket
	wsPath  string // a path every connection may use
	metrics string // Prometheus URL
	nats    string // NATS URL its rooms live on
	prefix  string // NATS subject prefix of a room
}

func (s *server) sample() sample { return takeSample(s.p.pid(), s.metrics) }

// natsProc is a running bench/natsserver.
type natsProc struct {
	p   *proc
	url string
}

// startNATS runs bench/natsserver (NATS with JetStream) on a free port.
func (r *run) startNATS(name string) (*natsProc, error) {
	port := freePort()
	p, err := r.procs.start(name, r.bins.natsserver, true, nil, "-port", strconv.Itoa(port),
		"-store", filepath.Join(r.procs.dir, name+"-store"))
	if err != nil {
		return nil, err
	}
	line, err := p.stdout.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		return nil, fmt.Errorf("%s did not start: %q %v\n%s", name, line, err, p.tail())
	}
	return &natsProc{p: p, url: strings.TrimSpace(strings.TrimPrefix(line, "ready "))}, nil
}

// nodeOptions are the flags a bench node gets beyond the defaults.
type nodeOptions struct {
	name   string
	nats   string // external NATS URL; empty = embedded
	apiKey string
	extra  []string
}

// startNode runs roomcast-node on a free loopback port. Every node serves
// the public demo route /_/demo/ws (allows every room), logs at info (the
// level of the "listening" line; nothing is logged per connection or
// message at info) and drains fast on SIGTERM.
func (r *run) startNode(o nodeOptions) (*server, error) {
	args := []string{"--listen", "127.0.0.1:0", "--node-id", o.name, "--demo", "on",
		"--log-level", "info", "--drain-window", "100ms", "--drain-grace", "3s",
		"--data-dir", filepath.Join(r.procs.dir, o.name+"-js")}
	natsURL := o.nats
	if o.nats != "" {
		args = append(args, "--nats", o.nats)
	} else {
		port := freePort()
		args = append(args, "--nats-listen", "127.0.0.1:"+strconv.Itoa(port))
		natsURL = "nats://127.0.0.1:" + strconv.Itoa(port)
	}
	if o.apiKey != "" {
		args = append(args, "--api-key", o.apiKey)
	}
	args = append(args, o.extra...)
	p, err := r.procs.start(o.name, r.bins.node, false, nil, args...)
	if err != nil {
		return nil, err
	}
	addr, err := p.waitListening(30 * time.Second)
	if err != nil {
		return nil, err
	}
	s := &server{kind: "roomcast", p: p, addr: addr, wsPath: "/_/demo/ws",
		metrics: "http://" + addr + "/metrics", nats: natsURL, prefix: "rc.room."}
	if err := waitHTTP("http://"+addr+"/readyz", 30*time.Second); err != nil {
		return nil, err
	}
	return s, nil
}

// startBaseline runs the goroutine-per-connection server of bench/baseline.
func (r *run) startBaseline(natsURL string) (*server, error) {
	p, err := r.procs.start("baseline", r.bins.baseline, false, nil, "-listen", "127.0.0.1:0", "-nats", natsURL)
	if err != nil {
		return nil, err
	}
	addr, err := p.waitListening(20 * time.Second)
	if err != nil {
		return nil, err
	}
	return &server{kind: "baseline", p: p, addr: addr, wsPath: "/ws", metrics: "http://" + addr + "/metrics",
		nats: natsURL, prefix: "rc.room."}, nil
}

// centrifugoAPIKey authenticates the harness on Centrifugo's HTTP API.
const centrifugoAPIKey = "bench"

// startCentrifugo runs Centrifugo with its NATS broker in raw mode: a plain
// NATS publish to rc.room.<channel> reaches the channel's subscribers, the
// same path as roomcast's rooms. Anonymous clients may subscribe to any
// channel (client.insecure). The write buffer pool is on, as Centrifugo's
// docs advise for many idle connections: the peer gets its best setting.
func (r *run) startCentrifugo(natsURL string) (*server, error) {
	if r.bins.centrifugo == "" {
		return nil, fmt.Errorf("centrifugo unavailable: %s", r.bins.centrifugoWhy)
	}
	port := freePort()
	conf := map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": port},
		"log":         map[string]any{"level": "error"},
		"client":      map[string]any{"insecure": true, "allowed_origins": []string{"*"}},
		"channel": map[string]any{"without_namespace": map[string]any{
			"allow_subscribe_for_client": true, "allow_subscribe_for_anonymous": true}},
		"http_api":   map[string]any{"key": centrifugoAPIKey},
		"prometheus": map[string]any{"enabled": true},
		"websocket":  map[string]any{"use_write_buffer_pool": true},
		"broker": map[string]any{"enabled": true, "type": "nats", "nats": map[string]any{
			"url": natsURL, "raw_mode": map[string]any{"enabled": true, "prefix": "rc.room."}}},
		"usage_stats": map[string]any{"disabled": true},
		"health":      map[string]any{"enabled": true},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	path := filepath.Join(r.procs.dir, "centrifugo.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return nil, err
	}
	p, err := r.procs.start("centrifugo", r.bins.centrifugo, false, nil, "--config", path)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitHTTP("http://"+addr+"/health", 20*time.Second); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, p.tail())
	}
	return &server{kind: "centrifugo", p: p, addr: addr, wsPath: "/connection/websocket",
		metrics: "http://" + addr + "/metrics", nats: natsURL, prefix: "rc.room."}, nil
}
