package main

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The real files: every collector is found, with its kind and labels.
func TestParseMetricsRepo(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	hist, err := parseMetrics(filepath.Join(root, "pkg", "history", "metrics.go"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]metric{
		"roomcast_history_refills_total":         {kind: "Counter"},
		"roomcast_history_refilled_total":        {kind: "Counter"},
		"roomcast_history_refill_failures_total": {kind: "Counter"},
		"roomcast_history_recoveries_total":      {kind: "Counter", labels: []string{"result"}},
		"roomcast_history_replayed_total":        {kind: "Counter"},
		"roomcast_history_resets_total":          {kind: "Counter"},
		"roomcast_history_queries_total":         {kind: "Counter"},
		"roomcast_history_foreign_total":         {kind: "Counter"},
	}
	// A subset: the file may declare more (the dashboard check covers
	// those); these show the helper-built names are found.
	for name, m := range want {
		if got, ok := hist[name]; !ok || !equalMetric(got, m) {
			t.Errorf("pkg/history/metrics.go: %s = %v (found: %v); want %v", name, got, ok, m)
		}
	}
	node, err := parseMetrics(filepath.Join(root, "pkg", "metrics", "metrics.go"))
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]metric{
		"roomcast_fanout_dropped_total": {kind: "Counter"},
		"roomcast_fanout_seconds":       {kind: "Histogram"},
		"roomcast_events_total":         {kind: "Counter", labels: []string{"kind", "result"}},
		"roomcast_event_probes_total":   {kind: "Counter"},
		"roomcast_control_total":        {kind: "Counter", labels: []string{"action", "result"}},
		"roomcast_peer_events_total":    {kind: "Counter", labels: []string{"source", "event"}},
		// Declared inside the struct of its scrape-time collector.
		"roomcast_peers": {kind: "Gauge", labels: []string{"source"}},
	} {
		if got, ok := node[name]; !ok || !equalMetric(got, m) {
			t.Errorf("pkg/metrics/metrics.go: %s = %v (found %v), want %v", name, got, ok, m)
		}
	}
}

func TestParseMetricsForms(t *testing.T) {
	src := `package x

import "github.com/prometheus/client_golang/prometheus"

const prefix = "x_"

func gauge(name string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + name + "_bytes", Help: "h"})
}

func New() {
	c := func(help, name string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: ("x_c_" + name), Help: help})
	}
	_ = c("h", "a_total")
	_ = c("h", prefix+"b_total")
	_ = gauge("mem")
	_ = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "x", Subsystem: "rpc", Name: "seconds"}, []string{"method"})
	_ = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "x", Name: "up"}, func() float64 { return 1 })
}
`
	got, err := parseMetrics(writeFile(t, src))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]metric{
		"x_c_a_total":   {kind: "Counter"},
		"x_c_x_b_total": {kind: "Counter"},
		"x_mem_bytes":   {kind: "Gauge"},
		"x_rpc_seconds": {kind: "Histogram", labels: []string{"method"}},
		"x_up":          {kind: "Gauge"},
	}
	if !maps.EqualFunc(got, want, equalMetric) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// A name the parser cannot work out is an error, never a silently missing metric.
func TestParseMetricsUnresolved(t *testing.T) {
	for _, body := range []string{
		`_ = prometheus.NewCounter(prometheus.CounterOpts{Name: fmt.Sprint("x")})`,
		`n := "x"; _ = prometheus.NewCounter(prometheus.CounterOpts{Name: n})`,
		`c := func(name string) prometheus.Counter { return prometheus.NewCounter(prometheus.CounterOpts{Name: "x_" + name}) }; n := "y"; _ = c(n)`,
		`_ = prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}); _ = prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})`,
	} {
		src := "package x\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/prometheus/client_golang/prometheus\"\n)\n\nvar _ = fmt.Sprint\n\nfunc New() {\n\t" + body + "\n}\n"
		if got, err := parseMetrics(writeFile(t, src)); err == nil {
			t.Errorf("%s: no error, got %v", body, got)
		} else if !strings.Contains(err.Error(), "metrics.go:") {
			t.Errorf("%s: error without position: %v", body, err)
		}
	}
}

func equalMetric(a, b metric) bool { return a.kind == b.kind && slices.Equal(a.labels, b.labels) }

func writeFile(t *testing.T, src string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "metrics.go")
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
