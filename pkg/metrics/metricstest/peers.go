package metricstest

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Peers reads one liveness detector's series: roomcast_peers{source} and
// roomcast_peer_events_total{source,event}. Who names the node in failures.
type Peers struct {
	G      prometheus.Gatherer
	Source string
	Who    string
}

// Alive is the detector's count of other nodes alive (0 when absent).
func (p Peers) Alive(t testing.TB) float64 {
	t.Helper()
	v, _ := Value(t, p.G, "roomcast_peers", "source", p.Source)
	return v
}

// Count is how many peer events of the kind the detector counted.
func (p Peers) Count(t testing.TB, event string) float64 {
	t.Helper()
	v, _ := Value(t, p.G, "roomcast_peer_events_total", "source", p.Source, "event", event)
	return v
}

// Wait waits up to timeout until the detector counts want peers alive and
// each of events at its value, and returns how long that took.
func (p Peers) Wait(t testing.TB, timeout time.Duration, want float64, events map[string]float64) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok := p.Alive(t) == want
		for ev, n := range events {
			ok = ok && p.Count(t, ev) == n
		}
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: peers %v, want %v; events joined %v left %v failed %v restarted %v, want %v", p.Who, p.Alive(t), want,
				p.Count(t, "joined"), p.Count(t, "left"), p.Count(t, "failed"), p.Count(t, "restarted"), events)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
