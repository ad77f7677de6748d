// Command dashcheck checks the Grafana dashboard against the node's metrics:
// every roomcast_* series a query uses is exported by pkg/metrics (with the
// _bucket/_sum/_count suffixes of histograms), every "by (...)" label is one
// of the metric's labels or a target label Prometheus adds, every exported
// metric is shown somewhere (else a warning), and the JSON is a well-formed dashboard.
//
// Usage: dashcheck -metrics pkg/metrics/metrics.go -dashboard deploy/grafana/roomcast.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

type metric struct {
	kind   string // Gauge, Counter, Histogram, Summary
	labels []string
}

// Labels added by scraping, by the Prometheus Operator, or by histograms.
var targetLabels = []string{"instance", "job", "pod", "namespace", "service", "endpoint", "container", "le"}

func main() {
	metricsFile := flag.String("metrics", "pkg/metrics/metrics.go", "Go file declaring the collectors")
	dashFile := flag.String("dashboard", "deploy/grafana/roomcast.json", "Grafana dashboard JSON")
	flag.Parse()
	metrics, err := parseMetrics(*metricsFile)
	if err != nil {
		fatal(err)
	}
	if len(metrics) == 0 {
		fatal(fmt.Errorf("%s: no collectors found", *metricsFile))
	}
	raw, err := os.ReadFile(*dashFile)
	if err != nil {
		fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		fatal(fmt.Errorf("%s: %w", *dashFile, err))
	}
	var errs []string
	failf := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if dash.UID == "" || dash.Title == "" {
		failf("dashboard has no uid or title")
	}
	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
	}
	used := map[string]bool{}
	ids := map[int]bool{}
	var all []panel
	for _, p := range dash.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	series := regexp.MustCompile(`roomcast_[a-z0-9_]+`)
	by := regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	varRef := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
	for _, p := range all {
		if ids[p.ID] {
			failf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil {
			failf("panel %q has no gridPos", p.Title)
		}
		if p.Type != "row" && len(p.Targets) == 0 {
			failf("panel %q has no queries", p.Title)
		}
		for _, t := range p.Targets {
			var names []string
			for _, s := range series.FindAllString(t.Expr, -1) {
				name, ok := resolve(s, metrics)
				if !ok {
					failf("panel %q: %s is not exported by the node", p.Title, s)
					continue
				}
				used[name] = true
				names = append(names, name)
			}
			if len(names) == 0 {
				failf("panel %q: query %q uses no roomcast metric", p.Title, t.Expr)
			}
			for _, m := range by.FindAllStringSubmatch(t.Expr, -1) {
				for _, l := range strings.Split(m[1], ",") {
					l = strings.TrimSpace(l)
					if l == "" || slices.Contains(targetLabels, l) {
						continue
					}
					ok := false
					for _, n := range names {
						ok = ok || slices.Contains(metrics[n].labels, l)
					}
					if !ok {
						failf("panel %q: label %q is not a label of %v", p.Title, l, names)
					}
				}
			}
			for _, m := range varRef.FindAllStringSubmatch(t.Expr, -1) {
				if !vars[m[1]] && !strings.HasPrefix(m[1], "__") {
					failf("panel %q: variable $%s is not defined", p.Title, m[1])
				}
			}
		}
	}
	// A metric added to the node but not yet to the dashboard is a warning:
	// it should not fail the build of whoever added it.
	var unshown []string
	for name := range metrics {
		if !used[name] {
			unshown = append(unshown, name)
		}
	}
	slices.Sort(unshown)
	for _, name := range unshown {
		fmt.Fprintf(os.Stderr, "dashcheck: warning: %s: metric %s is exported but not on the dashboard\n", *dashFile, name)
	}
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintf(os.Stderr, "dashcheck: %s: %s\n", *dashFile, e)
		}
		os.Exit(1)
	}
	fmt.Printf("dashcheck: %s: ok (%d panels, %d of the %d metrics of %s shown)\n", *dashFile, len(all), len(metrics)-len(unshown), len(metrics), *metricsFile)
}

type panel struct {
	ID      int             `json:"id"`
	Type    string          `json:"type"`
	Title   string          `json:"title"`
	GridPos json.RawMessage `json:"gridPos"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// resolve maps a series name to its collector (histogram series have suffixes).
func resolve(s string, metrics map[string]metric) (string, bool) {
	if _, ok := metrics[s]; ok {
		return s, true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		base := strings.TrimSuffix(s, suf)
		if m, ok := metrics[base]; ok && base != s && (m.kind == "Histogram" || (m.kind == "Summary" && suf != "_bucket")) {
			return base, true
		}
	}
	return "", false
}

// parseMetrics finds prometheus.NewXxx(prometheus.XxxOpts{Name: "..."}, []string{...}) calls.
func parseMetrics(file string) (map[string]metric, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, 0)
	if err != nil {
		return nil, err
	}
	out := map[string]metric{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || !strings.HasPrefix(sel.Sel.Name, "New") {
			return true
		}
		if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" || len(call.Args) == 0 {
			return true
		}
		kind := strings.TrimSuffix(strings.TrimPrefix(sel.Sel.Name, "New"), "Vec")
		if !slices.Contains([]string{"Gauge", "Counter", "Histogram", "Summary"}, kind) {
			return true
		}
		opts, ok := call.Args[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		var m metric
		m.kind = kind
		name := ""
		for _, e := range opts.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
				if lit, ok := kv.Value.(*ast.BasicLit); ok {
					name, _ = strconv.Unquote(lit.Value)
				}
			}
		}
		if len(call.Args) > 1 {
			if lbls, ok := call.Args[1].(*ast.CompositeLit); ok {
				for _, e := range lbls.Elts {
					if lit, ok := e.(*ast.BasicLit); ok {
						s, _ := strconv.Unquote(lit.Value)
						m.labels = append(m.labels, s)
					}
				}
			}
		}
		if name != "" {
			out[name] = m
		}
		return true
	})
	return out, nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "dashcheck:", err)
	os.Exit(1)
}
