package metrics_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/pkg/metrics"
	"github.com/roomcast/roomcast/pkg/metrics/metricstest"
)

// roomcast_peers is read from the detectors at every scrape, one series
// per detector that was set; roomcast_peer_events_total has a detector's
// four series, at 0, as soon as it starts.
func TestPeers(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	if _, ok := metricstest.Value(t, reg, "roomcast_peers"); ok {
		t.Fatal("roomcast_peers exported before any detector was set")
	}
	if _, ok := metricstest.Value(t, reg, "roomcast_peer_events_total"); ok {
		t.Fatal("roomcast_peer_events_total exported before any detector started")
	}

	var alive atomic.Int64
	alive.Store(2)
	m.SetPeers(metrics.SourceHeartbeat, func() int { return int(alive.Load()) })
	hb := m.PeerEventsOf(metrics.SourceHeartbeat)
	peers := func(source string) (float64, bool) {
		return metricstest.Value(t, reg, "roomcast_peers", "source", source)
	}
	if v, ok := peers(metrics.SourceHeartbeat); !ok || v != 2 {
		t.Fatalf("heartbeat peers %v %v, want 2", v, ok)
	}
	if _, ok := peers(metrics.SourceGossip); ok {
		t.Fatal("a gossip count without gossip")
	}
	alive.Store(1)
	if v, _ := peers(metrics.SourceHeartbeat); v != 1 {
		t.Fatalf("heartbeat peers %v after the count changed, want 1", v)
	}
	for _, ev := range []string{"joined", "left", "failed", "restarted"} {
		if v, ok := metricstest.Value(t, reg, "roomcast_peer_events_total", "source", "heartbeat", "event", ev); !ok || v != 0 {
			t.Errorf("heartbeat %s: %v %v, want a series at 0", ev, v, ok)
		}
		if _, ok := metricstest.Value(t, reg, "roomcast_peer_events_total", "source", "gossip", "event", ev); ok {
			t.Errorf("gossip %s exported before gossip started", ev)
		}
	}
	hb.Failed.Inc()
	if v, _ := metricstest.Value(t, reg, "roomcast_peer_events_total", "source", "heartbeat", "event", "failed"); v != 1 {
		t.Fatalf("failed %v, want 1", v)
	}

	m.SetPeers(metrics.SourceGossip, func() int { return 3 })
	// Scrapes may run at once (two Prometheus servers): each sees every
	// detector's own count.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if v, _ := peers(metrics.SourceGossip); v != 3 {
				t.Errorf("gossip peers %v, want 3", v)
			}
			if v, _ := peers(metrics.SourceHeartbeat); v != 1 {
				t.Errorf("heartbeat peers %v, want 1", v)
			}
		})
	}
	wg.Wait()
}
