package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/roomcast/roomcast/bench/internal/hist"
	"github.com/roomcast/roomcast/bench/internal/proto"
	"github.com/roomcast/roomcast/bench/internal/wsload"
	"github.com/roomcast/roomcast/pkg/keys"
)

const connectConcurrency = 32

// connect measures connection setup: N upgrades on /_/connect/<key>, each
// redeeming a one-time key minted beforehand (not timed), then N upgrades on
// the public demo route, which skips the key store. connectConcurrency
// handshakes are in flight at a time; latency is socket() to the 101.
func connect(r *run, res *Result) error {
	node, err := r.startNode(nodeOptions{name: "node", apiKey: benchAPIKey,
		extra: append([]string{"--api-rate", "0"}, r.nodeFlags...)})
	if err != nil {
		return err
	}
	n := r.plan.connectN
	res.Params["connections"] = n
	res.Params["concurrency"] = connectConcurrency
	mintStart := time.Now()
	paths, err := mintKeys(node.addr, n)
	if err != nil {
		return err
	}
	logf("minted %d keys in %s", n, time.Since(mintStart).Round(time.Millisecond))
	lc, err := r.startLoader("load", loaderOptions{server: node.addr})
	if err != nil {
		return err
	}
	defer lc.quit()

	t := res.table(fmt.Sprintf("%d connections, %d handshakes in flight", n, connectConcurrency),
		"route", "upgrades/s", "p50", "p90", "p99", "max", "server CPU/upgrade", "failed")
	variant := func(label, key string, d proto.Dial) error {
		before := node.sample()
		dr, err := lc.dial(d)
		if err != nil {
			return err
		}
		after := node.sample()
		s := dialLatency(dr)
		rate := float64(dr.OK) / dr.Elapsed.Seconds()
		t.add(label, fmtRate(rate, ""), fmtDur(s.P50), fmtDur(s.P90), fmtDur(s.P99), fmtDur(s.Max),
			fmtF(diff(before, after).cpu/float64(max(dr.OK, 1))*1e6, "µs"), fmt.Sprint(dr.Failed))
		res.Metrics[key+"_upgrades_per_s"] = rate
		res.Metrics[key+"_p50_ms"] = float64(s.P50) / 1e6
		res.Metrics[key+"_p99_ms"] = float64(s.P99) / 1e6
		return lc.closeConns()
	}
	if err := variant("/_/connect/<key> (key redeemed)", "key", proto.Dial{Paths: paths, Concurrency: connectConcurrency}); err != nil {
		return err
	}
	if err := variant("/_/demo/ws (public route)", "public", proto.Dial{N: n, Path: node.wsPath, Concurrency: connectConcurrency}); err != nil {
		return err
	}
	res.note("Every upgrade sends the welcome from the handler before the next read; the latency ends at the 101, the welcome follows in the same round.")
	res.note("Key redemption is a JetStream KV get and a revision-checked delete on the node's embedded NATS, done on the handshake goroutine before the 101.")
	return nil
}

// mintKeys mints n keys over HTTP, 16 at a time, and returns their URLs.
func mintKeys(addr string, n int) ([]string, error) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	paths := make([]string, n)
	var next int
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				req, _ := http.NewRequest("POST", "http://"+addr+"/_/keys", bytes.NewReader(keyClaims))
				req.Header.Set("Authorization", "Bearer "+benchAPIKey)
				resp, err := hc.Do(req)
				if err == nil {
					var m keys.Minted
					err = json.NewDecoder(resp.Body).Decode(&m)
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
					paths[i] = m.URL
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("mint: %w", err)
					}
					next = n
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return paths, firstErr
}

// dialLatency summarizes a dial's per-connection latency.
func dialLatency(d *wsload.DialResult) hist.Summary {
	var h hist.H
	h.Merge(d.Latency)
	return h.Summarize()
}
