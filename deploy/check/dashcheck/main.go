// Command dashcheck checks the Grafana dashboard against the node's metrics:
// every roomcast_* series a query uses is exported by one of the -metrics
// files (with the _bucket/_sum/_count suffixes of histograms), every
// "by (...)" label is one of the metric's labels or a target label Prometheus
// adds, every exported metric is used by some panel's query, and the JSON is
// a well-formed dashboard. Each -metrics file must declare collectors.
//
// Usage:
//
//	dashcheck -metrics pkg/metrics/metrics.go -metrics pkg/history/metrics.go \
//		-dashboard deploy/grafana/roomcast.json
//
// (-metrics is repeatable and also takes a comma-separated list.)
package main

import (
	"encoding/json"
	"errors"
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
	kind   string // Gauge, Counter, Histogram, Summary, Untyped (Vec and Func forms folded in)
	labels []string
}

// Labels added by scraping, by the Prometheus Operator, or by histograms.
var targetLabels = []string{"instance", "job", "pod", "namespace", "service", "endpoint", "container", "le"}

func main() {
	var metricsFiles []string
	flag.Func("metrics", "Go file declaring collectors (repeatable, or comma-separated)", func(s string) error {
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f != "" {
				metricsFiles = append(metricsFiles, f)
			}
		}
		return nil
	})
	dashFile := flag.String("dashboard", "deploy/grafana/roomcast.json", "Grafana dashboard JSON")
	flag.Parse()
	if flag.NArg() > 0 {
		fatal(fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	if len(metricsFiles) == 0 {
		metricsFiles = []string{"pkg/metrics/metrics.go", "pkg/history/metrics.go"}
	}
	metrics := map[string]metric{}
	from := map[string]string{} // metric -> file
	for _, file := range metricsFiles {
		ms, err := parseMetrics(file)
		if err != nil {
			fatal(err)
		}
		if len(ms) == 0 {
			fatal(fmt.Errorf("%s: no collectors found", file))
		}
		for name, m := range ms {
			if other, dup := from[name]; dup {
				fatal(fmt.Errorf("%s: collector %s is also declared in %s", file, name, other))
			}
			metrics[name], from[name] = m, file
		}
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
	// Every exported metric is on the dashboard.
	var unshown []string
	for name := range metrics {
		if !used[name] {
			unshown = append(unshown, name)
		}
	}
	slices.Sort(unshown)
	for _, name := range unshown {
		failf("metric %s (%s) is exported but no panel's query uses it", name, from[name])
	}
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintf(os.Stderr, "dashcheck: %s: %s\n", *dashFile, e)
		}
		os.Exit(1)
	}
	fmt.Printf("dashcheck: %s: ok (%d panels, all %d metrics of %s shown)\n", *dashFile, len(all), len(metrics), strings.Join(metricsFiles, ", "))
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

// parseMetrics finds the collectors a Go file declares: calls
// prometheus.NewXxx(prometheus.XxxOpts{Name: ...}, []string{labels...})
// (Xxx: Gauge, Counter, Histogram, Summary, Untyped, their Vec and Func forms).
//
// A Name is a string expression: literals, file-level string constants and
// "+", with the Namespace and Subsystem fields joined in as client_golang
// does. A constructor inside a helper whose Name uses the helper's
// parameters, such as pkg/history's
//
//	c := func(name, help string) prometheus.Counter {
//		return prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_history_" + name, Help: help})
//	}
//
// declares one collector per call of the helper (c("refills_total", ...)),
// its name the template filled with the call's arguments. A constructor or a
// helper call whose name cannot be worked out is an error, not skipped.
func parseMetrics(file string) (map[string]metric, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	p := &metricsParser{fset: fset, consts: map[string]string{}, helpers: map[string]*helper{},
		inHelper: map[*ast.CallExpr]bool{}, out: map[string]metric{}}
	// File-level string constants.
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if i < len(vs.Values) {
					if v, ok := p.eval(vs.Values[i], nil).constant(); ok {
						p.consts[n.Name] = v
					}
				}
			}
		}
	}
	// Helpers: functions (declared, or literals assigned to a variable)
	// whose constructor's Name depends on their parameters.
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			if n.Body != nil {
				p.findHelper(n.Name, n.Type, n.Body)
			}
		case *ast.AssignStmt:
			for i, r := range n.Rhs {
				if fl, ok := r.(*ast.FuncLit); ok && i < len(n.Lhs) && len(n.Lhs) == len(n.Rhs) {
					if id, ok := n.Lhs[i].(*ast.Ident); ok {
						p.findHelper(id, fl.Type, fl.Body)
					}
				}
			}
		case *ast.ValueSpec:
			for i, v := range n.Values {
				if fl, ok := v.(*ast.FuncLit); ok && i < len(n.Names) && len(n.Names) == len(n.Values) {
					p.findHelper(n.Names[i], fl.Type, fl.Body)
				}
			}
		}
		return true
	})
	// Collectors: direct constructor calls, and calls of the helpers.
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		if id, ok := call.Fun.(*ast.Ident); ok {
			if h := p.helpers[id.Name]; h != nil {
				args := make([]string, len(call.Args))
				for i, a := range call.Args {
					args[i], _ = p.eval(a, nil).constant()
				}
				name, ok := h.name.fill(args)
				if !ok {
					p.errorf(call, "call of %s: cannot work out the collector's name (arguments must be string constants)", id.Name)
					return true
				}
				p.add(call, name, h.m)
			}
			return true
		}
		if p.inHelper[call] {
			return true
		}
		m, nameExpr, ok := p.constructor(call, nil)
		if !ok {
			return true
		}
		name, ok := nameExpr.constant()
		if !ok {
			p.errorf(call, "cannot work out the collector's name")
			return true
		}
		p.add(call, name, m)
		return true
	})
	if len(p.errs) > 0 {
		return nil, errors.New(strings.Join(p.errs, "\n"))
	}
	return p.out, nil
}

