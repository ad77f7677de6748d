package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Result is one scenario's outcome: what bench/results/<scenario>.json holds
// and what the table printer shows.
type Result struct {
	Scenario string    `json:"scenario"`
	Size     string    `json:"size"` // full, short or smoke
	Date     time.Time `json:"date"`
	Env      Env       `json:"env"`
	Elapsed  string    `json:"elapsed"`
	// Params are the knobs of this run (connections, message size, ...).
	Params map[string]any `json:"params"`
	Tables []*Table       `json:"tables"`
	// Metrics are the headline numbers, for scripts and for comparing runs.
	Metrics map[string]float64 `json:"metrics"`
	Targets []Target           `json:"targets,omitempty"`
	Notes   []string           `json:"notes,omitempty"`
}

// Table is a titled grid of already formatted cells.
type Table struct {
	Title   string     `json:"title"`
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
}

// Target is a goal from issue 8 and whether this run met it.
type Target struct {
	Name  string `json:"name"`
	Goal  string `json:"goal"`
	Value string `json:"value"`
	Met   bool   `json:"met"`
	// Gate marks targets that fail the run (bench-smoke); others are
	// reported only, since on a shared 2-core machine throughput varies
	// with what else runs.
	Gate bool `json:"gate,omitempty"`
}

func newResult(scenario string, env Env, size string) *Result {
	return &Result{Scenario: scenario, Size: size, Date: time.Now().UTC(), Env: env,
		Params: map[string]any{}, Metrics: map[string]float64{}}
}

func (r *Result) table(title string, cols ...string) *Table {
	t := &Table{Title: title, Columns: cols}
	r.Tables = append(r.Tables, t)
	return t
}

func (t *Table) add(cells ...string) { t.Rows = append(t.Rows, cells) }

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Result) target(name, goal, value string, met, gate bool) {
	r.Targets = append(r.Targets, Target{Name: name, Goal: goal, Value: value, Met: met, Gate: gate})
}

// failedGates lists gated targets that were missed.
func (r *Result) failedGates() []string {
	var out []string
	for _, t := range r.Targets {
		if t.Gate && !t.Met {
			out = append(out, fmt.Sprintf("%s: %s (goal %s)", t.Name, t.Value, t.Goal))
		}
	}
	return out
}

// print writes the result as Markdown tables, the form bench/README.md
// quotes.
func (r *Result) print(w io.Writer) {
	fmt.Fprintf(w, "\n## %s (%s, %s)\n\n", r.Scenario, r.Size, r.Elapsed)
	for _, t := range r.Tables {
		if t.Title != "" {
			fmt.Fprintf(w, "%s\n\n", t.Title)
		}
		writeMarkdown(w, t.Columns, t.Rows)
		fmt.Fprintln(w)
	}
	if len(r.Targets) > 0 {
		rows := make([][]string, 0, len(r.Targets))
		for _, t := range r.Targets {
			verdict := "met"
			if !t.Met {
				verdict = "MISSED"
			}
			rows = append(rows, []string{t.Name, t.Goal, t.Value, verdict})
		}
		writeMarkdown(w, []string{"target", "goal", "measured", ""}, rows)
		fmt.Fprintln(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

func writeMarkdown(w io.Writer, cols []string, rows [][]string) {
	width := make([]int, len(cols))
	for i, c := range cols {
		width[i] = len([]rune(c))
	}
	for _, row := range rows {
		for i, c := range row {
			if i < len(width) && len([]rune(c)) > width[i] {
				width[i] = len([]rune(c))
			}
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i := range cols {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			b.WriteString(" " + c + strings.Repeat(" ", width[i]-len([]rune(c))) + " |")
		}
		fmt.Fprintln(w, b.String())
	}
	line(cols)
	sep := make([]string, len(cols))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, row := range rows {
		line(row)
	}
}

// save writes bench/results/<scenario>.json (smoke runs go to
// <scenario>-smoke.json so they never overwrite a real run).
func (r *Result) save(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := r.Scenario
	if r.Size == "smoke" {
		name += "-smoke"
	}
	p := filepath.Join(dir, name+".json")
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	return p, os.WriteFile(p, append(b, '\n'), 0o644)
}

// Formatting helpers: every table cell carries its unit.

func fmtRate(perSec float64, unit string) string {
	switch {
	case perSec >= 1e6:
		return fmt.Sprintf("%.2f M%s/s", perSec/1e6, unit)
	case perSec >= 1e4:
		return fmt.Sprintf("%.0f k%s/s", perSec/1e3, unit)
	case perSec >= 1e3:
		return fmt.Sprintf("%.1f k%s/s", perSec/1e3, unit)
	}
	return fmt.Sprintf("%.0f %s/s", perSec, unit)
}

func fmtBytes(b float64) string {
	neg := ""
	if b < 0 {
		neg, b = "-", -b
	}
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%s%.2f GiB", neg, b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%s%.1f MiB", neg, b/(1<<20))
	case b >= 10<<10:
		return fmt.Sprintf("%s%.0f KiB", neg, b/(1<<10))
	case b >= 1<<10:
		return fmt.Sprintf("%s%.2f KiB", neg, b/(1<<10))
	}
	return fmt.Sprintf("%s%.0f B", neg, b)
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f µs", float64(d)/1e3)
}

func fmtF(v float64, unit string) string {
	switch {
	case v == 0:
		return "0 " + unit
	case v < 0.01:
		return fmt.Sprintf("%.4f %s", v, unit)
	case v < 10:
		return fmt.Sprintf("%.2f %s", v, unit)
	case v < 1000:
		return fmt.Sprintf("%.1f %s", v, unit)
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

func fmtRatio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f×", a/b)
}
