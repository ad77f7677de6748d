// Command dockerfilecheck checks the Dockerfile without a Docker engine:
// BuildKit's own parser reads it (syntax, instructions and their flags, with
// the parse-time rules of `docker build --check` as errors), then what the
// roomcast image must be: a static CGO_ENABLED=0 build of ./cmd/node and
// ./cmd/mint, a distroless or scratch final stage running as a non-root user,
// roomcast-node as the exec-form entrypoint, ports 8080 and 7946 exposed; and
// .dockerignore keeps .git, bin/ and node_modules out of the build context.
//
// Usage: dockerfilecheck [-f Dockerfile] [-ignore .dockerignore]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

func main() {
	file := flag.String("f", "Dockerfile", "Dockerfile")
	ignore := flag.String("ignore", ".dockerignore", ".dockerignore next to it")
	flag.Parse()
	var errs []string
	failf := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }

	f, err := os.Open(*file)
	if err != nil {
		fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		fatal(fmt.Errorf("%s: %w", *file, err))
	}
	for _, w := range res.Warnings {
		failf("line %d: %s", w.Location.Start.Line, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		failf("line %d: %s: %s", line, rule, msg)
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		fatal(fmt.Errorf("%s: %w", *file, err))
	}
	if len(stages) < 2 {
		failf("want a multi-stage build (build stage + runtime stage), have %d stage(s)", len(stages))
	}

	// Build stages: CGO_ENABLED=0 and both binaries.
	var buildText strings.Builder
	cgoOff := false
	for _, st := range stages[:max(len(stages)-1, 0)] {
		for _, cmd := range st.Commands {
			switch c := cmd.(type) {
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					if kv.Key == "CGO_ENABLED" && kv.Value == "0" {
						cgoOff = true
					}
				}
			case *instructions.RunCommand:
				buildText.WriteString(strings.Join(c.CmdLine, " ") + "\n")
			}
		}
	}
	run := buildText.String()
	if !cgoOff && !strings.Contains(run, "CGO_ENABLED=0") {
		failf("the build does not set CGO_ENABLED=0 (the runtime image has no libc)")
	}
	for _, pkg := range []string{"./cmd/node", "./cmd/mint"} {
		if !strings.Contains(run, pkg) {
			failf("the build does not build %s", pkg)
		}
	}

	// Final stage.
	final := stages[len(stages)-1]
	base := final.BaseName
	if base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		failf("final stage FROM %s: want gcr.io/distroless/static* or scratch", base)
	}
	user := ""
	var entrypoint []string
	entryShell := false
	ports := map[string]bool{}
	copied := map[string]bool{}
	for _, cmd := range final.Commands {
		switch c := cmd.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			entrypoint = c.CmdLine
			entryShell = c.PrependShell
		case *instructions.ExposeCommand:
			for _, p := range c.Ports {
				ports[p] = true
			}
		case *instructions.CopyCommand:
			for _, d := range []string{c.DestPath} {
				copied[d] = true
			}
		}
	}
	if user == "" || slices.Contains([]string{"root", "0", "0:0", "root:root"}, user) || strings.HasPrefix(user, "0:") {
		failf("final stage runs as %q: want a non-root USER (e.g. 65532:65532, distroless nonroot)", user)
	}
	if len(entrypoint) != 1 || entryShell || !strings.HasSuffix(entrypoint[0], "/roomcast-node") {
		failf("ENTRYPOINT %q: want exec form [\"/roomcast-node\"] so that flags follow the image name and SIGTERM reaches the node", entrypoint)
	}
	if !copied["/roomcast-node"] || !copied["/roomcast-mint"] {
		failf("final stage should COPY /roomcast-node and /roomcast-mint (has %v)", keys(copied))
	}
	for _, want := range []string{"8080", "7946"} {
		ok := false
		for p := range ports {
			ok = ok || strings.HasPrefix(p, want)
		}
		if !ok {
			failf("port %s is not EXPOSEd", want)
		}
	}

	// .dockerignore
	if ig, err := os.Open(*ignore); err != nil {
		failf("%v", err)
	} else {
		var pats []string
		sc := bufio.NewScanner(ig)
		for sc.Scan() {
			l := strings.TrimSpace(sc.Text())
			if l != "" && !strings.HasPrefix(l, "#") {
				pats = append(pats, strings.TrimSuffix(strings.TrimPrefix(l, "/"), "/"))
			}
		}
		ig.Close()
		for _, want := range []string{".git", "bin", "**/node_modules"} {
			if !slices.Contains(pats, want) {
				failf("%s does not exclude %s", *ignore, want)
			}
		}
	}

	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintf(os.Stderr, "dockerfilecheck: %s: %s\n", *file, e)
		}
		os.Exit(1)
	}
	fmt.Printf("dockerfilecheck: %s: ok (%d stages, final FROM %s as %s)\n", *file, len(stages), base, user)
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "dockerfilecheck:", err)
	os.Exit(1)
}