type metricsParser struct {
	fset     *token.FileSet
	consts   map[string]string
	helpers  map[string]*helper     // by name: a metrics file declares each once
	inHelper map[*ast.CallExpr]bool // constructors inside helpers: declared by the helper's calls
	out      map[string]metric
	errs     []string
}

type helper struct {
	name strExpr
	m    metric
}

// strExpr is a string expression: literal parts and parameter references.
type strExpr []strPart

type strPart struct {
	lit   string
	param int // index of the parameter, -1 for a literal
}

// bad is the result of an expression that is not a string this parser knows.
var bad = strExpr{{param: -2}}

func (s strExpr) constant() (string, bool) {
	var b strings.Builder
	for _, p := range s {
		if p.param != -1 {
			return "", false
		}
		b.WriteString(p.lit)
	}
	return b.String(), len(s) > 0
}

func (s strExpr) usesParam() bool {
	for _, p := range s {
		if p.param >= 0 {
			return true
		}
	}
	return false
}

// fill substitutes a helper call's arguments (constant values, "" when not)
// for the parameters.
func (s strExpr) fill(args []string) (string, bool) {
	var b strings.Builder
	for _, p := range s {
		switch {
		case p.param == -1:
			b.WriteString(p.lit)
		case p.param >= 0 && p.param < len(args) && args[p.param] != "":
			b.WriteString(args[p.param])
		default:
			return "", false
		}
	}
	return b.String(), len(s) > 0
}

// eval evaluates a string expression; params maps the enclosing helper's
// parameter names to their index (nil outside a helper).
func (p *metricsParser) eval(e ast.Expr, params map[string]int) strExpr {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			if s, err := strconv.Unquote(e.Value); err == nil {
				return strExpr{{lit: s, param: -1}}
			}
		}
	case *ast.ParenExpr:
		return p.eval(e.X, params)
	case *ast.BinaryExpr:
		if e.Op == token.ADD {
			x, y := p.eval(e.X, params), p.eval(e.Y, params)
			if !slices.Equal(x, bad) && !slices.Equal(y, bad) {
				return append(slices.Clone(x), y...)
			}
		}
	case *ast.Ident:
		if i, ok := params[e.Name]; ok {
			return strExpr{{param: i}}
		}
		if v, ok := p.consts[e.Name]; ok {
			return strExpr{{lit: v, param: -1}}
		}
	}
	return bad
}

