package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomcast/roomcast/bench/internal/hist"
	"github.com/roomcast/roomcast/pkg/keys"
)

const (
	benchAPIKey = "bench-api-key"
	keyWorkers  = 8
)

// keyClaims are what every bench key carries: a user and a room pattern,
// no auto-joined room (a few thousand sessions auto-joining one room would
// measure presence, not keys).
var keyClaims = []byte(`{"user":"bench","allow":["chat.*"],"meta":{"name":"bench"}}`)

// keysScenario measures one-time keys end to end over HTTP (POST /_/keys,
// then the WebSocket upgrade on /_/connect/<key> that redeems it) and
// through the Go API (keys.Store Mint then Redeem on an in-process NATS with
// JetStream), keyWorkers pairs at a time.
func keysScenario(r *run, res *Result) error {
	node, err := r.startNode(nodeOptions{name: "node", apiKey: benchAPIKey,
		// The per-IP API limit (default 200/s) would cap a single-address
		// load generator; the bench measures the key path, not the limiter.
		extra: append([]string{"--api-rate", "0"}, r.nodeFlags...)})
	if err != nil {
		return err
	}
	res.Params["workers"] = keyWorkers
	res.Params["phase"] = r.plan.run.String()
	t := res.table(fmt.Sprintf("Mint + redeem pairs, %d concurrent workers", keyWorkers),
		"path", "pairs", "pairs/s", "pair p50", "pair p99", "mint p99", "redeem p99", "server CPU/pair", "errors")

	before := node.sample()
	h := runPairs(keyWorkers, r.plan.run, httpPair(node.addr))
	after := node.sample()
	d := diff(before, after)
	h.row(t, "HTTP: POST /_/keys + upgrade /_/connect/<key>", d.cpu)
	h.record(res, "http")

	st, stop, err := inProcessStore(r.procs.dir)
	if err != nil {
		return err
	}
	defer stop()
	ctx := context.Background()
	claims := keys.Claims{User: "bench", Allow: []string{"chat.*"}, Meta: json.RawMessage(`{"name":"bench"}`)}
	g := runPairs(keyWorkers, r.plan.run, func() (time.Duration, time.Duration, error) {
		t0 := time.Now()
		k, err := st.Mint(ctx, claims, 0)
		if err != nil {
			return 0, 0, err
		}
		t1 := time.Now()
		if _, err := st.Redeem(ctx, k.Key); err != nil {
			return 0, 0, err
		}
		return t1.Sub(t0), time.Since(t1), nil
	})
	g.row(t, "Go: keys.Store Mint + Redeem (in-process NATS + JetStream)", 0)
	g.record(res, "go")
	res.note("A pair is one mint (a JetStream KV create) and one redemption (a KV get and a revision-checked delete): three JetStream round trips, each a file-store write or read; NATS and JetStream dominate both paths.")
	res.note("The HTTP path adds the HTTP request, the API key check, the TCP connect and the WebSocket handshake; server CPU/pair is the node's (its embedded NATS included).")
	return nil
}

// pairStats collects a runPairs measurement.
type pairStats struct {
	n, errs      int
	firstErr     string
	elapsed      time.Duration
	pair, m, rdm hist.H
}

// runPairs runs fn on workers goroutines for d and times every pair.
func runPairs(workers int, d time.Duration, fn func() (mint, redeem time.Duration, err error)) *pairStats {
	s := &pairStats{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				m, rd, err := fn()
				mu.Lock()
				if err != nil {
					s.errs++
					if s.firstErr == "" {
						s.firstErr = err.Error()
					}
				} else {
					s.n++
				}
				mu.Unlock()
				if err == nil {
					s.pair.Record(m + rd)
					s.m.Record(m)
					s.rdm.Record(rd)
				}
			}
		}()
	}
	wg.Wait()
	s.elapsed = time.Since(start)
	return s
}

func (s *pairStats) rate() float64 { return float64(s.n) / s.elapsed.Seconds() }

func (s *pairStats) row(t *Table, label string, cpu float64) {
	p, m, rd := s.pair.Summarize(), s.m.Summarize(), s.rdm.Summarize()
	perPair := "–"
	if cpu > 0 && s.n > 0 {
		perPair = fmtF(cpu/float64(s.n)*1e6, "µs")
	}
	errs := fmt.Sprint(s.errs)
	if s.firstErr != "" {
		errs += " (" + s.firstErr + ")"
	}
	t.add(label, fmt.Sprint(s.n), fmtRate(s.rate(), ""), fmtDur(p.P50), fmtDur(p.P99), fmtDur(m.P99), fmtDur(rd.P99), perPair, errs)
}

func (s *pairStats) record(res *Result, key string) {
	p := s.pair.Summarize()
	res.Metrics[key+"_pairs_per_s"] = s.rate()
	res.Metrics[key+"_pair_p50_ms"] = float64(p.P50) / 1e6
	res.Metrics[key+"_pair_p99_ms"] = float64(p.P99) / 1e6
	res.Metrics[key+"_errors"] = float64(s.errs)
}

// httpPair mints a key over HTTP and redeems it with a WebSocket upgrade.
func httpPair(addr string) func() (time.Duration, time.Duration, error) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: keyWorkers * 2}}
	return func() (time.Duration, time.Duration, error) {
		t0 := time.Now()
		req, _ := http.NewRequest("POST", "http://"+addr+"/_/keys", bytes.NewReader(keyClaims))
		req.Header.Set("Authorization", "Bearer "+benchAPIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, 0, err
		}
		var minted keys.Minted
		err = json.NewDecoder(resp.Body).Decode(&minted)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			return 0, 0, fmt.Errorf("mint: status %d %v", resp.StatusCode, err)
		}
		t1 := time.Now()
		if err := upgrade(addr, minted.URL); err != nil {
			return 0, 0, err
		}
		return t1.Sub(t0), time.Since(t1), nil
	}
}

// upgrade opens a WebSocket on path, checks for 101 and closes.
func upgrade(addr, path string) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr)
	if err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.Contains(line, " 101 ") {
		return fmt.Errorf("redeem: %s", strings.TrimSpace(line))
	}
	return nil
}

// inProcessStore starts NATS with JetStream inside the harness and opens a
// keys.Store on it, like a node with embedded NATS does.
func inProcessStore(dir string) (*keys.Store, func(), error) {
	store, err := os.MkdirTemp(dir, "keys-js-")
	if err != nil {
		return nil, nil, err
	}
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: store, NoSigs: true, NoLog: true})
	if err != nil {
		return nil, nil, err
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, nil, fmt.Errorf("in-process NATS not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		srv.Shutdown()
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := keys.NewStore(ctx, js, keys.StoreOptions{Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		err = waitStore(ctx, st)
	}
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, nil, err
	}
	return st, func() { nc.Close(); srv.Shutdown(); srv.WaitForShutdown() }, nil
}

// waitStore waits until the bucket is open: NewStore may return while it
// still opens it in the background.
func waitStore(ctx context.Context, st *keys.Store) error {
	for {
		k, err := st.Mint(ctx, keys.Claims{User: "warmup"}, 0)
		if err == nil {
			_, err = st.Redeem(ctx, k.Key)
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("key store not ready: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