// constructor recognises prometheus.NewXxx(prometheus.XxxOpts{...}, ...):
// the collector's kind and labels, and its full name as an expression.
func (p *metricsParser) constructor(call *ast.CallExpr, params map[string]int) (metric, strExpr, bool) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || !strings.HasPrefix(sel.Sel.Name, "New") {
		return metric{}, nil, false
	}
	if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" || len(call.Args) == 0 {
		return metric{}, nil, false
	}
	kind := strings.TrimPrefix(sel.Sel.Name, "New")
	kind = strings.TrimSuffix(strings.TrimSuffix(kind, "Vec"), "Func")
	if !slices.Contains([]string{"Gauge", "Counter", "Histogram", "Summary", "Untyped"}, kind) {
		return metric{}, nil, false
	}
	opts, ok := call.Args[0].(*ast.CompositeLit)
	if !ok {
		return metric{}, nil, false
	}
	m := metric{kind: kind}
	var parts [3]strExpr // Namespace, Subsystem, Name
	for _, e := range opts.Elts {
		kv, ok := e.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		k, ok := kv.Key.(*ast.Ident)
		if !ok {
			continue
		}
		if i := slices.Index([]string{"Namespace", "Subsystem", "Name"}, k.Name); i >= 0 {
			parts[i] = p.eval(kv.Value, params)
		}
	}
	// prometheus.BuildFQName: the non-empty parts joined by "_".
	var name strExpr
	for _, part := range parts {
		if len(part) == 0 {
			continue
		}
		if s, ok := part.constant(); ok && s == "" {
			continue
		}
		if slices.Equal(part, bad) {
			return m, bad, true
		}
		if len(name) > 0 {
			name = append(name, strPart{lit: "_", param: -1})
		}
		name = append(name, part...)
	}
	if len(call.Args) > 1 {
		if lbls, ok := call.Args[1].(*ast.CompositeLit); ok {
			for _, e := range lbls.Elts {
				if s, ok := p.eval(e, nil).constant(); ok {
					m.labels = append(m.labels, s)
				}
			}
		}
	}
	return m, name, true
}

// findHelper records fn as a helper if a constructor in its body takes its
// name from fn's parameters.
func (p *metricsParser) findHelper(id *ast.Ident, typ *ast.FuncType, body *ast.BlockStmt) {
	params := map[string]int{}
	i := 0
	for _, f := range typ.Params.List {
		if len(f.Names) == 0 {
			i++
		}
		for _, n := range f.Names {
			params[n.Name] = i
			i++
		}
	}
	if len(params) == 0 {
		return
	}
	ast.Inspect(body, func(n ast.Node) bool {
		if _, ok := n.(*ast.FuncLit); ok {
			return false // its own parameters; looked at on its own
		}
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		m, name, ok := p.constructor(call, params)
		if !ok || !name.usesParam() {
			return true
		}
		p.inHelper[call] = true
		if p.helpers[id.Name] != nil {
			p.errorf(call, "%s declares more than one collector from its parameters", id.Name)
			return true
		}
		p.helpers[id.Name] = &helper{name: name, m: m}
		return true
	})
}

func (p *metricsParser) add(at ast.Node, name string, m metric) {
	if _, dup := p.out[name]; dup {
		p.errorf(at, "collector %s declared twice", name)
		return
	}
	p.out[name] = m
}

func (p *metricsParser) errorf(at ast.Node, format string, args ...any) {
	p.errs = append(p.errs, p.fset.Position(at.Pos()).String()+": "+fmt.Sprintf(format, args...))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "dashcheck:", err)
	os.Exit(1)
}
